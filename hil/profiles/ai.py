"""AI-training cluster load, as seen by a rack's battery backup unit.

Training alternates compute phases (about 90-100 % of TDP) and communication phases (about 30-50 %),
iterating at 0.2-3 Hz with jitter; the step between them is almost instantaneous.
Sources: arXiv 2508.14318 "Power stabilization for AI training datacenters"; a vendor test of 2 s at 90 %
and 2 s at 50 % (see DESIGN.md, "Reference numbers").
"""
from __future__ import annotations

import numpy as np

from hil.profiles.base import Profile


def ai_training(duration_s: float = 60.0, dt_s: float = 0.001, *, rack_power_w: float = 700.0,
                iteration_s: float = 2.0, compute_fraction: float = 0.5, compute_level: float = 0.95,
                comm_level: float = 0.4, jitter: float = 0.05, seed: int = 0) -> Profile:
    """Power demand in W. One iteration = compute then communication; `iteration_s` 2.0 gives 0.5 Hz."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s / dt_s))
    demand_w = np.empty(n)
    i = 0
    while i < n:
        period_s = iteration_s * (1.0 + jitter * rng.standard_normal())
        n_compute = max(1, int(period_s * compute_fraction / dt_s))
        n_comm = max(1, int(period_s * (1.0 - compute_fraction) / dt_s))
        demand_w[i:i + n_compute] = rack_power_w * compute_level
        demand_w[i + n_compute:i + n_compute + n_comm] = rack_power_w * comm_level
        i += n_compute + n_comm
    return Profile("ai-training", "power", dt_s, demand_w,
                   "AI training swings: compute ~95 % / communication ~40 % of rack power at ~0.5 Hz")
