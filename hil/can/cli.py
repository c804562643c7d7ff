"""`hil dbc check FILE...`: load DBC files the way the harness does, and self-test every message's layout.

For each file it prints the number of messages, multiplexed messages, 29-bit messages and signals. It exits
0 when every file loads and every message round-trips (see `hil.can.dbc.round_trip_problems`), and 1
otherwise, with "file:line: reason" lines on stderr (a missing file, a syntax error, a file without
messages, a message whose layout does not round-trip).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from hil.can.dbc import load_dbc, round_trip_problems
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
    text = path.read_text(encoding="utf-8", errors="replace")
    problems = [f"{path}:{_line_of(text, message)}: {problem}"
                for message in db.messages for problem in round_trip_problems(message)]
    multiplexed = sum(m.is_multiplexed() for m in db.messages)
    extended = sum(m.is_extended_frame for m in db.messages)
    signals = sum(len(m.signals) for m in db.messages)
    print(f"{path}: {len(db.messages)} messages, {multiplexed} multiplexed, {extended} with 29-bit IDs, "
          f"{signals} signals")
    return problems


def _line_of(text: str, message) -> int | str:
    """Line of the message's `BO_` definition (DBC files write a 29-bit ID with bit 31 set)."""
    frame_id = message.frame_id | (1 << 31 if message.is_extended_frame else 0)
    found = re.search(rf"^[ \t]*BO_[ \t]+{frame_id}[ \t]+{re.escape(message.name)}\b", text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else "?"
