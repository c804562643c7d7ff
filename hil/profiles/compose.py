"""Composition: sequence, repeat, scale (by a factor, to a peak, to another pack), noise, ramp-rate limits.

Every operation returns a new Profile and leaves its inputs untouched. All are vectorised numpy except
`limit_ramp`, whose Python loop runs once per change of level, not once per sample.
"""
from __future__ import annotations

import math

import numpy as np

from hil.errors import ConfigError
from hil.profiles.base import PackRating, Profile


def sequence(*profiles: Profile, name: str | None = None) -> Profile:
    """Play `profiles` one after another. They must share a kind and a time step."""
    if not profiles:
        raise ConfigError("sequence() needs at least one profile")
    first = profiles[0]
    for other in profiles[1:]:
        if other.kind != first.kind:
            raise ConfigError(f"sequence(): {other.name!r} is a {other.kind} profile but {first.name!r} is "
                              f"{first.kind}; convert one first (power and current differ by the pack voltage)")
        if not math.isclose(other.dt_s, first.dt_s, rel_tol=1e-9):
            raise ConfigError(f"sequence(): {other.name!r} has dt_s {other.dt_s} but {first.name!r} has "
                              f"{first.dt_s}; generate both on the same grid")
    return first.with_demand(np.concatenate([p.demand for p in profiles]),
                             name=name or "+".join(p.name for p in profiles))


def repeat(profile: Profile, count: int) -> Profile:
    """Play `profile` `count` times back to back."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"repeat(): count must be a whole number >= 1, got {count!r}")
    return profile.with_demand(np.tile(profile.demand, count), name=f"{profile.name}*{count}")


def scale(profile: Profile, factor: float) -> Profile:
    """Multiply the demand by `factor` (e.g. 0.2 for one of five BBU modules sharing a shelf)."""
    if not math.isfinite(factor):
        raise ConfigError(f"scale(): factor must be a finite number, got {factor!r}")
    return profile.with_demand(profile.demand * factor)


def scale_to_peak(profile: Profile, peak: float) -> Profile:
    """Scale so the largest discharge demand equals `peak` (W or A), e.g. a rack's rated power."""
    largest = float(profile.demand.max(initial=0.0))
    if largest <= 0.0:
        raise ConfigError(f"scale_to_peak(): {profile.name!r} never discharges, so it has no peak to scale")
    return scale(profile, peak / largest)


def scale_to_pack(profile: Profile, from_pack: PackRating, to_pack: PackRating) -> Profile:
    """Move a profile written for `from_pack` onto `to_pack` at the same C-rate.

    Current scales with capacity (Ah); power scales with energy (Ah x nominal V). Voltage sag differs
    between packs, so the closed loop, not this scaling, decides the current a power profile draws.
    """
    if profile.kind == "current":
        return scale(profile, to_pack.capacity_ah / from_pack.capacity_ah)
    return scale(profile, to_pack.energy_wh / from_pack.energy_wh)


def add_noise(profile: Profile, std: float, *, seed, relative: bool = False) -> Profile:
    """Add white Gaussian noise of standard deviation `std`, in the profile's unit, or as a fraction of
    the demand when `relative` (so rests stay quiet). `seed` is anything numpy's default_rng accepts.
    """
    if not (std >= 0 and math.isfinite(std)):
        raise ConfigError(f"add_noise(): std must be a finite number >= 0, got {std!r}")
    noise = np.random.default_rng(seed).standard_normal(profile.demand.size) * std
    if relative:
        noise *= np.abs(profile.demand)
    return profile.with_demand(profile.demand + noise)


def limit_ramp(profile: Profile, up_per_s: float, down_per_s: float, *, down_hold_s: float = 0.0) -> Profile:
    """Limit how fast the demand may rise (`up_per_s`) and fall (`down_per_s`), in the profile's unit per s.

    Like NVIDIA's GPU power smoothing, a fall starts only after the demand has stayed below the output for
    `down_hold_s` (ramp-down hysteresis); meanwhile the output holds. The output starts at the first
    sample and never overshoots the demand. `math.inf` disables a limit. The loop runs once per change of
    demand level, so ramp-limit a piecewise-constant profile before adding noise, not after.
    """
    for label, rate in (("up_per_s", up_per_s), ("down_per_s", down_per_s)):
        if not rate > 0:
            raise ConfigError(f"limit_ramp(): {label} must be > 0 (math.inf for no limit), got {rate!r}")
    if not (down_hold_s >= 0 and math.isfinite(down_hold_s)):
        raise ConfigError(f"limit_ramp(): down_hold_s must be a finite number >= 0, got {down_hold_s!r}")
    demand = profile.demand
    n = demand.size
    if n == 0:
        return profile.with_demand(demand.copy())
    up_step = up_per_s * profile.dt_s
    down_step = down_per_s * profile.dt_s
    hold_n = int(round(down_hold_s / profile.dt_s))
    ramp = np.arange(1, n + 1, dtype=float)  # 1, 2, 3 ... steps into a ramp
    edges = np.concatenate(([0], np.flatnonzero(np.diff(demand)) + 1, [n]))
    out = np.empty(n)
    level = float(demand[0])
    below_n = 0  # samples the demand has been below the output, for the hysteresis
    for start, stop in zip(edges[:-1].tolist(), edges[1:].tolist()):
        target = float(demand[start])
        run = out[start:stop]
        if target > level:
            below_n = 0
            k = min(run.size, math.ceil((target - level) / up_step))
            np.minimum(level + up_step * ramp[:k], target, out=run[:k])
            run[k:] = target
        elif target < level:
            held = min(run.size, max(0, hold_n - below_n))
            run[:held] = level
            k = min(run.size - held, math.ceil((level - target) / down_step))
            np.maximum(level - down_step * ramp[:k], target, out=run[held:held + k])
            run[held + k:] = target
            below_n += run.size
        else:
            run[:] = target
        level = float(run[-1])
        if level == target:
            below_n = 0
    return profile.with_demand(out)
