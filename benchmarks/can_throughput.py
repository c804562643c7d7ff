"""Throughput of the harness's CAN receive and decode path.

`python benchmarks/can_throughput.py --json` ends with one JSON line:

- frames: frames sent in the burst;
- frames_per_s: frames decoded per wall second, from the first send on a python-can `virtual` bus until a
  `Monitor` fed by a `can.Notifier` thread (as the bench does on a real clock) has decoded the last one;
- decoded: frames the Monitor decoded; dropped: frames sent but never seen by the Monitor;
- bad_counter_or_crc: alive-counter and CRC errors the Monitor found (0: the payloads are valid);
- recv_frames_per_s: the same burst queued first, then drained by `recv(timeout=0)` on the caller's thread
  (as the bench does on a virtual clock).

The burst is the reference BMS's own traffic for a 96-cell pack (dbc/bms.dbc): every message of the
emulated firmware at its cycle time, multiplexed cell voltages and temperatures included, with drifting
values, rolling alive counters and sealed CRCs from `PeriodicSender`. It is built before timing starts.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import can

from hil.can.dbc import load_dbc
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender

DBC = Path(__file__).resolve().parents[1] / "dbc" / "bms.dbc"
N_CELLS = 96
DRAIN_TIMEOUT_S = 60.0


class _Capture:
    """Stands in for a bus: keeps what the sender sends."""

    def __init__(self):
        self.frames: list[can.Message] = []

    def send(self, msg: can.Message) -> None:
        self.frames.append(msg)


def build_burst(db, n_frames: int) -> list[can.Message]:
    capture = _Capture()
    sender = PeriodicSender(capture, db)
    t = {"s": 0.0}

    def cell_v(c: int) -> float:
        return 3.6 + 0.3 * math.sin(t["s"] / 20.0 + c / 7.0)

    sender.add("BMS_Status", provider=lambda: {"BMS_State": 3, "BMS_ContactorPos": 1, "BMS_ContactorNeg": 1,
                                               "BMS_FaultBits": 0, "BMS_WarningBits": int(t["s"]) & 3})
    sender.add("BMS_PackData", provider=lambda: {"BMS_PackVoltage": 345.6 + math.sin(t["s"]),
                                                 "BMS_PackCurrent": 120.0 * math.sin(t["s"] / 3.0)})
    sender.add("BMS_Limits", provider=lambda: {"BMS_DischargeCurrentLimit": 250.0, "BMS_ChargeCurrentLimit": 100.0,
                                               "BMS_DischargeVoltageLimit": 259.2, "BMS_ChargeVoltageLimit": 403.2})
    sender.add("BMS_SOC", provider=lambda: {"BMS_SOC": 60.0 - t["s"] / 100.0, "BMS_SOH": 98.5})
    sender.add("BMS_CellStats", provider=lambda: {"BMS_MinCellVoltage": 3.3, "BMS_MaxCellVoltage": 3.9,
                                                  "BMS_MinCellTemp": 24.5, "BMS_MaxCellTemp": 31.0})
    sender.add("BMS_CellVoltages", provider=lambda: [
        {"BMS_CellVoltages_Mux": m, **{f"BMS_Cell{c + 1:02d}_Voltage": cell_v(c) for c in range(4 * m, 4 * m + 4)}}
        for m in range(N_CELLS // 4)])
    sender.add("BMS_CellTemps", provider=lambda: [
        {"BMS_CellTemps_Mux": m, **{f"BMS_Temp{c + 1:02d}": 25.0 + c / 10.0 for c in range(7 * m, min(7 * m + 7, N_CELLS))}}
        for m in range((N_CELLS + 6) // 7)])
    while len(capture.frames) < n_frames:
        sender.tick(t["s"])
        t["s"] += 0.001
    return capture.frames[:n_frames]


def through_notifier(db, frames: list[can.Message]) -> tuple[float, Monitor]:
    channel = f"can-throughput-{time.monotonic_ns()}"
    with can.Bus(interface="virtual", channel=channel) as rx, can.Bus(interface="virtual", channel=channel) as tx:
        monitor = Monitor(db, time.monotonic)
        notifier = can.Notifier(rx, [monitor], timeout=0.01)
        try:
            start = time.perf_counter()
            for msg in frames:
                tx.send(msg)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while monitor.counters["frames"] < len(frames) and time.monotonic() < deadline:
                time.sleep(0.0005)
            elapsed_s = time.perf_counter() - start
        finally:
            notifier.stop()
    return elapsed_s, monitor


def through_recv(db, frames: list[can.Message]) -> float:
    channel = f"can-throughput-recv-{time.monotonic_ns()}"
    with can.Bus(interface="virtual", channel=channel) as rx, can.Bus(interface="virtual", channel=channel) as tx:
        for msg in frames:
            tx.send(msg)
        monitor = Monitor(db, time.monotonic)
        start = time.perf_counter()
        while (msg := rx.recv(timeout=0)) is not None:
            monitor.on_message_received(msg)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--json", action="store_true", help="end with one JSON line (always printed)")
    args = parser.parse_args()
    db = load_dbc(DBC)
    frames = build_burst(db, args.frames)
    elapsed_s, monitor = through_notifier(db, frames)
    decoded = sum(stats.count for stats in monitor.stats.values())
    recv_s = through_recv(db, frames)
    result = {"frames": len(frames), "frames_per_s": round(decoded / elapsed_s),
              "decoded": decoded, "dropped": len(frames) - monitor.counters["frames"],
              "bad_counter_or_crc": sum(s.bad_counter + s.bad_crc for s in monitor.stats.values()),
              "recv_frames_per_s": round(len(frames) / recv_s)}
    if not args.json:
        print(f"{len(frames)} BMS frames through virtual bus -> Notifier -> Monitor in {elapsed_s:.2f} s")
        for problem in monitor.problems(k_cycles=math.inf):  # the burst is over: stopped is expected
            print(f"  {problem}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
