"""The bench's two clocks. Both count seconds from the start of a run.

`RealClock` follows `perf_counter_ns` and sleeps to absolute deadlines (sleep first, then spin for the last
`spin_s`, because `time.sleep` overshoots by tens of µs to a few ms). `VirtualClock` jumps straight to each
deadline, so a fully emulated bench runs as fast as the CPU allows and deterministically.

Limits: `RealClock` is as good as the OS scheduler lets one Python thread be; the spin keeps a core busy for
up to `spin_s` per tick (0 turns the spin off), and the GIL means other Python threads (e.g. a python-can
Notifier) can still delay a tick.
"""
from __future__ import annotations

import time

DEFAULT_SPIN_S = 0.0002   # time.sleep overshoots by ~50-100 µs on an idle Linux box; spin past that


class VirtualClock:
    is_real = False

    def __init__(self) -> None:
        self._now_s = 0.0

    def now_s(self) -> float:
        return self._now_s

    def restart(self) -> None:
        self._now_s = 0.0

    def sleep_until(self, deadline_s: float) -> None:
        self._now_s = max(self._now_s, deadline_s)


class RealClock:
    is_real = True

    def __init__(self, spin_s: float = DEFAULT_SPIN_S) -> None:
        self.spin_s = spin_s
        self._t0_ns = time.perf_counter_ns()

    def restart(self) -> None:
        """Make now the start of the run (setup such as starting boards is not part of the timeline)."""
        self._t0_ns = time.perf_counter_ns()

    def now_s(self) -> float:
        return (time.perf_counter_ns() - self._t0_ns) * 1e-9

    def sleep_until(self, deadline_s: float) -> None:
        remaining_s = deadline_s - self.now_s()
        if remaining_s > self.spin_s:
            time.sleep(remaining_s - self.spin_s)
        while self.now_s() < deadline_s:
            pass


def make_clock(kind: str, spin_s: float = DEFAULT_SPIN_S):
    """The clock a rig names in `rig.clock`: "real" (spinning the last `spin_s` of each wait) or "virtual"."""
    return RealClock(spin_s) if kind == "real" else VirtualClock()
