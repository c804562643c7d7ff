"""The bench's two clocks. Both count seconds from the start of a run.

`RealClock` follows `perf_counter_ns` and sleeps to absolute deadlines (sleep first, then spin for the last
`spin_s`, because `time.sleep` overshoots by tens of µs to a few ms). `VirtualClock` jumps straight to each
deadline, so a fully emulated bench runs as fast as the CPU allows and deterministically.

Time dilation: with `HIL_TIME_SCALE=0.1` in the environment, a `RealClock` runs at a tenth of wall speed, in
the harness and in `hil emulate` alike (it inherits the environment), so every cycle time, debounce and
timeout keeps its meaning on a machine too slow for real time, such as a software-emulated VM. A real
bench must run at 1.0, the default: its hardware does not slow down.

Two things a 1 ms loop cannot afford are set up by `RealClock` (figures from the 2-core development VM):
- Timer slack. Linux lets a normal thread's `time.sleep` wake up to 50 µs late (the default timer slack):
  sleeps overshot by 73 µs at the median, 104 µs at p99 and ~1 ms at p99.9; with the sleeping thread's slack
  at 1 ns, 23 µs, 44 µs and ~0.7 ms. Fewer wake-ups then land past the spin window.
- Full garbage collections. A bench holds ~120k GC-tracked objects (cantools' database above all), and one
  full (generation 2) collection of them takes ~80 ms: 80 missed ticks whenever the collector decides to run.
  `restart()`, where a run's timeline starts after setup, collects setup's garbage and freezes the survivors
  (`gc.freeze`), so the run's own collections only walk what the run allocates (~7 µs each, one or two in
  10 s of a 96-cell bench). Raising the collector's thresholds would only postpone the full collection.

Limits: `RealClock` is as good as the OS scheduler (and, in a VM, the hypervisor) lets one Python thread be:
a thread preempted for milliseconds misses those ticks, and nothing here prevents that. The spin keeps a core
busy for up to `spin_s` per tick (0 turns the spin off), and the GIL means other Python threads (e.g. a
python-can Notifier) can still delay a tick. The timer slack is set on Linux only (elsewhere sleeps keep
their platform's precision). Objects frozen at a restart are never collected while frozen: garbage cycles
among them (a closed bench's) are freed at the next real-clock restart, which unfreezes before collecting.
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading
import time

from hil.errors import ConfigError

# time.sleep overshoots by ~25 µs (p99 ~45 µs) with 1 ns timer slack, ~75 µs (p99 ~100 µs) without: spin past
# that. 100 µs was no better on the 2-core VM (overruns in 10 s, four runs each: 100 µs 2-22, 200 µs 2-8, 500 µs
# 2-9): its stalls are wake-ups milliseconds late, which no spin window short of the whole period covers.
DEFAULT_SPIN_S = 0.0002
_PR_SET_TIMERSLACK = 29  # linux/prctl.h


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
        self._precise_thread: int | None = None  # the thread whose timer slack was set

    def restart(self) -> None:
        """Make now the start of the run (setup such as starting boards is not part of the timeline).

        Setup's garbage is collected now and what survives it frozen, out of the run's collections."""
        _freeze_setup_objects()
        self._t0_ns = time.perf_counter_ns()

    def now_s(self) -> float:
        return (time.perf_counter_ns() - self._t0_ns) * self._ns_to_s

    def sleep_until(self, deadline_s: float) -> None:
        if self._precise_thread != threading.get_ident():
            self._precise_thread = threading.get_ident()
            _precise_sleeps()
        remaining_s = deadline_s - self.now_s()
        if remaining_s > self.spin_s:
            time.sleep((remaining_s - self.spin_s) / self.scale)
        while self.now_s() < deadline_s:
            pass


def _precise_sleeps() -> None:
    """Timer slack 1 ns for the calling thread (Linux; timer slack is per thread), so its sleeps wake on time."""
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl (an unusual libc): sleeps keep the default slack
        pass


def _freeze_setup_objects() -> None:
    """Collect everything (an earlier run's frozen garbage too) and freeze the survivors."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def make_clock(kind: str, spin_s: float = DEFAULT_SPIN_S):
    """The clock a rig names in `rig.clock`: "real" (spinning the last `spin_s` of each wait) or "virtual"."""
    return RealClock(spin_s) if kind == "real" else VirtualClock()
