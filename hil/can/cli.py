"""`hil dbc check FILE...`: load DBC files the way the harness does, and self-test every message's layout.
`hil dbc map MAP --dbc FILE... [--channels N]`: check a DUT map or a cell-emulator map against DBC files
without a rig, and say what it maps.

For each file it prints the number of messages, multiplexed messages, 29-bit messages and signals. It exits
0 when every file loads and every message round-trips (see `hil.can.dbc.round_trip_problems`), and 1
otherwise, with "file:line: reason" lines on stderr (a missing file, a syntax error, a file cut short, what
`hil.can.dbc.load_dbc` refuses beyond syntax, a file without messages, a message whose layout does not
round-trip).
"""
from __future__ import annotations

import sys
from pathlib import Path

from hil.can.dbc import load_dbc, message_lines, round_trip_problems
from hil.errors import ConfigError


def register(subparsers) -> None:
    dbc = subparsers.add_parser("dbc", help="CAN database (DBC) tools")
    commands = dbc.add_subparsers(dest="dbc_command", required=True)
    check = commands.add_parser("check", help="load DBC files and self-test every message",
                                description="Load DBC files the way the harness does and self-test every "
                                "message's bit layout. Exit 0 when all is well, 1 otherwise.")
    check.add_argument("files", nargs="+", metavar="FILE", help="DBC file(s)")
    check.set_defaults(func=cmd_check)
    mapped = commands.add_parser("map", help="check a DUT map or a cell-emulator map against DBC files",
                                 description="Check a DUT map (hil/devices/dut_map.py) or a cell-emulator map "
                                 "(hil/devices/ce_map.py) against DBC files, as a rig's preflight does, and say "
                                 "what it maps. Exit 0 when it is good, 1 with the problem otherwise.")
    mapped.add_argument("map", type=Path, metavar="MAP.toml")
    mapped.add_argument("--dbc", dest="dbc_files", type=Path, nargs="+", required=True, metavar="FILE",
                        help="the DBC files of the bus the device is on")
    mapped.add_argument("--channels", type=int, default=16,
                        help="cells of the pack (the rig's pack.n_series and cell_emulator.channels; default 16)")
    mapped.set_defaults(func=cmd_map)


def cmd_check(args) -> int:
    failed = 0
    for path in args.files:
        problems = _check(Path(path))
        failed += bool(problems)
        for problem in problems:
            print(problem, file=sys.stderr)
    return 1 if failed else 0


def _check(path: Path) -> list[str]:
    """Problems with one file, each "file:line: reason"; prints its summary when it loads."""
    try:
        db = load_dbc(path)
    except ConfigError as exc:
        return [str(exc)]
    if not db.messages:
        return [f"{path}: no messages (BO_) in this file; is it a DBC file?"]
    lines = message_lines(path)
    problems = [f"{path}:{lines.get((message.frame_id, message.is_extended_frame), '?')}: {problem}"
                for message in db.messages for problem in round_trip_problems(message)]
    multiplexed = sum(m.is_multiplexed() for m in db.messages)
    extended = sum(m.is_extended_frame for m in db.messages)
    signals = sum(len(m.signals) for m in db.messages)
    print(f"{path}: {len(db.messages)} messages, {multiplexed} multiplexed, {extended} with 29-bit IDs, "
          f"{signals} signals")
    return problems


def cmd_map(args) -> int:
    from hil.can.dbc import load_dbcs
    from hil.datafile import read_toml
    from hil.devices.ce_map import load_ce_map
    from hil.devices.dut_map import load_dut_map
    try:
        if not args.channels > 0:
            raise ConfigError(f"--channels {args.channels}: expected the pack's cell count, >= 1")
        db = load_dbcs(args.dbc_files)
        tables = read_toml(args.map, "map")
        if "read" in tables:   # a DUT map's own table; a cell-emulator map has [cells] and [outputs]
            dut_map = load_dut_map(args.map, db)
            dut_map.check_cells(args.channels, db)
            print(_describe_dut_map(dut_map, args.channels))
        else:
            print(_describe_ce_map(load_ce_map(args.map, db, args.channels)))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _describe_dut_map(dut_map, n_cells: int) -> str:
    cells = ", ".join(f"{key} ({n_cells} cells from {series.message})" for key, series in dut_map.cells.items())
    heartbeats = "".join(f", {name}" for name, _ in dut_map.heartbeats)
    return (f"{dut_map.path}: DUT map of {dut_map.name}: reads {', '.join(dut_map.read)}"
            f"{', ' + cells if cells else ''}; {len(dut_map.states)} state values, {len(dut_map.faults)} faults, "
            f"{len(dut_map.warnings)} warnings; asks through {dut_map.request_message}{heartbeats} "
            f"({', '.join(mode.name for mode in dut_map.modes)})" + _protected(dut_map.protections))


def _protected(protections: dict) -> str:
    """"; E2E: Message P01, ..." for a map's [e2e], or nothing."""
    return "; E2E: " + ", ".join(f"{name} {p.profile}" for name, p in protections.items()) if protections else ""


def _describe_ce_map(ce_map) -> str:
    parts = [f"cells in {len(ce_map.cells.frames)} frames"]
    if ce_map.temperatures is not None:
        parts.append(f"thermistors in {len(ce_map.temperatures.frames)} frames")
    parts += [name for name, mapped in (("current", ce_map.current), ("relays", ce_map.relays),
                                        ("insulation", ce_map.insulation),
                                        ("insulation at any tap", ce_map.insulation_depth),
                                        ("contactor weld", ce_map.contactor_weld),
                                        ("precharge weld", ce_map.precharge_weld),
                                        ("contactor stuck open", ce_map.contactor_stuck_open),
                                        ("DC-link short", ce_map.dc_link_short),
                                        ("HVIL break", ce_map.hvil), ("AFE link break", ce_map.afe_link)) if mapped]
    return (f"{ce_map.path}: cell-emulator map of {ce_map.name}: {', '.join(parts)}; outputs by {ce_map.outputs}, "
            f"read back from {ce_map.readback}" + _protected(ce_map.protections))
