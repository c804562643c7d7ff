"""Soak: the closed loop for a long stretch, watching memory, lost frames, errors and loop overruns.

    python benchmarks/soak.py --json --minutes 10          # real clock, rigs/slcan.toml
    python benchmarks/soak.py --json --virtual --hours 1   # virtual clock, rigs/sim.toml
    python benchmarks/soak.py --report reports/soak ...    # where the record goes (this is the default)
    python benchmarks/soak.py --set rig.realtime_priority=50 ...   # any rig key, as `hil run --set`

Powers the bench up and replays a 60 s `ai-training` profile (hil.profiles.PROFILES) back to back, sized so
the whole run uses at most 30 % of the pack's charge. Progress goes to stderr once a minute of bench time.
The record of the run goes to disk as it runs, as on any long bench run: the trace to `<report>/soak.csv`
and every frame to `<report>/soak.blf`; memory holds only the trace's last minute (`trace_memory_rows`), so
memory does not grow with the length of the run.
The last line is one JSON object:
- `minutes` of bench time run; `wall_s` it took;
- `rss_start_mb`, `rss_end_mb`: this process's resident memory after power-up and at the end (and the
  emulated boards' process's, `boards_rss_*`, on the slcan rig);
- `trace_rows` written to `trace_csv`, `log_frames` written to `can_log`;
- `frames` received (`monitor.counters["frames"]`);
- `dropped`: alive-counter steps of BMS_Status and BMS_PackData that skipped a value, so at least one
  frame the BMS sent never arrived (a run of 16 lost in a row would hide in the 4-bit counter: see
  `missing_cycles`, frames short of what the cycle time predicts, whether lost or never sent);
- `errors`: error frames, bus errors, decode errors, short frames, unknown IDs, CRC errors and messages
  that stopped; `problems` lists them in words;
- `overruns`: loop ticks that started more than a step late (`bench.loop.overruns`), with jitter.
Targets: 10 minutes real clock: memory growth under 5 %, 0 dropped; 1 hour virtual clock: 0 errors.

Limits: the numbers are this machine's under its current load. The run ends with the safe state (read back);
SIGINT or SIGTERM end it early through the same path, without a result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from hil.bench import Bench
from hil.errors import ConfigError
from hil.profiles import PROFILES
from hil.rig import PROJECT_ROOT, load_rig
from hil.safety import sigterm_interrupts

CHUNK_S = 60.0               # bench seconds of profile, replayed back to back
CHARGE_BUDGET = 0.30         # fraction of the pack's charge the whole run may use
DEFAULT_RACK_W = 700.0       # ai-training's own default; lowered for long runs by the budget
COUNTED = ("BMS_Status", "BMS_PackData")
TRACE_MEMORY_S = 60.0        # bench seconds of trace kept in memory; the CSV holds the whole run
ERROR_COUNTERS = ("error_frames", "bus_errors", "decode_errors", "bad_dlc", "unknown_id")
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MiB (Linux /proc)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE_MB


def rack_power_w(bench, duration_s: float) -> float:
    """The profile's 100 % power, at most DEFAULT_RACK_W, such that the run stays within CHARGE_BUDGET."""
    mean_fraction = float(PROFILES["ai-training"](duration_s=CHUNK_S, dt_s=0.01, rack_power_w=1.0).demand.mean())
    budget_ah = CHARGE_BUDGET * float(bench.pack.capacity_ah.sum(axis=1).min())
    return min(DEFAULT_RACK_W, budget_ah * bench.pack.pack_voltage_v * 3600.0 / (mean_fraction * duration_s))


def counted(monitor) -> dict:
    """Frames lost by alive counter and missing by cycle time, of the messages the BMS sends fastest."""
    dropped = missing = 0
    for name in COUNTED:
        stats = monitor.stats[name]
        dropped += stats.bad_counter
        if stats.count > 1:
            expected = round((stats.last_s - stats.first_s) / monitor.cycle_s(name)) + 1
            missing += max(0, expected - stats.count)
    return {"dropped": dropped, "missing_cycles": missing}


def run(virtual: bool, duration_s: float, report_dir: Path, overrides=()) -> dict:
    rig = load_rig(PROJECT_ROOT / "rigs" / ("sim.toml" if virtual else "slcan.toml"), overrides)
    memory_rows = round(TRACE_MEMORY_S / rig.setpoint_period_s)
    with sigterm_interrupts(), Bench(rig, report_dir=report_dir, name="soak", trace_memory_rows=memory_rows) as bench:
        try:
            bench.power_up()
            profile = PROFILES["ai-training"](duration_s=CHUNK_S, dt_s=bench.loop.dt_s, seed=rig.seed,
                                              rack_power_w=rack_power_w(bench, duration_s))
            boards_pid = bench.emulator.proc.pid if bench.emulator is not None else None
            bench.loop.reset_timing()
            start = {"rss": rss_mb(), "boards_rss": rss_mb(boards_pid) if boards_pid else None,
                     "wall_s": time.perf_counter(), "t_s": bench.loop.t_s}
            while bench.loop.t_s - start["t_s"] < duration_s - 1e-9:
                bench.run_profile(profile)
                bench.loop.run_for(min(CHUNK_S, duration_s - (bench.loop.t_s - start["t_s"])))
                print(f"soak: {(bench.loop.t_s - start['t_s']) / 60:.1f} min, rss {rss_mb():.1f} MB, "
                      f"{bench.monitor.counters['frames']} frames, {bench.loop.overruns} overruns; "
                      f"{bench.bms.describe()}", file=sys.stderr, flush=True)
            monitor, timing = bench.monitor, bench.loop.timing()
            result = {
                "minutes": round((bench.loop.t_s - start["t_s"]) / 60.0, 3),
                "wall_s": round(time.perf_counter() - start["wall_s"], 1),
                "rig": rig.name, "clock": rig.clock_description,
                "rss_start_mb": round(start["rss"], 1), "rss_end_mb": round(rss_mb(), 1),
                "trace_rows": bench.trace.rows.recorded, "trace_csv": str(bench.trace.path),
                "log_frames": bench.can_log.frames, "can_log": str(bench.can_log.path),
                "frames": monitor.counters["frames"],
                **counted(monitor),
                "errors": sum(monitor.counters[key] for key in ERROR_COUNTERS)
                + sum(stats.bad_crc for stats in monitor.stats.values()) + len(monitor.stopped()),
                "overruns": bench.loop.overruns,
                "jitter_p99_us": timing["jitter_p99_us"], "jitter_max_us": timing["jitter_max_us"],
                "bms": bench.bms.describe(),
                "problems": monitor.problems(),
            }
            if boards_pid:
                result.update(boards_rss_start_mb=round(start["boards_rss"], 1),
                              boards_rss_end_mb=round(rss_mb(boards_pid), 1))
        finally:
            bench.make_safe()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="real-clock minutes (default 10)")
    parser.add_argument("--virtual", action="store_true", help="virtual clock on rigs/sim.toml; see --hours")
    parser.add_argument("--hours", type=float, default=1.0, help="virtual-clock hours (default 1)")
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "soak",
                        help="directory for the run's trace CSV and CAN log (default reports/soak)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a rig key, e.g. --set rig.realtime_priority=50 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    try:
        result = run(args.virtual, args.hours * 3600.0 if args.virtual else args.minutes * 60.0, args.report,
                     args.overrides)
    except ConfigError as exc:
        raise SystemExit(f"soak: {exc}") from None
    if not args.json:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
