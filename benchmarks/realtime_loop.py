"""Real-clock loop timing: 1 kHz, a 96S pack, emulated BMS and cell emulator (by default in this process), loaded.

    python benchmarks/realtime_loop.py --json [--seconds 10] [--floor] [--priority 50] [--wait sleep|busy]
                                       [--rig rigs/slcan.toml]

Powers the bench up, then runs a constant discharge for `--seconds` on the real clock and prints the loop's
timing for that stretch (power-up excluded), with the cost of the tick itself. The last line is one JSON
object: jitter_p50_us, jitter_p99_us, jitter_max_us, overruns, ticks, tick_cost_p50_us, tick_cost_p99_us,
tick_cost_max_us, and to tell the bench's own cost from the machine's interruptions:
- tick_cpu_p99_us, tick_cpu_max_us: the CPU time the tick's thread spent in it (wall cost minus the time it
  was preempted, or waited for the GIL while the CAN Notifier thread held it);
- late_ticks: ticks that started more than LATE_US late, by the cause of their run of late ticks:
  "tick_cpu" (a tick's own CPU time ran past the next deadline), "gil_wait" (a tick's wall time did while
  its CPU time did not, and this process's other threads, i.e. the CAN Notifier, used that time),
  "preempted_in_tick" (likewise, but nothing of this process ran: the OS or hypervisor ran something else),
  "late_wakeup" (no tick ran long: the wait before the tick ended late, because the OS or hypervisor woke
  the thread late or preempted its spin, or, rarely, the Notifier held the GIL when it woke);
- gc_collections: garbage collections per generation during the run.
With --floor, the same loop also runs for `--seconds` with a tick that only burns a constant 150 us of CPU:
its jitter and overruns (floor_*) are what this machine allows any 1 kHz Python loop right now.

`--rig rigs/slcan.toml` runs the same with the boards in their own process behind the slcan pty, both
processes at `--priority`.
`--priority` is the loop thread's SCHED_FIFO priority (a rig's `realtime_priority`, hil/clock.py): 50 by
default here, the way to run a 1 kHz bench on a PC of its own; it needs root or CAP_SYS_NICE, and 0 runs at
normal scheduling. `--wait` is how the real clock waits between ticks: "sleep" (the default) or "busy" (the
CPU never idles; refused with a real-time priority). The JSON says both.

Target: p99 <= 250 us and 0 overruns in 10 s.

Limits: the numbers are this machine's under its current load; other busy processes show up as jitter
(late_wakeup and preempted_in_tick). In a VM, time the hypervisor takes the virtual CPU away during a tick
can count as the thread's CPU time (tick_cpu) where the guest kernel does not account it as steal. Timing
each tick adds a few us of clock reads to it.
"""
from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from hil.bench import Bench
from hil.clock import WAITS, RealClock
from hil.errors import ConfigError
from hil.loop import Loop
from hil.rig import PROJECT_ROOT, load_rig

OVERRIDES = ['rig.clock="real"', "pack.n_series=96", "cell_emulator.channels=96"]
LOAD_A = 10.0
LATE_US = 250.0       # the jitter target: a tick later than this counts as late
FLOOR_TICK_US = 150.0  # the floor run's tick: about the bench's median tick cost


class TickTimes:
    """Per tick: deadline, start (both bench seconds), wall cost, and CPU time of its thread and of the
    whole process (ns)."""

    def __init__(self, loop: Loop, n_ticks: int):
        self.loop = loop
        self.deadline_s = np.zeros(n_ticks)
        self.start_s = np.zeros(n_ticks)
        self.wall_ns = np.zeros(n_ticks, dtype=np.int64)
        self.cpu_ns = np.zeros(n_ticks, dtype=np.int64)
        self.process_cpu_ns = np.zeros(n_ticks, dtype=np.int64)
        self.count = 0

    def wrap(self, tick):
        now_s, capacity = self.loop.clock.now_s, self.deadline_s.size

        def timed_tick(t_s: float) -> None:
            start_s, wall0 = now_s(), time.perf_counter_ns()
            cpu0, process0 = time.thread_time_ns(), time.process_time_ns()
            tick(t_s)
            cpu, process = time.thread_time_ns() - cpu0, time.process_time_ns() - process0
            wall = time.perf_counter_ns() - wall0
            if self.count < capacity:
                i = self.count
                self.deadline_s[i], self.start_s[i], self.wall_ns[i] = t_s, start_s, wall
                self.cpu_ns[i], self.process_cpu_ns[i] = cpu, process
            self.count += 1
        return timed_tick

    def summary(self) -> dict:
        n = min(self.count, self.deadline_s.size)
        wall_us, cpu_us = self.wall_ns[:n] / 1000.0, self.cpu_ns[:n] / 1000.0
        return {"tick_cost_p50_us": _round(np.percentile(wall_us, 50)),
                "tick_cost_p99_us": _round(np.percentile(wall_us, 99)), "tick_cost_max_us": _round(wall_us.max()),
                "tick_cpu_p99_us": _round(np.percentile(cpu_us, 99)), "tick_cpu_max_us": _round(cpu_us.max()),
                "late_ticks": self.late_ticks(n)}

    def late_ticks(self, n: int) -> dict:
        """Late ticks by the cause of the run of late ticks they belong to (see the module description)."""
        causes = {"tick_cpu": 0, "gil_wait": 0, "preempted_in_tick": 0, "late_wakeup": 0}
        late = (self.start_s[:n] - self.deadline_s[:n]) * 1e6 > LATE_US
        cause = None
        for i in np.flatnonzero(late):
            if i == 0 or not late[i - 1] or cause is None:  # the first late tick of a run: find why
                cause = self._why_late(i)
            causes[cause] += 1
        return causes

    def _why_late(self, i: int) -> str:
        if i == 0:
            return "late_wakeup"
        previous_start_s = self.start_s[i - 1]
        if previous_start_s + self.wall_ns[i - 1] * 1e-9 <= self.deadline_s[i]:
            return "late_wakeup"
        if previous_start_s + self.cpu_ns[i - 1] * 1e-9 > self.deadline_s[i]:
            return "tick_cpu"
        # The time the tick's thread did not run: did the process's other threads (the Notifier) use it?
        off_cpu_ns = self.wall_ns[i - 1] - self.cpu_ns[i - 1]
        others_ns = self.process_cpu_ns[i - 1] - self.cpu_ns[i - 1]
        return "gil_wait" if others_ns > off_cpu_ns / 2 else "preempted_in_tick"


def run(seconds: float, wait: str, priority: int, rig_path: Path) -> dict:
    rig = load_rig(rig_path, OVERRIDES + [f'rig.wait="{wait}"', f"rig.realtime_priority={priority}"])
    with Bench(rig) as bench:
        bench.power_up()
        bench.set_load(LOAD_A)
        loop = bench.loop
        # Time the tick itself, so lateness can be told apart from an expensive tick.
        times = TickTimes(loop, round(seconds / loop.dt_s) + 1)
        loop.tick_fn = times.wrap(loop.tick_fn)
        ticks0 = loop.ticks
        loop.reset_timing()
        gc0 = [g["collections"] for g in gc.get_stats()]
        loop.run_for(seconds)
        gc_collections = [g["collections"] - c for g, c in zip(gc.get_stats(), gc0)]
        timing = loop.timing()
        assert bench.bms.contactors_closed, f"the load tripped the BMS: {bench.bms.describe()}"
    return {"rig": rig.name, "seconds": seconds, "wait": wait, "priority": priority,
            "n_series": rig.data["pack"]["n_series"],
            "jitter_p50_us": _round(timing["jitter_p50_us"]), "jitter_p99_us": _round(timing["jitter_p99_us"]),
            "jitter_max_us": _round(timing["jitter_max_us"]), "overruns": timing["overruns"],
            "ticks": timing["ticks"] - ticks0, **times.summary(), "gc_collections": gc_collections}


def floor(seconds: float, wait: str, priority: int) -> dict:
    """The same loop and clock with a tick that burns FLOOR_TICK_US of CPU and nothing else."""
    def busy_tick(_t_s: float) -> None:
        end_ns = time.perf_counter_ns() + FLOOR_TICK_US * 1000
        while time.perf_counter_ns() < end_ns:
            pass

    clock = RealClock(wait=wait, priority=priority, where="--priority")
    loop = Loop(clock, 0.001, busy_tick)
    clock.restart()
    try:
        loop.run_for(seconds)
    finally:
        clock.release()
    timing = loop.timing()
    return {"floor_jitter_p99_us": _round(timing["jitter_p99_us"]), "floor_jitter_max_us": _round(timing["jitter_max_us"]),
            "floor_overruns": timing["overruns"]}


def _round(value) -> float:
    return round(float(value), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of loaded running (default 10)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--floor", action="store_true", help="also time a loop whose tick only burns 150 us")
    parser.add_argument("--wait", choices=WAITS, default="sleep",
                        help="how the real clock waits between ticks (default sleep)")
    parser.add_argument("--rig", type=Path, default=PROJECT_ROOT / "rigs" / "sim.toml",
                        help="rig file (default rigs/sim.toml, boards in this process; rigs/slcan.toml puts "
                             "them in their own process behind the pty)")
    parser.add_argument("--priority", type=int, default=50,
                        help="the loop thread's SCHED_FIFO priority, 0 for normal scheduling (default 50; "
                             "needs root or CAP_SYS_NICE)")
    args = parser.parse_args()
    try:
        result = run(args.seconds, args.wait, args.priority, args.rig)
        if args.floor:
            result.update(floor(args.seconds, args.wait, args.priority))
    except ConfigError as exc:
        raise SystemExit(f"realtime_loop: {exc}") from None
    if not args.json:
        for key, value in result.items():
            print(f"{key:>18}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
