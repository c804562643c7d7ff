"""The named profiles, with their parameters checked before a generator runs.

`PROFILES[name](duration_s=..., dt_s=..., seed=..., **params)` builds a profile. A wrong name, an unknown
parameter or a value of the wrong type (NaN and inf included, except inf where the default is inf) raises
ConfigError saying what would be right; values may be given as strings (from the command line or a rig
file) and are converted to the parameter's type. A profile that still computes a NaN or inf sample (finite
parameters too large to compute with) is refused naming the parameters given.
"""
from __future__ import annotations

import functools
import inspect
import math
import os
import typing
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hil.errors import ConfigError, did_you_mean
from hil.profiles import ai, datacenter, drone, standard
from hil.profiles.base import NonFiniteDemand, Profile
from hil.profiles.csv_trace import csv_trace

# Every generator takes these; the CLI sets them with --duration, --dt and --seed.
COMMON = ("duration_s", "dt_s", "seed")
_TYPE_NAMES = {float: "a finite number", int: "a whole number", str: "text"}


@dataclass(frozen=True)
class Param:
    """One generator parameter: its name, type (float, int or str) and default."""
    name: str
    type: type
    default: Any

    def convert(self, profile: str, value: Any) -> Any:
        """`value` as this parameter's type, parsing strings; a ConfigError if it does not fit. Numbers must
        be finite, except inf where the default is inf: there it means "never" or "the whole trace"."""
        if self.type is str and isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        if self.type is not str and not isinstance(value, bool):  # True is never a sensible number here
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                number = math.nan
            if self.type is float and (math.isfinite(number) or number == self.default):
                return number
            if self.type is int and number.is_integer():
                return int(number)
        raise ConfigError(f"profile {profile!r}: parameter {self.name!r} must be {self.expected} "
                          f"(default {self.default!r}), got {value!r}")

    @property
    def expected(self) -> str:
        """What a value must be, in words, for an error message."""
        if self.type is float and self.default == math.inf:
            return "a finite number or inf"
        return _TYPE_NAMES[self.type]


class Generator:
    """A profile generator that checks its keyword arguments. `params` lists what it accepts."""

    def __init__(self, name: str, function: Callable[..., Profile]):
        functools.update_wrapper(self, function)
        self.name = name
        self.function = function
        hints = typing.get_type_hints(function)
        self.params = {p.name: Param(p.name, hints[p.name], p.default)
                       for p in inspect.signature(function).parameters.values()}

    @property
    def summary(self) -> str:
        """The first paragraph of the generator's docstring, on one line."""
        return " ".join((self.function.__doc__ or "").strip().split("\n\n")[0].split())

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """`params` converted to their types; a ConfigError names an unknown or ill-typed one."""
        checked = {}
        for key, value in params.items():
            if key not in self.params:
                raise ConfigError(f"profile {self.name!r}: unknown parameter {key!r}{did_you_mean(key, self.params)}; "
                                  f"valid: {', '.join(self.params)}")
            checked[key] = self.params[key].convert(self.name, value)
        if checked.get("seed", 0) < 0:  # numpy's generators take only seeds >= 0
            raise ConfigError(f"profile {self.name!r}: seed must be >= 0, got {checked['seed']}")
        return checked

    def __call__(self, duration_s: Any = None, dt_s: Any = None, **params: Any) -> Profile:
        """Build the profile; `duration_s` or `dt_s` None keeps the generator's default."""
        given = {key: value for key, value in (("duration_s", duration_s), ("dt_s", dt_s)) if value is not None}
        checked = self.check({**given, **params})
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, once, by name
                return self.function(**checked)
        except (NonFiniteDemand, OverflowError) as error:
            # Finite parameters can still be too large to compute with (1e308 W x a 160 % pulse is inf):
            # name the ones given, since the generator cannot tell which of them did it.
            settings = ", ".join(f"{key}={value!r}" for key, value in checked.items()) or "the defaults"
            problem = error if isinstance(error, NonFiniteDemand) else (
                f"profile {self.name!r}: a number overflowed ({error})")
            raise ConfigError(f"{problem}; parameters given: {settings}") from None


class _Registry(dict):
    """A dict of Generators whose missing-key error lists close matches."""

    def __missing__(self, name: str) -> Generator:
        raise ConfigError(f"unknown profile {name!r}{did_you_mean(name, self, cutoff=0.5)}; known: {', '.join(self)}")


PROFILES: dict[str, Generator] = _Registry({name: Generator(name, function) for name, function in (
    ("ai-training", ai.ai_training),
    ("ai-training-smoothed", ai.ai_training_smoothed),
    ("ai-job-start", ai.ai_job_start),
    ("bbu-ride-through", datacenter.bbu_ride_through),
    ("drone-fpv", drone.drone_fpv),
    ("drone-industrial", drone.drone_industrial),
    ("hppc", standard.hppc),
    ("cccv", standard.cccv),
    ("constant-power", standard.constant_power),
    ("constant-current", standard.constant_current),
    ("rest", standard.rest),
    ("csv-trace", csv_trace),
)})
