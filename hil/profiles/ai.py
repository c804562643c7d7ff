"""AI-training cluster load, as seen by a rack's battery backup unit (power demand in W).

Synchronous training alternates a compute phase (about 90-100 % of TDP) and a communication phase
(about 30-50 %) every iteration, at 0.2-3 Hz (iterations of 1-10 s), and the step between them is almost
instantaneous. A synchronized job start takes the load from about 10 % (idle) to full at once, a
checkpoint pauses compute for seconds, and a crash drops the load to idle.
Sources: arXiv 2508.14318 "Power stabilization for AI training datacenters" (Choukse et al., Microsoft,
OpenAI, NVIDIA, 2025); Uptime Institute and Vertiv notes on AI power swings, including a vendor test of
2 s at 90 % and 2 s at 50 % (DESIGN.md, "Reference numbers").

Defaults are pack-scale: one "rack" of 700 W (the TDP of one NVIDIA H100 SXM GPU, per its datasheet) is
2.4 C of the 16S1P 5 Ah bench pack. For a real rack set `rack_power_w` (e.g. 8 x 700 W = 5600 W for an
8-GPU H100 server) and `racks`; the shape does not change.
"""
from __future__ import annotations

import math

import numpy as np

from hil.profiles.base import Profile, ensure, n_samples, n_segments, piecewise
from hil.profiles.compose import limit_ramp

# Jittered iteration periods are clipped to this band around `iteration_s`, so a heavy tail never
# produces a zero or negative period.
_PERIOD_CLIP = (0.5, 1.5)


def _training_w(name: str, n: int, dt_s: float, seed: int, total_w: float, iteration_s: float,
                compute_fraction: float, compute_level: float, comm_level: float, idle_level: float,
                jitter: float, checkpoint_interval_s: float, checkpoint_s: float,
                crash_at_s: float) -> np.ndarray:
    """`n` samples of training power; the first sample starts a compute phase."""
    ensure(total_w > 0, name, f"racks x rack_power_w must be > 0 W, got {total_w}")
    ensure(iteration_s > 0, name, f"iteration_s must be > 0, got {iteration_s}")
    ensure(0 < compute_fraction < 1, name, f"compute_fraction must be between 0 and 1, got {compute_fraction}")
    ensure(0 <= jitter <= 0.5, name, f"jitter must be 0-0.5 (a fraction of iteration_s), got {jitter}")
    ensure(min(compute_level, comm_level, idle_level) >= 0, name, "levels must be >= 0 (fractions of TDP)")
    ensure(checkpoint_interval_s > 0 and checkpoint_s >= 0, name,
           "checkpoint_interval_s must be > 0 (inf = never) and checkpoint_s >= 0")
    rng = np.random.default_rng(seed)
    n_iter = n_segments(name, n * dt_s, iteration_s * _PERIOD_CLIP[0], f"iteration_s {iteration_s:g} s")
    periods_s = iteration_s * np.clip(1.0 + jitter * rng.standard_normal(n_iter), *_PERIOD_CLIP)
    # Checkpoints fall on the first iteration boundary past each multiple of the interval, counted in
    # training time; the pause itself pushes later iterations back.
    starts_s = np.cumsum(periods_s) - periods_s
    checkpoint_count = np.floor(starts_s / checkpoint_interval_s)
    pause_s = np.where(np.diff(checkpoint_count, prepend=0.0) > 0, checkpoint_s, 0.0)
    levels = np.tile([idle_level, compute_level, comm_level], n_iter) * total_w
    durations_s = np.column_stack([pause_s, periods_s * compute_fraction, periods_s * (1 - compute_fraction)])
    demand_w = piecewise(levels, durations_s.ravel(), dt_s, n, after=idle_level * total_w)
    if math.isfinite(crash_at_s):
        demand_w[max(0, math.ceil(crash_at_s / dt_s - 1e-9)):] = idle_level * total_w
    return demand_w


def ai_training(duration_s: float = 60.0, dt_s: float = 0.001, *, seed: int = 0, racks: int = 1,
                rack_power_w: float = 700.0, iteration_s: float = 2.0, compute_fraction: float = 0.5,
                compute_level: float = 0.95, comm_level: float = 0.4, idle_level: float = 0.1,
                jitter: float = 0.05, checkpoint_interval_s: float = math.inf, checkpoint_s: float = 5.0,
                crash_at_s: float = math.inf) -> Profile:
    """Steady training: compute at `compute_level` x TDP, then communication at `comm_level`. Power in W.

    The load is `racks` x `rack_power_w` (100 % TDP). `iteration_s` 2.0 gives 0.5 Hz, inside the
    0.2-3 Hz band; each period is jittered by `jitter` (a fraction, Gaussian, clipped to 0.5-1.5 x).
    compute_level 0.95 and comm_level 0.4 are mid-range of the 90-100 % and 30-50 % of arXiv 2508.14318.
    Every `checkpoint_interval_s` of training (inf = never) compute pauses at `idle_level` for
    `checkpoint_s`; at `crash_at_s` (inf = never) the job dies and the load falls to `idle_level` (10 %,
    the idle floor of the references) for good; set idle_level 0 to drop the servers too.
    Limit: phases switch within one sample; GPU-to-GPU skew, which rounds real edges, is not modelled.
    """
    name = "ai-training"
    total_w = racks * rack_power_w
    demand_w = _training_w(name, n_samples(duration_s, dt_s), dt_s, seed, total_w, iteration_s,
                           compute_fraction, compute_level, comm_level, idle_level, jitter,
                           checkpoint_interval_s, checkpoint_s, crash_at_s)
    return Profile(name, "power", dt_s, demand_w,
                   f"AI training swings {compute_level:.0%}/{comm_level:.0%} of {total_w:g} W "
                   f"at {1 / iteration_s:.2g} Hz")


def ai_job_start(duration_s: float = 10.0, dt_s: float = 0.001, *, seed: int = 0, racks: int = 1,
                 rack_power_w: float = 700.0, idle_s: float = 1.0, rise_s: float = 0.005,
                 iteration_s: float = 2.0, compute_fraction: float = 0.5, compute_level: float = 0.95,
                 comm_level: float = 0.4, idle_level: float = 0.1, jitter: float = 0.05) -> Profile:
    """A synchronized job start: idle for `idle_s`, then full compute within `rise_s`, then training. Power in W.

    The references put the jump from about 10 % to 100-150 % of TDP "almost instantly";
    `rise_s` 5 ms keeps the 10-90 % edge under 10 ms, and a linear ramp over `rise_s` models it (rise_s
    below dt_s is a one-sample step). compute_level above 1 gives the 100-150 % overshoot.
    """
    name = "ai-job-start"
    ensure(idle_s >= 0 and rise_s >= 0, name, "idle_s and rise_s must be >= 0")
    n = n_samples(duration_s, dt_s)
    total_w = racks * rack_power_w
    n_idle = min(n, int(round(idle_s / dt_s)))
    demand_w = np.full(n, idle_level * total_w)
    if n_idle < n:
        demand_w[n_idle:] = _training_w(name, n - n_idle, dt_s, seed, total_w, iteration_s, compute_fraction,
                                        compute_level, comm_level, idle_level, jitter, math.inf, 0.0, math.inf)
        n_rise = min(n - n_idle, max(1, int(round(rise_s / dt_s))))
        idle_w, full_w = idle_level * total_w, compute_level * total_w
        demand_w[n_idle:n_idle + n_rise] = np.linspace(idle_w, full_w, n_rise + 1)[1:]
    return Profile(name, "power", dt_s, demand_w,
                   f"AI job start: {idle_level:.0%} to {compute_level:.0%} of {total_w:g} W in {rise_s * 1e3:g} ms, "
                   f"then training")


def ai_training_smoothed(duration_s: float = 60.0, dt_s: float = 0.001, *, seed: int = 0, racks: int = 1,
                         rack_power_w: float = 700.0, floor_level: float = 0.6,
                         ramp_up_w_per_s: float = 1000.0, ramp_down_w_per_s: float = 500.0,
                         ramp_down_hysteresis_s: float = 0.5, iteration_s: float = 2.0,
                         compute_fraction: float = 0.5, compute_level: float = 0.95, comm_level: float = 0.4,
                         idle_level: float = 0.1, jitter: float = 0.05, checkpoint_interval_s: float = math.inf,
                         checkpoint_s: float = 5.0, crash_at_s: float = math.inf) -> Profile:
    """`ai-training` behind GPU power smoothing: a power floor plus ramp-up and ramp-down limits. Power in W.

    Mirrors NVIDIA's power smoothing (NVML power-smoothing profile: floor in % of TDP, ramp-up and
    ramp-down rates in W/s, ramp-down hysteresis in ms; NVIDIA blog "How new GB300 NVL72 features provide
    steady power for AI", 2025). `floor_level` is that floor as a fraction (0.6 = 60 %); the rates and
    hysteresis here are per rack (NVML sets them per GPU) and in seconds. The GPUs burn the difference
    between floor and demand, so energy rises. The default numbers are illustrative choices at bench-pack
    scale, not NVIDIA presets. The output never rises faster than racks x ramp_up_w_per_s nor falls faster
    than racks x ramp_down_w_per_s.
    """
    name = "ai-training-smoothed"
    ensure(0 <= floor_level, name, f"floor_level must be >= 0 (a fraction of TDP), got {floor_level}")
    total_w = racks * rack_power_w
    demand_w = _training_w(name, n_samples(duration_s, dt_s), dt_s, seed, total_w, iteration_s,
                           compute_fraction, compute_level, comm_level, idle_level, jitter,
                           checkpoint_interval_s, checkpoint_s, crash_at_s)
    floored = Profile(name, "power", dt_s, np.maximum(demand_w, floor_level * total_w),
                      f"AI training behind power smoothing: floor {floor_level:.0%}, ramps "
                      f"+{ramp_up_w_per_s:g}/-{ramp_down_w_per_s:g} W/s per rack")
    return limit_ramp(floored, racks * ramp_up_w_per_s, racks * ramp_down_w_per_s,
                      down_hold_s=ramp_down_hysteresis_s)
