"""Multirotor flights as a power demand in W, so the closed loop raises the current as the pack sags.

A flight is a fixed head (arm, takeoff burst, climb), a seeded random middle of flight segments, and a
fixed tail (descent, landing) that ends at `duration_s`. Segment levels are C-rates of the configured pack
(`capacity_ah`, `nominal_v`), so "100 C of its pack" means 100 x capacity_ah x nominal_v watts.
Sources (DESIGN.md, "Reference numbers"): a 5-inch FPV quad peaks at 150-190 A on a 4S 1300-1500 mAh
pack (over 100 C) in 3-5 min flights; a 3DR Solo hovers at about 20 A and climbs at about +20 %;
industrial packs run 3 C continuous and 5 C peak.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from hil.profiles.base import BENCH_PACK, PackRating, Profile, ensure, n_samples, n_segments, piecewise
from hil.profiles.compose import add_noise


class _Segment(NamedTuple):
    """One kind of flight segment: how often it is drawn, and its C-rate and length ranges."""
    weight: float
    c_min: float
    c_max: float
    s_min: float
    s_max: float


def _flight(name: str, duration_s: float, dt_s: float, seed: int, pack: PackRating,
            head: list[tuple[float, float]], middle: list[_Segment], first_middle: int,
            tail: list[tuple[float, float]], noise: float) -> np.ndarray:
    """Power in W: `head` and `tail` are (C-rate, seconds) pairs; the middle is drawn from `middle`,
    starting with segment kind `first_middle` so every flight contains it at least once."""
    ensure(pack.capacity_ah > 0 and pack.nominal_v > 0, name, "capacity_ah and nominal_v must be > 0")
    ensure(noise >= 0, name, f"noise must be >= 0 (a fraction of demand), got {noise}")
    n = n_samples(duration_s, dt_s)
    fixed_s = sum(s for _, s in head) + sum(s for _, s in tail)
    middle_s = duration_s - fixed_s
    ensure(middle_s >= middle[first_middle].s_min, name,
           f"duration_s {duration_s} leaves no room for a flight between takeoff and landing "
           f"({fixed_s:g} s) plus one {middle[first_middle].s_min:g} s segment")
    rng = np.random.default_rng(seed)
    weight, c_min, c_max, s_min, s_max = np.array(middle).T
    # Enough segments even if all are the shortest.
    count = n_segments(name, middle_s, s_min.min(), f"the shortest flight segment ({s_min.min():g} s)")
    kinds = rng.choice(len(middle), size=count, p=weight / weight.sum())
    kinds[0] = first_middle
    c_rate = c_min[kinds] + (c_max - c_min)[kinds] * rng.random(count)
    seconds = s_min[kinds] + (s_max - s_min)[kinds] * rng.random(count)
    # Cut the middle to fit exactly, so the landing always ends the flight at duration_s.
    seconds = np.clip(middle_s - (np.cumsum(seconds) - seconds), 0.0, seconds)
    levels_c = np.concatenate([[c for c, _ in head], c_rate, [c for c, _ in tail]])
    durations_s = np.concatenate([[s for _, s in head], seconds, [s for _, s in tail]])
    flight = Profile(name, "power", dt_s, pack.c_rate_to_w(piecewise(levels_c, durations_s, dt_s, n)))
    return add_noise(flight, noise, seed=[seed, 1], relative=True).demand


def drone_fpv(duration_s: float = 240.0, dt_s: float = 0.001, *, seed: int = 0, capacity_ah: float = 1.5,
              nominal_v: float = 14.8, idle_c: float = 1.0, takeoff_c: float = 40.0, cruise_c: float = 8.0,
              manoeuvre_c: float = 50.0, punch_c: float = 115.0, punch_s: float = 1.5, land_c: float = 6.0,
              noise: float = 0.02) -> Profile:
    """A 5-inch FPV freestyle flight: arm, takeoff burst, then cruise, flips and rolls, punch-outs and
    dives, then landing. Power in W.

    Defaults: the pack is 4S 1500 mAh LiPo (4 x 3.7 V nominal). `punch_c` 115 C is 172 A at 1.5 Ah, inside
    the 150-190 A reference and over 100 C; every flight starts its middle with a punch-out of `punch_s`
    so the peak is always there. `duration_s` 240 s is a 4 min flight (3-5 min reference). The cruise,
    manoeuvre, dive and landing levels are estimates chosen so a flight averages about 18 C: 240 s then
    uses about 80 % of the pack, consistent with 3-5 min flights. `noise` is relative throttle noise per
    sample; its 2 % lifts the highest samples to about 125 C (188 A), still inside the reference.
    On the 16S1P 5 Ah bench pack these watts would be about 10 C: run this profile against a 4S pack
    model, or rescale with `scale_to_pack` (which keeps the C-rates, so only with a model that allows them).
    """
    name = "drone-fpv"
    ensure(punch_s > 0, name, f"punch_s must be > 0 s, got {punch_s}")
    middle = [
        _Segment(0.5, 0.8 * cruise_c, 1.2 * cruise_c, 2.0, 6.0),          # cruise between tricks
        _Segment(0.3, 0.6 * manoeuvre_c, 1.4 * manoeuvre_c, 0.3, 1.0),    # flips, rolls, sharp turns
        _Segment(0.1, punch_c, punch_c, punch_s, punch_s),                  # full-throttle punch-out
        _Segment(0.1, idle_c, 3.0 * idle_c, 1.0, 2.0),                      # dive at low throttle
    ]
    demand_w = _flight(name, duration_s, dt_s, seed, PackRating(capacity_ah, nominal_v),
                       head=[(0.0, 1.0), (idle_c, 2.0), (takeoff_c, 1.0)], middle=middle, first_middle=2,
                       tail=[(land_c, 3.0), (0.0, 1.0)], noise=noise)
    return Profile(name, "power", dt_s, demand_w,
                   f"5-inch FPV flight, punch-outs to {punch_c:g} C of a {capacity_ah:g} Ah {nominal_v:g} V pack")


def drone_industrial(duration_s: float = 600.0, dt_s: float = 0.01, *, seed: int = 0,
                     capacity_ah: float = BENCH_PACK.capacity_ah, nominal_v: float = BENCH_PACK.nominal_v,
                     hover_c: float = 2.5, peak_c: float = 5.0,
                     climb_s: float = 20.0, noise: float = 0.02) -> Profile:
    """An industrial multirotor mission: takeoff burst, climb, hover and survey legs with gust corrections,
    descent and landing. Power in W.

    The pack defaults to the 16S1P 5 Ah bench pack (58.08 V nominal). `hover_c` 2.5 C puts the climb
    (+20 %, the 3DR Solo reference) at 3 C, the continuous rating of industrial packs; the takeoff burst
    and gust corrections reach `peak_c` 5 C, their peak rating, and the flight controller caps demand
    there (noise included). For scale, the 3DR Solo's 20 A hover on its 5.2 Ah pack is about 3.8 C.
    Segment lengths and the survey levels (1.05-1.15 x hover) are estimates.
    """
    name = "drone-industrial"
    ensure(0 < hover_c <= peak_c, name, f"need 0 < hover_c ({hover_c}) <= peak_c ({peak_c})")
    ensure(climb_s >= 0, name, f"climb_s must be >= 0, got {climb_s}")
    middle = [
        _Segment(0.45, 0.95 * hover_c, 1.05 * hover_c, 5.0, 20.0),        # hover, e.g. inspecting
        _Segment(0.45, 1.05 * hover_c, 1.15 * hover_c, 10.0, 30.0),       # forward survey leg
        _Segment(0.10, 0.8 * peak_c, peak_c, 1.0, 3.0),                    # gust correction
    ]
    pack = PackRating(capacity_ah, nominal_v)
    demand_w = _flight(name, duration_s, dt_s, seed, pack,
                       head=[(0.0, 1.0), (0.1 * hover_c, 2.0), (peak_c, 2.0), (1.2 * hover_c, climb_s)],
                       middle=middle, first_middle=0,
                       tail=[(0.8 * hover_c, 15.0), (1.1 * hover_c, 2.0), (0.0, 1.0)], noise=noise)
    return Profile(name, "power", dt_s, np.minimum(demand_w, pack.c_rate_to_w(peak_c)),
                   f"Industrial mission: hover {hover_c:g} C, peaks {peak_c:g} C of a {capacity_ah:g} Ah "
                   f"{nominal_v:g} V pack")
