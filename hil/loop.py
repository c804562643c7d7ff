"""The fixed-step loop: call `tick(t_s)` every `dt_s` on absolute deadlines, and measure how late it runs.

Deadlines are `k * dt_s` from the clock's start, never `last + dt_s`, so no drift accumulates. On a real
clock each tick's lateness (jitter) is recorded. A tick that starts more than one `dt_s` after its deadline
is an overrun, counted and handled by the policy:
- "catch-up" runs the missed ticks back to back (every tick still runs; each one still late counts);
- "skip" drops the missed ticks, so the loop resumes on the wall-clock schedule (`skipped` counts them);
- "fail" raises `LoopOverrun`.
Waiting for a condition is done by running the loop, so the same wait works on both clocks.

Limits: jitter samples live in a fixed ring (`jitter_capacity`, about 17 min at 1 kHz by default), so the
percentiles of a longer run describe its last stretch; `overruns` and `jitter_max_us` cover the whole run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from hil.errors import HilError, HilTimeout
from hil.safety import TickGuard

OVERRUN_POLICIES = ("catch-up", "skip", "fail")
# Ticks between two looks at the wall clock for progress: cheap enough to be invisible in the tick cost.
_PROGRESS_CHECK_TICKS = 1024


class LoopOverrun(HilError):
    pass


class Progress(NamedTuple):
    """Where a run stands: simulated seconds, wall seconds since progress was switched on, and their ratio."""
    t_s: float
    wall_s: float

    @property
    def realtime_factor(self) -> float:
        return self.t_s / self.wall_s if self.wall_s > 0 else float("inf")

    def __str__(self) -> str:
        return f"t={self.t_s:.1f} s simulated in {self.wall_s:.1f} s wall ({self.realtime_factor:.1f}x real time)"


class Loop:
    def __init__(self, clock, dt_s: float, tick: Callable[[float], None], *, overrun_policy: str = "catch-up",
                 jitter_capacity: int = 1 << 20):
        if overrun_policy not in OVERRUN_POLICIES:
            raise HilError(f"overrun policy '{overrun_policy}': expected one of {OVERRUN_POLICIES}")
        if not dt_s > 0:
            raise HilError(f"loop dt_s = {dt_s!r}: expected a positive number of seconds")
        self.clock = clock
        self.dt_s = dt_s
        self.tick_fn = tick
        self.overrun_policy = overrun_policy
        self.ticks = 0       # ticks run or skipped: simulated time is ticks * dt_s
        self.overruns = 0
        self.skipped = 0
        # Lateness of each tick in µs, in a preallocated ring so a long run does not allocate.
        # np.full writes every page now, so memory does not creep up as the ring fills during a soak.
        self._jitter_us = np.full(jitter_capacity, 0.0, dtype=np.float32)
        self._jitter_samples = 0
        self._jitter_max_us = 0.0
        self._progress: Callable[[Progress], None] | None = None
        self._progress_every_s = 0.0
        self._progress_wall0_s = 0.0
        self._progress_next_s = 0.0

    @property
    def t_s(self) -> float:
        """Simulated time of the next tick."""
        return self.ticks * self.dt_s

    def on_progress(self, callback: Callable[[Progress], None] | None, every_s: float = 5.0) -> None:
        """Call `callback(Progress)` about every `every_s` of wall time while the loop runs; None stops it.

        The wall clock is read once per 1024 ticks, so on a slow tick rate the calls come later than `every_s`.
        """
        self._progress = callback
        self._progress_every_s = every_s
        self._progress_wall0_s = time.perf_counter()
        self._progress_next_s = self._progress_wall0_s + every_s

    def step(self) -> None:
        deadline_s = self.ticks * self.dt_s
        clock = self.clock
        clock.sleep_until(deadline_s)
        if clock.is_real:
            late_s = clock.now_s() - deadline_s
            late_us = late_s * 1e6
            self._jitter_us[self._jitter_samples % self._jitter_us.size] = late_us
            self._jitter_samples += 1
            self._jitter_max_us = max(self._jitter_max_us, late_us)
            if late_s > self.dt_s:
                self.overruns += 1
                if self.overrun_policy == "fail":
                    raise LoopOverrun(f"tick {self.ticks} (t={deadline_s:.3f} s) started {late_s * 1e3:.3f} ms "
                                      f"late, more than one step of {self.dt_s * 1e3:g} ms (overrun policy 'fail')")
                if self.overrun_policy == "skip":
                    missed = int(late_s / self.dt_s)
                    self.ticks += missed
                    self.skipped += missed
                    deadline_s = self.ticks * self.dt_s
        TickGuard.active = True
        try:
            self.tick_fn(deadline_s)
        finally:
            TickGuard.active = False
        self.ticks += 1
        TickGuard.raise_pending()  # a SIGINT/SIGTERM that came during the tick (see hil.safety.TickGuard)
        if self._progress is not None and self.ticks % _PROGRESS_CHECK_TICKS == 0:
            self._report_progress()

    def _report_progress(self) -> None:
        wall_s = time.perf_counter()
        if wall_s >= self._progress_next_s:
            self._progress_next_s = wall_s + self._progress_every_s
            self._progress(Progress(self.t_s, wall_s - self._progress_wall0_s))

    def run_for(self, duration_s: float) -> None:
        end_tick = self.ticks + round(duration_s / self.dt_s)
        while self.ticks < end_tick:
            self.step()

    def first_time(self, condition: Callable[[], bool], within_s: float) -> float | None:
        """Run until `condition()` holds, for at most `within_s`; return the time it first held, or None if it
        never did (what a test that something must not happen asks)."""
        end_tick = self.ticks + round(within_s / self.dt_s)
        while self.ticks < end_tick:
            if condition():
                return self.t_s
            self.step()
        return self.t_s if condition() else None

    def run_until(self, condition: Callable[[], bool], timeout_s: float,
                  describe: Callable[[], str] | str = "") -> float:
        """Run until `condition()` holds; return the time it first held. Raise `HilTimeout` with what was seen."""
        held_s = self.first_time(condition, timeout_s)
        if held_s is not None:
            return held_s
        seen = describe() if callable(describe) else describe
        raise HilTimeout(f"condition not met within {timeout_s:g} s (at t={self.t_s:.3f} s); seen: {seen}")

    def reset_timing(self) -> None:
        """Forget jitter and overruns so far (e.g. after power-up), to measure one phase of a run."""
        self.overruns = self.skipped = self._jitter_samples = 0
        self._jitter_max_us = 0.0

    def timing(self) -> dict:
        """Ticks, overruns, skipped ticks and jitter p50/p99/max in µs (None on a virtual clock: no lateness)."""
        result = {"ticks": self.ticks, "overruns": self.overruns, "skipped": self.skipped,
                  "jitter_p50_us": None, "jitter_p99_us": None, "jitter_max_us": None}
        n = min(self._jitter_samples, self._jitter_us.size)
        if n:
            p50, p99 = np.percentile(self._jitter_us[:n], (50, 99))
            result.update(jitter_p50_us=float(p50), jitter_p99_us=float(p99), jitter_max_us=self._jitter_max_us)
        return result
