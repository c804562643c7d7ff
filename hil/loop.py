"""The fixed-step loop: call `tick(t_s)` every `dt_s` on absolute deadlines, and measure how late it runs.

Deadlines are `start + k * dt_s`, never `last + dt_s`, so no drift accumulates. On a real clock each tick's
lateness (jitter) is recorded; a tick that starts after its successor's deadline is an overrun, handled by
the policy: "catch-up" runs the missed ticks back to back, "skip" drops them, "fail" raises.
Waiting for a condition is done by running the loop, so the same wait works on both clocks.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hil.errors import HilError, HilTimeout

OVERRUN_POLICIES = ("catch-up", "skip", "fail")


class LoopOverrun(HilError):
    pass


class Loop:
    def __init__(self, clock, dt_s: float, tick: Callable[[float], None], *, overrun_policy: str = "catch-up",
                 jitter_capacity: int = 1 << 20):
        if overrun_policy not in OVERRUN_POLICIES:
            raise HilError(f"overrun policy '{overrun_policy}': expected one of {OVERRUN_POLICIES}")
        self.clock = clock
        self.dt_s = dt_s
        self.tick_fn = tick
        self.overrun_policy = overrun_policy
        self.ticks = 0
        self.overruns = 0
        # Lateness of each tick in µs, in a preallocated ring so a long run does not allocate.
        self._jitter_us = np.zeros(jitter_capacity, dtype=np.float32)

    @property
    def t_s(self) -> float:
        """Simulated time of the next tick."""
        return self.ticks * self.dt_s

    def step(self) -> None:
        deadline_s = self.ticks * self.dt_s
        self.clock.sleep_until(deadline_s)
        if self.clock.is_real:
            late_s = self.clock.now_s() - deadline_s
            self._jitter_us[self.ticks % self._jitter_us.size] = late_s * 1e6
            if late_s > self.dt_s:
                self.overruns += 1
                if self.overrun_policy == "fail":
                    raise LoopOverrun(f"tick {self.ticks} started {late_s * 1e3:.3f} ms late (dt {self.dt_s * 1e3} ms)")
                if self.overrun_policy == "skip":
                    self.ticks += int(late_s / self.dt_s)
                    deadline_s = self.ticks * self.dt_s
        self.tick_fn(deadline_s)
        self.ticks += 1

    def run_for(self, duration_s: float) -> None:
        end_tick = self.ticks + int(round(duration_s / self.dt_s))
        while self.ticks < end_tick:
            self.step()

    def run_until(self, condition: Callable[[], bool], timeout_s: float, describe: Callable[[], str] | str = "") -> float:
        """Run until `condition()` holds; return the time it first held. Raise `HilTimeout` with what was seen."""
        end_tick = self.ticks + int(round(timeout_s / self.dt_s))
        while self.ticks < end_tick:
            if condition():
                return self.t_s
            self.step()
        if condition():
            return self.t_s
        seen = describe() if callable(describe) else describe
        raise HilTimeout(f"condition not met within {timeout_s:g} s (at t={self.t_s:.3f} s); seen: {seen}")

    def timing(self) -> dict:
        n = min(self.ticks, self._jitter_us.size)
        jitter = self._jitter_us[:n] if n else np.zeros(1, dtype=np.float32)
        return {"ticks": self.ticks, "overruns": self.overruns,
                "jitter_p50_us": float(np.percentile(jitter, 50)),
                "jitter_p99_us": float(np.percentile(jitter, 99)),
                "jitter_max_us": float(jitter.max())}
