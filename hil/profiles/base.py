"""The profile interface: demand (current in A, or power in W) at any time, deterministic for a seed.

Also the few helpers every generator shares: sample counts checked against a memory budget, a
piecewise-constant builder, and the pack rating that turns C-rates into amps and watts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hil.errors import ConfigError

# The column each kind is written to and read from (CSV export and replay share it).
COLUMNS = {"current": "current_a", "power": "power_w"}
UNITS = {"current": "A", "power": "W"}

# 50 M float64 samples is 400 MB: an hour at 0.1 ms. Anything longer is almost surely a unit mistake.
MAX_SAMPLES = 50_000_000


class NonFiniteDemand(ConfigError):
    """A profile computed a NaN or infinite sample: its parameters are too large to compute with (or
    multiply 0 by inf). The registry adds the parameters that were given."""


@dataclass
class Profile:
    """A load demand sampled on a fixed time grid. `kind` is "current" (A) or "power" (W); > 0 discharges.

    Profiles are precomputed for their whole duration, so a real-time loop only indexes an array.
    A power profile becomes a current only inside the closed loop (I = P / V_pack), so as the pack sags
    its current rises.
    """
    name: str
    kind: str
    dt_s: float
    demand: np.ndarray
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in COLUMNS:
            raise ConfigError(f"profile {self.name!r}: kind {self.kind!r} is not one of {sorted(COLUMNS)}")
        if not (self.dt_s > 0 and math.isfinite(self.dt_s)):
            raise ConfigError(f"profile {self.name!r}: dt_s must be a positive number of seconds, got {self.dt_s!r}")
        self.demand = np.asarray(self.demand, dtype=float)
        if self.demand.ndim != 1:
            raise ConfigError(f"profile {self.name!r}: demand must be 1-D, got shape {self.demand.shape}")
        self._check_finite()

    def _check_finite(self) -> None:
        """Every sample a finite number: an inf or NaN would reach the load (or a CSV) as a demand."""
        if np.isfinite(self.demand).all():
            return
        index = int(np.flatnonzero(~np.isfinite(self.demand))[0])
        raise NonFiniteDemand(f"profile {self.name!r}: demand is {self.demand[index]} {UNITS[self.kind]} at "
                              f"{index * self.dt_s:g} s (sample {index}); every sample must be a finite number")

    @property
    def duration_s(self) -> float:
        return self.demand.size * self.dt_s

    @property
    def column(self) -> str:
        """CSV column name: `current_a` or `power_w`."""
        return COLUMNS[self.kind]

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    def at(self, t_s: float) -> float:
        """Demand at `t_s`, held from the sample at or before it; 0 past the end (the load is done)."""
        index = int(t_s / self.dt_s + 1e-9)
        return float(self.demand[index]) if 0 <= index < self.demand.size else 0.0

    def times_s(self) -> np.ndarray:
        return np.arange(self.demand.size) * self.dt_s

    def with_demand(self, demand: np.ndarray, *, name: str | None = None, description: str | None = None) -> Profile:
        """A copy with new demand samples on the same grid and of the same kind."""
        return Profile(name or self.name, self.kind, self.dt_s, demand,
                       self.description if description is None else description)


class PackRating(NamedTuple):
    """What a C-rate is relative to: capacity in Ah and nominal voltage in V."""
    capacity_ah: float
    nominal_v: float

    @property
    def energy_wh(self) -> float:
        return self.capacity_ah * self.nominal_v

    def c_rate_to_w(self, c_rate: float | np.ndarray) -> float | np.ndarray:
        """Power at nominal voltage for a discharge of `c_rate` (1 C empties the pack in an hour)."""
        return c_rate * self.energy_wh


# The default bench pack: 16S1P LG M50 (5 Ah, fixtures/cells/lg_m50.toml) at 3.63 V nominal per cell
# (LG INR21700-M50 datasheet), so 16 x 3.63 = 58.08 V. One C is about 290 W.
BENCH_PACK = PackRating(capacity_ah=5.0, nominal_v=58.08)


def n_samples(duration_s: float, dt_s: float) -> int:
    """Samples in `duration_s` on a `dt_s` grid; a ConfigError if either is not positive or too many."""
    if not (dt_s > 0 and math.isfinite(dt_s)):
        raise ConfigError(f"dt_s must be a positive number of seconds, got {dt_s!r}")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ConfigError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    n = int(round(duration_s / dt_s))
    if n < 1:
        raise ConfigError(f"duration_s {duration_s} is shorter than one step of dt_s {dt_s}")
    if n > MAX_SAMPLES:
        raise ConfigError(f"duration_s {duration_s} at dt_s {dt_s} is {n:,} samples, more than the "
                          f"{MAX_SAMPLES:,} allowed (400 MB); use a coarser dt_s or a shorter duration_s")
    return n


def n_segments(profile: str, span_s: float, shortest_s: float, what: str) -> int:
    """Enough segments of at least `shortest_s` to fill `span_s`, plus one; a ConfigError naming `what` when
    that is more than MAX_SAMPLES, which only a unit mistake asks for (and would exhaust memory)."""
    count = span_s / shortest_s
    ensure(count <= MAX_SAMPLES, profile, f"{what} is so short that {span_s:g} s takes up to {count:.3g} of them, "
                                          f"more than the {MAX_SAMPLES:,} allowed; is it in seconds?")
    return math.ceil(count) + 1


def piecewise(levels, durations_s, dt_s: float, n: int, *, after: float = 0.0) -> np.ndarray:
    """`n` samples holding `levels[i]` for `durations_s[i]`, then `after` to the end; extra segments are cut.

    Segment edges are rounded to the grid from the cumulative time, so rounding never accumulates.
    """
    levels = np.asarray(levels, dtype=float)
    # Clipped before the cast: a huge duration (an inf sum) cast to int64 would wrap to a negative edge.
    edges = np.rint(np.clip(np.cumsum(durations_s) / dt_s, 0, n)).astype(np.int64)
    counts = np.diff(edges, prepend=0)
    demand = np.full(n, float(after))
    demand[:edges[-1] if edges.size else 0] = np.repeat(levels, counts)
    return demand


def ensure(ok: bool, profile: str, problem: str) -> None:
    """Raise a ConfigError naming the profile when a parameter is out of range."""
    if not ok:
        raise ConfigError(f"profile {profile!r}: {problem}")
