"""`hil dbc check FILE...`: load DBC files the way the harness does, and self-test every message's layout.

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
