"""The bench's two clocks. Both count seconds from the start of a run.

`RealClock` follows `perf_counter_ns` and waits for absolute deadlines in one of two ways (a rig's
`[rig] wait`):
- "sleep" (the default): sleep first, then spin for the last `spin_s`, because `time.sleep` overshoots by
  tens of µs to a few ms. The CPU idles between ticks.
- "busy": never sleep. Until the last 30 µs the thread yields the GIL with `time.sleep(0)`, which returns at
  once (so other threads, such as python-can's Notifier, still run), then it spins. The CPU never idles, and
  the loop takes a whole core.
A rig's `[rig] realtime_priority` (1-99; 0, the default, is the OS's normal scheduling) runs the thread that
waits, the loop's, under Linux's SCHED_FIFO at that priority from its first wait until `release()` (a
bench's close): no ordinary process can then take its CPU while it has work, and it is woken the moment its
sleep ends. It needs root, CAP_SYS_NICE or an rtprio limit; without the right, the clock refuses at setup,
saying how to get it. The threads that stamp received frames (python-can's Notifier readers, `raise_reader`)
go one priority below it: python-can's serial interfaces (slcan) stamp a frame when it is parsed, so at normal
scheduling a worker of `pytest -n 2` beside them delayed one BMS_PackData stamp by 20.8 ms, a 40.8 ms gap in a
20 ms cycle the suite allows 40: the bench's own latency counted against the BMS. Everything else keeps normal
scheduling.
`VirtualClock` jumps straight to each deadline, so a fully emulated bench runs as fast as the CPU allows and
deterministically.

Measured on the 2-core development VM, alternating 10 s runs of the 96S bench at 1 kHz
(`benchmarks/realtime_loop.py --json --priority N [--wait ...]`):
- "sleep" at normal scheduling: 0-13 overruns (median 5.5 over 10 runs, 1 without any). The late ticks
  are the thread not being run for milliseconds: even a single-threaded Python spin, never sleeping, sees
  gaps of up to 1.5 ms in 10 s at normal scheduling, from other tasks the OS runs in its place.
- "sleep" at realtime_priority 50: 0 overruns in 9 of 10 runs (median 0), jitter p99 1-25 µs. In the tenth,
  one tick took 4.7 ms of what the guest counts as the thread's CPU time: the hypervisor taking the virtual
  CPU away, which no setting inside the guest prevents.
- "busy" (no priority): median 2.5 over 14 runs, 5 without any; the CPU never idles, but the OS still runs
  other tasks in the thread's place. "busy" with a real-time priority is refused: a real-time thread that
  never sleeps is throttled by the kernel (by default 50 ms in every second) and starves the Notifier
  (274-402 overruns in 10 s). Pure spinning holds the GIL, and the Notifier thread then waits up to the
  interpreter's 5 ms switch interval (41 overruns in one run, and a power-up that timed out in another).

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

Limits: `RealClock` is as good as the OS scheduler (and, in a VM, the hypervisor) lets one Python thread be.
At normal scheduling a thread preempted for milliseconds misses those ticks; a real-time priority keeps other
tasks of the same machine off its CPU, but not the hypervisor. The spin keeps a core busy for up to `spin_s`
per tick (0 turns the spin off), and the GIL means other Python threads (e.g. a python-can Notifier) can
still delay a tick. "busy" takes a whole core for as long as the loop runs: on a machine whose cores the
boards' process or parallel test workers also need (a 2-core CI machine), it takes time they need, which is
why "sleep" is the default. A real-time priority costs nothing while the thread sleeps, but while a tick
runs, ordinary processes wait for that core (the kernel keeps 5 % of every second for them); it is no
default because it needs a right most users do not have. The timer slack is set on Linux only (elsewhere
sleeps keep their platform's precision). Objects frozen at a restart are never collected while frozen:
garbage cycles among them (a closed bench's) are freed at the next real-clock restart, which unfreezes
before collecting.
"""
from __future__ import annotations

import contextlib
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
WAITS = ("sleep", "busy")
# Busy waiting yields the GIL until this close to the deadline, then spins: time.sleep(0) takes ~8 µs here.
_BUSY_SPIN_S = 30e-6
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

    def release(self) -> None:
        """Nothing to give back: a virtual clock changes no thread's scheduling."""


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

    def __init__(self, spin_s: float = DEFAULT_SPIN_S, wait: str = "sleep", priority: int = 0,
                 where: str = "clock") -> None:
        """`priority` 1-99 runs the waiting thread under SCHED_FIFO at that priority (0: the OS's normal
        scheduling); `where` names the setting's source (a rig file's key) in errors."""
        if wait not in WAITS:
            raise ConfigError(f"{where}: wait {wait!r}: expected one of {WAITS}")
        if priority and wait == "busy":
            raise ConfigError(f"{where}: wait 'busy' with realtime_priority {priority}: a real-time thread that "
                              "never sleeps is throttled by the kernel and starves the CAN thread (274-402 "
                              "overruns in 10 s measured); use wait 'sleep' with a real-time priority")
        if priority:
            check_realtime(priority, where)
        self.spin_s = spin_s
        self.wait = wait
        self.priority = priority
        self.scale = time_scale()
        self._ns_to_s = 1e-9 * self.scale
        self._t0_ns = time.perf_counter_ns()
        self._precise_thread: int | None = None  # the thread whose timer slack (and priority) was set
        self._realtime: tuple | None = None      # (native thread id, its policy and parameters before)

    def restart(self) -> None:
        """Make now the start of the run (setup such as starting boards is not part of the timeline).

        Setup's garbage is collected now and what survives it frozen, out of the run's collections."""
        _freeze_setup_objects()
        self._t0_ns = time.perf_counter_ns()

    def now_s(self) -> float:
        return (time.perf_counter_ns() - self._t0_ns) * self._ns_to_s

    def sleep_until(self, deadline_s: float) -> None:
        if self._precise_thread != threading.get_ident():
            self.release()  # a thread that waited before gets its own scheduling back
            self._precise_thread = threading.get_ident()
            _precise_sleeps()
            if self.priority:
                self._realtime = _set_fifo(threading.get_native_id(), self.priority)
        if self.wait == "busy":
            while deadline_s - self.now_s() > _BUSY_SPIN_S:
                time.sleep(0)  # releases the GIL and returns at once: the CPU never idles
        else:
            remaining_s = deadline_s - self.now_s()
            if remaining_s > self.spin_s:
                time.sleep((remaining_s - self.spin_s) / self.scale)
        while self.now_s() < deadline_s:
            pass

    def raise_reader(self, thread: threading.Thread) -> None:
        """Run `thread`, a started thread that receives and stamps frames, under SCHED_FIFO one below the loop's
        priority (none at priority 0). It ends with its bus, so nothing is given back."""
        if self.priority and thread.native_id is not None:
            _set_fifo(thread.native_id, max(1, self.priority - 1))

    def release(self) -> None:
        """Give the thread that waited its scheduling from before (a bench's close calls this), so no
        real-time thread outlives its run. Callable from any thread, and more than once."""
        if self._realtime is not None:
            tid, policy, param = self._realtime
            self._realtime = self._precise_thread = None
            with contextlib.suppress(ProcessLookupError):  # the thread has ended: nothing left to restore
                os.sched_setscheduler(tid, policy, param)


def _precise_sleeps() -> None:
    """Timer slack 1 ns for the calling thread (Linux; timer slack is per thread), so its sleeps wake on time."""
    if sys.platform != "linux":
        return
    try:
        ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no libc prctl (an unusual libc): sleeps keep the default slack
        pass


def _set_fifo(tid: int, priority: int) -> tuple:
    """Put thread `tid` under SCHED_FIFO at `priority`; return (tid, policy, parameters) from before."""
    before = (tid, os.sched_getscheduler(tid), os.sched_getparam(tid))
    os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(priority))
    return before


def check_realtime(priority: int, where: str) -> None:
    """Fail now, at setup, if this process may not use SCHED_FIFO at `priority`: try it on this thread and
    put it back."""
    if not hasattr(os, "SCHED_FIFO"):
        raise ConfigError(f"{where}: realtime_priority {priority} needs Linux's SCHED_FIFO, which "
                          f"{sys.platform} does not have; set it to 0")
    low, high = os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO)
    if not low <= priority <= high:
        raise ConfigError(f"{where}: realtime_priority {priority}: expected 0 (normal scheduling) or {low}-{high}")
    try:
        tid, policy, param = _set_fifo(threading.get_native_id(), priority)
    except PermissionError:
        raise ConfigError(f"{where}: realtime_priority {priority}: this user may not run a thread under "
                          "SCHED_FIFO. Run as root, give the Python binary CAP_SYS_NICE (setcap cap_sys_nice+ep), "
                          "or allow an rtprio limit (a line like '@hil - rtprio 99' in "
                          "/etc/security/limits.conf); or set it to 0") from None
    os.sched_setscheduler(tid, policy, param)


def _freeze_setup_objects() -> None:
    """Collect everything (an earlier run's frozen garbage too) and freeze the survivors."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def make_clock(kind: str, spin_s: float = DEFAULT_SPIN_S, wait: str = "sleep", priority: int = 0,
               where: str = "clock"):
    """The clock a rig names in `rig.clock`: "real" (waiting the rig's `wait` way at its `realtime_priority`,
    see above) or "virtual"."""
    return RealClock(spin_s, wait, priority, where) if kind == "real" else VirtualClock()
