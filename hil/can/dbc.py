"""Load CAN databases, tolerating the quirks of real files and of cantools versions.

A broken file gives a `ConfigError` naming the file and, where the parser tells, the line.
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
    line = re.search(r"line (\d+)", str(exc))
    return f"{path}:{line.group(1)}" if line else str(path)


def load_dbc(path: str | Path, database: Database | None = None) -> Database:
    """Load one DBC file (into `database` when given, so a rig can merge several)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: DBC file not found")
    try:
        text = path.read_text(encoding="cp1252")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read DBC file: {exc}") from None
    try:
        try:
            parsed = _parse(text)
        except (UnsupportedDatabaseFormatError, ValueError) as exc:
            if not _UNUSED_VAL.search(str(exc)):
                raise
            text = _drop_unused_val_lines(text, str(exc))
            parsed = _parse(text)
        if database is None:
            return parsed
        database.add_dbc_string(text)  # parsed cleanly above, so merging cannot half-fail
    except Exception as exc:  # cantools raises several types for syntax errors; all mean "broken file"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{_where(path, exc)}: not a valid DBC file: {reason}") from None
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
