"""Load CAN databases, tolerating the quirks of real files and of cantools versions.

A broken file gives a `ConfigError` naming the file and, where the parser tells, the line. Multiplexed
(also nested), big-endian, 29-bit and CAN FD (up to 64-byte) messages are cantools' own and work as is.
"""
from __future__ import annotations

import re
from pathlib import Path

import cantools
from cantools.database import Database, UnsupportedDatabaseFormatError

from hil.errors import ConfigError

# cantools 45.1.0 refuses a DBC whose VAL_ table names a message or signal that does not exist
# ("unused VAL_ entries"); 45.0.0 and older ignore such entries. Real files have them, so we drop them.
_UNUSED_VAL = re.compile(r"unused VAL_ entries", re.IGNORECASE)
_LINE = re.compile(r"line (\d+)")


def _drop_unused_val_lines(text: str, message: str) -> str:
    bad = set()
    for line in message.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "VAL_":
            bad.add((parts[1], parts[2]))
    kept = []
    for line in text.splitlines(keepends=True):
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "VAL_" and (parts[1], parts[2]) in bad:
            continue
        kept.append(line)
    return "".join(kept)


def _parse(text: str) -> Database:
    database = cantools.database.Database(strict=False)
    database.add_dbc_string(text)
    return database


def _where(path: Path, exc: Exception) -> str:
    line = _LINE.search(str(exc))
    return f"{path}:{line.group(1)}" if line else str(path)


def _read(path: Path) -> str:
    """The file's text. Vector's tools write cp1252, opendbc writes UTF-8: a file that is valid UTF-8 is
    read as UTF-8, anything else as cp1252 (undecodable bytes, which only occur in comments, replaced)."""
    if not path.is_file():
        raise ConfigError(f"{path}: DBC file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read DBC file: {exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _collisions(path: Path, database: Database, parsed: Database) -> None:
    """Two messages with one ID on one bus would decode each other's frames: refuse the merge."""
    by_id = {(m.frame_id, m.is_extended_frame): m for m in database.messages}
    by_name = {m.name: m for m in database.messages}
    for message in parsed.messages:
        loaded = by_id.get((message.frame_id, message.is_extended_frame)) or by_name.get(message.name)
        if loaded is not None:
            raise ConfigError(
                f"{path}: message '{message.name}' (ID 0x{message.frame_id:X}) collides with '{loaded.name}' "
                f"(ID 0x{loaded.frame_id:X}) from a DBC file loaded before it for the same bus; expected unique "
                "message names and IDs per bus: list only one of the two files, or delete the duplicate message")


def load_dbc(path: str | Path, database: Database | None = None) -> Database:
    """Load one DBC file (into `database` when given, so a rig can merge several files of one bus).

    Raises `ConfigError` for a missing or broken file ("file:line: reason"), and for a message whose name
    or ID is already in `database`.
    """
    path = Path(path)
    text = _read(path)
    try:
        try:
            parsed = _parse(text)
        except (UnsupportedDatabaseFormatError, ValueError) as exc:
            if not _UNUSED_VAL.search(str(exc)):
                raise
            text = _drop_unused_val_lines(text, str(exc))
            parsed = _parse(text)
    except Exception as exc:  # cantools raises several types for syntax errors; all mean "broken file"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{_where(path, exc)}: not a valid DBC file: {reason}") from None
    if database is None:
        return parsed
    _collisions(path, database, parsed)
    database.add_dbc_string(text)  # parsed cleanly above, so merging cannot half-fail
    return database


def load_dbcs(paths) -> Database:
    database = cantools.database.Database(strict=False)
    for path in paths:
        load_dbc(path, database)
    return database


def signal_defaults(message) -> dict:
    """Every signal of `message` at its initial value (or 0), so a frame can be encoded from a partial dict.

    cantools needs every signal of the selected multiplexer group; a pack with fewer cells than the DBC's
    groups hold leaves the spare slots at this default.
    """
    return {s.name: (s.raw_initial * s.scale + s.offset if s.raw_initial is not None else 0)
            for s in message.signals}


def encode(message, signals: dict, defaults: dict | None = None) -> bytes:
    full = dict(defaults if defaults is not None else signal_defaults(message))
    full.update(signals)
    return message.encode(full, strict=False)


# Round trip: a self-test of a database's bit layouts --------------------------------------------------
def mux_groups(message) -> list[dict]:
    """Every multiplexer selection of `message`: a list of {signal name: multiplexer value or None}.

    A plain message has one group (every signal, value None). In a multiplexed one, each group holds the
    multiplexer signals set to one selection and the signals that selection carries; nested
    (extended) multiplexing gives one group per combination.
    """
    return _groups(message.signal_tree)


def _groups(tree) -> list[dict]:
    combos: list[dict] = [{}]
    for node in tree:
        if isinstance(node, str):
            combos = [{**combo, node: None} for combo in combos]
            continue
        for mux, branches in node.items():
            combos = [{**combo, mux: value, **sub} for value, subtree in branches.items()
                      for sub in _groups(subtree) for combo in combos]
    return combos


def _raw_range(signal) -> tuple[int, int]:
    if signal.is_signed:
        return -(1 << (signal.length - 1)), (1 << (signal.length - 1)) - 1
    return 0, (1 << signal.length) - 1


def round_trip_problems(message) -> list[str]:
    """Encode and decode every multiplexer group of `message` with one signal at a time at its raw maximum
    (the others at their raw minimum, then the reverse), and report each value that does not come back.

    This walks every bit of every signal: a signal that overlaps another, runs past the frame, or has a
    wrong byte order comes back wrong. Floats are checked at 0.0 and 1.5 only. Returns [] when all is well.
    """
    problems = []
    by_name = {s.name: s for s in message.signals}
    for group in mux_groups(message):
        payload = [by_name[name] for name, mux in group.items() if mux is None]
        fixed = {name: mux for name, mux in group.items() if mux is not None}
        for low_high in (0, 1):
            for walking in payload:
                raw = dict(fixed)
                for signal in payload:
                    if signal.is_float:
                        raw[signal.name] = 1.5 if (signal is walking) != bool(low_high) else 0.0
                    else:
                        low, high = _raw_range(signal)
                        raw[signal.name] = high if (signal is walking) != bool(low_high) else low
                problem = _round_trip(message, raw)
                if problem:
                    problems.append(problem)
                    break  # one report per group is enough to find the fault
            if not payload:  # a multiplexer value that carries no signals still must round-trip
                problem = _round_trip(message, dict(fixed))
                if problem:
                    problems.append(problem)
    return problems


def _round_trip(message, raw: dict) -> str | None:
    selection = {name: raw[name] for name in raw if message.get_signal_by_name(name).is_multiplexer}
    where = f"{message.name} (0x{message.frame_id:X})" + (f" {selection}" if selection else "")
    try:
        data = message.encode(raw, scaling=False, strict=False)
        back = message.decode(data, decode_choices=False, scaling=False)
    except Exception as exc:  # a layout cantools cannot encode at all is exactly what we report
        return f"{where}: cannot encode and decode ({exc}); do signals overlap or run past the frame end?"
    wrong = [f"{name} sent {value} got {back.get(name)}" for name, value in raw.items() if back.get(name) != value]
    return f"{where}: values do not round-trip: {', '.join(wrong[:3])}" if wrong else None
