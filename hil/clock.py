"""The bench's two clocks. Both count seconds from the start of a run.

`RealClock` follows `perf_counter_ns` and sleeps to absolute deadlines (sleep first, then spin for the last
`spin_s`, because `time.sleep` overshoots by tens of µs to a few ms). `VirtualClock` jumps straight to each
deadline, so a fully emulated bench runs as fast as the CPU allows and deterministically.

Time dilation: with `HIL_TIME_SCALE=0.1` in the environment, a `RealClock` runs at a tenth of wall speed, in
the harness and in `hil emulate` alike (it inherits the environment), so every cycle time, debounce and
timeout keeps its meaning on a machine too slow for real time, such as a software-emulated VM. A real
bench must run at 1.0, the default: its hardware does not slow down.

Limits: `RealClock` is as good as the OS scheduler lets one Python thread be; the spin keeps a core busy for
up to `spin_s` per tick (0 turns the spin off), and the GIL means other Python threads (e.g. a python-can
Notifier) can still delay a tick.
"""
from __future__ import annotations

import os
import time

from hil.errors import ConfigError

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


def time_scale() -> float:
    """Bench seconds per wall second, from `HIL_TIME_SCALE` (default 1.0)."""
    text = os.environ.get("HIL_TIME_SCALE", "1")
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not 0.0 < scale <= 1.0:
        raise ConfigError(f"HIL_TIME_SCALE={text!r}: expected a number in (0, 1], e.g. 0.1 for a slow VM")
    return scale


class RealClock:
    is_real = True

    def __init__(self, spin_s: float = DEFAULT_SPIN_S) -> None:
        self.spin_s = spin_s
        self.scale = time_scale()
        self._ns_to_s = 1e-9 * self.scale
        self._t0_ns = time.perf_counter_ns()

    def restart(self) -> None:
        """Make now the start of the run (setup such as starting boards is not part of the timeline)."""
        self._t0_ns = time.perf_counter_ns()

    def now_s(self) -> float:
        return (time.perf_counter_ns() - self._t0_ns) * self._ns_to_s

    def sleep_until(self, deadline_s: float) -> None:
        remaining_s = deadline_s - self.now_s()
        if remaining_s > self.spin_s:
            time.sleep((remaining_s - self.spin_s) / self.scale)
        while self.now_s() < deadline_s:
            pass


def make_clock(kind: str, spin_s: float = DEFAULT_SPIN_S):
    """The clock a rig names in `rig.clock`: "real" (spinning the last `spin_s` of each wait) or "virtual"."""
    return RealClock(spin_s) if kind == "real" else VirtualClock()
