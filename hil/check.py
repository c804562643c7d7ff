"""`hil check`: bring up a bench before a run. Does it answer as the rig says, in a few seconds, without a test?

    hil check --rig rigs/mybench.toml [--listen-s 3] [--listen-only] [--json]

It loads every file the rig names (the preflight `hil run` does), takes the rig's lock, opens the bench and
switches the cell emulator's outputs on, with the BMS asked for STANDBY (contactors open, no load), lets
what was queued meanwhile arrive (half a second), then listens for `--listen-s` seconds. It reports:

- the BMS's state and the build it says it runs, against the rig's `[dut] firmware`;
- where the harness has UDS for the BMS (`hil.devices.uds`), the build it says there and its stored DTCs
  (a note: a bench's BMS keeps the last run's); UDS that does not answer is a problem; where the DUT map gives
  a security key, it is tried once (the extended session, seed, key, then the default session again, nothing
  written): a key the BMS refuses is a problem, found here rather than by the suite's security tests;
- each message on the DUT's bus: frames and mean cycle. A message the spec times (`[cycle_times]`) or the
  proxy reads (status, current, SOC) that never came, or came off its spec's cycle by more than its
  tolerance, is a problem; so are CRC, alive-counter and length errors, and a message that stopped;
- frames with IDs no DBC of the rig knows, as a note (on a shared bus, other nodes' traffic);
- the wiring: every cell channel, then every thermistor channel (on a rig with "thermistors"), is stepped
  through a staircase up the spec's window and down it (`hil.channels`), and what the BMS reports is read
  back against the spec's `[accuracy]`. A channel off by more, not reported, or reported at another channel's
  level (a swapped sense wire) is a problem, as is a BMS the staircase takes out of STANDBY. `--listen-only`
  leaves the channels alone;
- the safe state after it (load zero, contactors open, outputs off, supply), each step read back.

Exit 0 when nothing is wrong, 1 when something is (one line each), 2 for a rig that does not load or a
bench that cannot start (an adapter's driver missing, say).
`--json` adds everything as one JSON object, the last line.
"""
from __future__ import annotations

import argparse
import contextlib
import json

from hil.errors import HilError
from hil.protocol import BmsState
from hil.safety import NotSafe, live

DEFAULT_LISTEN_S = 3.0   # three cycles of a once-a-second message: enough for its mean cycle
LOCK_WAIT_S = 1.0        # a rig in use is reported, not waited for
SETTLE_S = 0.5           # heard before the listening starts, not timed


def register(sub) -> None:
    from hil.cli import add_rig_options
    parser = sub.add_parser("check", help="bring up a bench: does the BMS answer, on time, with the right build?",
                            description="Open the rig's bench with the BMS in STANDBY, listen, and say what was "
                                        "heard: the BMS's state and build, each message's cycle against the spec, "
                                        "bus errors, and the safe state. Exit 1 when something is wrong.")
    add_rig_options(parser)
    parser.add_argument("--listen-s", type=float, default=DEFAULT_LISTEN_S, metavar="S",
                        help=f"seconds to listen (default {DEFAULT_LISTEN_S:g})")
    parser.add_argument("--listen-only", action="store_true",
                        help="do not step the cell and thermistor channels (the wiring check)")
    parser.add_argument("--json", action="store_true", help="also print the findings as JSON, last line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hil.rig import load_rig, preflight
    if not 1.0 <= args.listen_s <= 600:
        raise HilError(f"--listen-s {args.listen_s:g}: expected seconds in 1..600 (two cycles of the slowest "
                       "message, at least)")
    rig = load_rig(args.rig, args.overrides)
    preflight(rig)
    findings = check(rig, args.listen_s, step_channels=not args.listen_only)
    print("\n".join(describe(findings)))
    if args.json:
        print(json.dumps(findings))
    return 0 if findings["passed"] else 1


def check(rig, listen_s: float, step_channels: bool = True) -> dict:
    """Listen to the rig's bench for `listen_s` with the BMS in STANDBY, then (`step_channels`) step its
    channels; the findings as plain data."""
    with bench_in_standby(rig, "hil check") as (bench, outcome):
        # Frames queued while the bench was set up (a serial adapter's, a process's boards) arrive bunched; the
        # cycles are timed from here.
        bench.monitor.reset_stats()
        bench.ce_monitor.reset_stats()
        started_s = bench.loop.t_s
        bench.loop.run_for(listen_s)
        findings = _listen(bench, rig, started_s)
        _diagnose(bench, findings)
        if step_channels:
            _step_channels(bench, rig, findings)
    safe = outcome["safe"]
    findings["safe"] = [step.describe() for step in safe.steps]
    if not safe.confirmed:
        findings["problems"].append(f"bench not confirmed safe: {safe.describe()}")
    findings["passed"] = not findings["problems"]
    return findings


@contextlib.contextmanager
def bench_in_standby(rig, holder: str):
    """The rig's bench for a command outside any test (`holder`, e.g. "hil check"), as a test gets it: the rig's
    lock for a hardware rig, the cell emulator's outputs on with the BMS asked for STANDBY (contactors open, no
    load), SETTLE_S to let it settle; made safe at the end, whatever ends it. Yields (bench, outcome):
    outcome["safe"] is the safe state's read-back once the block has left."""
    from hil.bench import Bench
    from hil.pytest_plugin import rig_lock
    # A hardware rig is one run's at a time, as under pytest; the emulated boards are this process's own.
    lock = rig_lock(rig.name, holder, LOCK_WAIT_S) if rig.data["dut"]["kind"] == "external" \
        else contextlib.nullcontext()
    outcome = {}
    with lock, Bench(rig) as bench, live(bench):
        try:
            bench.cell_emulator.enable(True)
            bench.loop.run_for(SETTLE_S)
            yield bench, outcome
        finally:
            try:
                outcome["safe"] = bench.make_safe()
            except NotSafe as exc:
                outcome["safe"] = exc.state


def _listen(bench, rig, started_s: float) -> dict:
    """What was heard since `started_s` (bench time), and what is wrong with it."""
    bms, monitor = bench.bms, bench.monitor
    problems = []
    expected = rig.expected_firmware
    try:
        firmware = bench.firmware_version()
    except HilError as exc:   # no answer on CAN in time, or a debug UART that does not answer
        firmware = None
        problems.append(f"the BMS said no firmware version: {exc}")
    if expected is not None and firmware is not None and firmware != expected:
        problems.append(f"the BMS runs build {firmware}, but the rig's [dut] firmware is {expected}")
    timed = bench.spec.data["cycle_times"]
    read = [bms.contactor_readback.message, bms.current_readback.message, bms.soc_message]
    messages = monitor.summary()["messages"]
    for name, stats in messages.items():   # a multiplexed message sends several frames a cycle, apart
        stats["multiplexed"] = bench.db.get_message_by_name(name).is_multiplexed()
    for name in dict.fromkeys([*timed, *(name for name in read if name is not None)]):
        if name not in messages:
            problems.append(f"{name} never received in {bench.loop.t_s - started_s:.1f} s")
            continue
        mean_ms, spec = messages[name]["mean_cycle_ms"], timed.get(name)
        if spec is not None and mean_ms is not None and not messages[name]["multiplexed"] \
                and abs(mean_ms - spec["cycle_ms"]) > spec["cycle_ms"] * spec["tolerance_pct"] / 100.0:
            problems.append(f"{name}: mean cycle {mean_ms:.1f} ms, the spec's {spec['cycle_ms']:g} ms "
                            f"± {spec['tolerance_pct']:g} %")
    problems += monitor.problems(unknown_ids=False)
    notes = [line] if (line := monitor.unknown_frames()) else []   # other nodes' frames on a shared bus
    findings = {"rig": f"{rig.name} ({rig.path})", "listened_s": round(bench.loop.t_s - started_s, 3),
                "state": bms.describe(),
                "firmware": firmware, "firmware_expected": expected, "messages": messages,
                "spec_cycles": {name: table["cycle_ms"] for name, table in timed.items()},
                "problems": problems, "notes": notes}
    if bench.ce_monitor is not monitor:   # the cell emulator on a bus of its own
        findings["ce_messages"] = bench.ce_monitor.summary()["messages"]
        findings["problems"] += [f"cell-emulator bus: {line}" for line in bench.ce_monitor.problems(unknown_ids=False)]
    return findings


def _diagnose(bench, findings: dict) -> None:
    """Where the harness has UDS for the BMS: the build it says there, and the DTCs it has stored (a note: a
    bench's BMS keeps the last run's)."""
    uds = bench.uds
    if uds is None:
        return
    try:
        version, stored = uds.software_version(), uds.read_dtcs()
    except HilError as exc:   # no answer, or refused: the rig says it has UDS
        findings["problems"].append(f"UDS ({uds.request_message}/{uds.response_message}): {exc}")
        return
    findings["uds"] = {"software_version": version,
                       "dtcs": {uds.describe(code): status for code, status in stored.items()}}
    said = findings["firmware"]
    if said is not None and version != said:
        findings["problems"].append(f"the BMS says build {said} on CAN but {version} over UDS")
    if stored:
        findings["notes"].append("stored DTCs: " + ", ".join(uds.describe(code, status)
                                                             for code, status in stored.items()))
    if uds.security_key is not None and uds.security_level is not None:
        findings["uds"]["security"] = _try_unlock(uds, findings)


def _try_unlock(uds, findings: dict) -> str:
    """The map's security key tried once, and security locked again by the return to the default session."""
    try:
        with uds.unlocked():
            pass
    except HilError as exc:
        findings["problems"].append(f"UDS security access with the map's [uds] security_key: {exc}")
        return "refused"
    return f"unlocked with the map's key (level 0x{uds.security_level:02X})"


def _step_channels(bench, rig, findings: dict) -> None:
    """The wiring: each kind of channel the BMS reports, stepped through the staircases and read back."""
    from hil.channels import step_cells, step_temperatures
    accuracy, n = bench.spec.section("accuracy"), bench.cell_emulator.n_channels
    steps = [("cell", bench.bms.cell_voltages_v(n), "mV", accuracy["cell_voltage_mv"],
              lambda: step_cells(bench, accuracy["cell_voltage_mv"] / 1000, accuracy["settle_ms"] / 1000))]
    if "thermistors" in rig.capabilities:
        steps.append(("thermistor", bench.bms.cell_temperatures_c(n), "degC", accuracy["temperature_c"],
                      lambda: step_temperatures(bench, accuracy["temperature_c"],
                                                accuracy["temperature_settle_ms"] / 1000)))
    findings["channels"] = {}
    if bench.bms.state != BmsState.STANDBY:   # a silent or faulted BMS: what it reports would not be a wiring's
        findings["notes"].append(f"channels not stepped: the BMS is not in STANDBY ({bench.bms.describe()})")
        return
    try:
        for kind, reported, unit, tolerance, step in steps:
            if reported is None:
                findings["notes"].append(f"{kind} channels not stepped: the BMS's proxy reads none "
                                         "(a DUT map without them)")
                continue
            stepped = step()
            scale = 1000.0 if unit == "mV" else 1.0   # the stimulus is in V, the spec's tolerance in mV
            error, detail = stepped.worst
            findings["channels"][kind] = {"channels": n, "error_max": round(error * scale, 3)
                                          if error != float("inf") else None,
                                          "tolerance": tolerance, "unit": unit, "worst": detail}
            if error * scale > tolerance:
                findings["problems"].append(f"{kind} channels beyond the spec's ±{tolerance:g} {unit}: {detail}")
            if stepped.worst_pack is not None and stepped.worst_pack[0] > accuracy["pack_voltage_v"]:
                findings["problems"].append(f"pack voltage beyond the spec's ±{accuracy['pack_voltage_v']:g} V: "
                                            f"{stepped.worst_pack[1]}")
            if stepped.left_standby is not None:
                findings["problems"].append(f"the {kind} staircase took the BMS out of STANDBY: "
                                            f"{stepped.left_standby}")
                break
    finally:
        bench.release_channels()


def describe(findings: dict) -> list[str]:
    """The findings for a person: the BMS, each message heard, the safe state, then the verdict."""
    expected = findings["firmware_expected"]
    build = findings["firmware"] or "not said"
    lines = [f"rig {findings['rig']}: listened {findings['listened_s']:g} s with the BMS asked for STANDBY",
             f"BMS: {findings['state']}",
             f"firmware: {build}" + (f" (the rig expects {expected})" if expected else " (the rig names none)")]
    for bus, key in (("", "messages"), ("cell-emulator bus: ", "ce_messages")):
        for name, stats in findings.get(key, {}).items():
            lines.append(f"  {bus}{name}: {stats['frames']} frames, " + _cycle(stats, findings["listened_s"],
                         findings["spec_cycles"].get(name) if key == "messages" else None))
    if "uds" in findings:
        uds = findings["uds"]
        security = f", security access {uds['security']}" if "security" in uds else ""
        lines.append(f"UDS: build {uds['software_version']}, {len(uds['dtcs'])} stored DTC(s){security}")
    for kind, stepped in findings.get("channels", {}).items():
        worst = "not all reported" if stepped["error_max"] is None else f"worst {stepped['error_max']:g} " \
            f"{stepped['unit']} (the spec allows ±{stepped['tolerance']:g})"
        lines.append(f"{kind} channels: {stepped['channels']} stepped up and down, {worst}: {stepped['worst']}")
    lines += [f"note: {note}" for note in findings["notes"]]
    lines += [f"safe: {step}" for step in findings["safe"]]
    lines += [f"PROBLEM: {problem}" for problem in findings["problems"]]
    lines.append("OK: the bench answers as the rig says" if findings["passed"]
                 else f"{len(findings['problems'])} problem(s)")
    return lines


def _cycle(stats: dict, listened_s: float, spec_ms: float | None) -> str:
    """A message's timing as heard: its mean cycle against the spec's (or the DBC's); for a multiplexed one,
    its frames per cycle, as its frames come several a cycle."""
    cycle_ms = spec_ms if spec_ms is not None else stats["cycle_ms"]
    if stats.get("multiplexed") and cycle_ms:
        return f"{stats['frames'] * cycle_ms / 1000.0 / listened_s:.1f} per {cycle_ms:g} ms cycle (multiplexed)"
    if stats["mean_cycle_ms"] is None:
        return "once"
    against = f" (spec {spec_ms:g} ms)" if spec_ms is not None else f" (DBC {cycle_ms:g} ms)" if cycle_ms else ""
    return f"mean cycle {stats['mean_cycle_ms']:.1f} ms{against}"
