"""Load CAN databases, tolerating the quirks of real files and of cantools versions.

A broken file gives a `ConfigError` naming the file and, where the parser tells, the line. So does what
cantools loads without a word but a bench cannot use: a file cut short in the middle of a statement, a
message or signal written in the file but not loaded, two messages with one ID or name, two signals with
one name in a message, a frame longer than 64 bytes, a signal of scale 0, and `m<n>` multiplexed signals in a
message without an `M` multiplexer. Multiplexed (also nested), big-endian, 29-bit and CAN FD (up to 64-byte)
messages are cantools' own and work as is.
"""
from __future__ import annotations

import functools
import logging
import re
import weakref
from pathlib import Path
from typing import NamedTuple

import cantools
from cantools.database import Database, UnsupportedDatabaseFormatError
from cantools.database.conversion import (
    BaseConversion,
    IdentityConversion,
    LinearConversion,
    LinearIntegerConversion,
    NamedSignalConversion,
)
from cantools.database.utils import create_encode_decode_formats

from hil.errors import ConfigError

# cantools 45.1.0 refuses a DBC whose VAL_ table names a message or signal that does not exist
# ("unused VAL_ entries"); 45.0.0 and older ignore such entries. Real files have them, so we drop them.
_UNUSED_VAL = re.compile(r"unused VAL_ entries", re.IGNORECASE)
_LINE = re.compile(r"line (\d+)")

# textparser, which runs cantools' DBC grammar, takes a statement cut off by the end of the text for a whole
# file (it checks only that the furthest token it looked at is the end), so a truncated file loads with its
# last message, signal or attribute missing. Behind this complete statement, which cantools ignores, the cut
# statement is a syntax error instead.
_END_MARK = "\nBS_:\n"

# A line that starts a message (BO_ ID NAME), a signal (SG_ NAME and its multiplexing, if any) or another
# statement (a keyword: BA_, CM_, VAL_ ...). Comments, blank lines and a signal's continuation lines are none.
_STATEMENT = re.compile(r"^[ \t]*(?:BO_[ \t]+(\d+)[ \t]+(\w+)|SG_[ \t]+(\w+)[ \t]*(\w*)|(?:[A-Z][A-Z_]*_|VERSION)"
                        r"(?=[ \t:]|$))", re.MULTILINE)
# The message Vector's tools park unassigned signals in; cantools drops it on purpose.
_INDEPENDENT_SIGNALS = "VECTOR__INDEPENDENT_SIG_MSG"
_MAX_FRAME_BYTES = 64  # CAN FD
_CANTOOLS_LOG = logging.getLogger("cantools.database.can.database")


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
            line = "\n" if line.endswith("\n") else ""  # keep the line count, so errors name the file's lines
        kept.append(line)
    return "".join(kept)


def _parse(text: str) -> Database:
    database = cantools.database.Database(strict=False)
    _CANTOOLS_LOG.addFilter(_not_overwriting)
    try:
        database.add_dbc_string(text + _END_MARK)
    finally:
        _CANTOOLS_LOG.removeFilter(_not_overwriting)
    return database


def _not_overwriting(record: logging.LogRecord) -> bool:
    """cantools logs "Overwriting message ..." for two messages of one ID or name, which _check_loaded then
    refuses naming the file and lines: the log line would only say it twice."""
    return not record.getMessage().startswith("Overwriting message")


def _last_line(text: str) -> int:
    """The number of the text's last line that is not blank."""
    return text.rstrip().count("\n") + 1


def _syntax_error(path: Path, text: str, exc: Exception) -> str:
    """"file:line: not a valid DBC file: reason" for an exception from cantools' parser."""
    line = _LINE.search(str(exc))
    # An error past the text (in _END_MARK) means it stopped mid-statement; one on a last line that has no line
    # break (files end with one) means it stopped inside that line, say in a quoted name.
    last = _last_line(text)
    if line and (int(line.group(1)) > last or (int(line.group(1)) == last and not text.endswith(("\n", "\r")))):
        return (f"{path}:{_last_line(text)}: not a valid DBC file: the file ends in the middle of this statement; "
                "is it cut short?")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = f"{path}:{line.group(1)}" if line else str(path)
    return f"{where}: not a valid DBC file: {reason}"


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


def _check_last_line(path: Path, text: str) -> None:
    """A file cut inside the receivers of its last SG_ line (or the sender of its last BO_) still parses, as
    the cut word is a whole node name to the parser. Files end with a line break, so such a last line
    without one is taken as cut short."""
    if text.endswith(("\n", "\r")) or not re.match(r"[ \t]*(SG_|BO_)[ \t]", text.rstrip().rsplit("\n", 1)[-1]):
        return
    raise ConfigError(f"{path}:{_last_line(text)}: not a valid DBC file: the file ends in the middle of this line "
                      "(no line break after it); is it cut short? If the line is complete, end it with a line break")


def _duplicate(messages) -> tuple | None:
    """(earlier, later): the first message whose ID or name an earlier one of `messages` already has."""
    by_id, by_name = {}, {}
    for message in messages:
        key = (message.frame_id, message.is_extended_frame)
        earlier = by_id.get(key) or by_name.get(message.name)
        if earlier is not None:
            return earlier, message
        by_id[key] = by_name[message.name] = message
    return None


def _collisions(path: Path, database: Database, parsed: Database) -> None:
    """Two messages with one ID on one bus would decode each other's frames: refuse the merge. (Each
    database has none of its own, so a pair found is one message from each.)"""
    pair = _duplicate([*database.messages, *parsed.messages])
    if pair is not None:
        loaded, message = pair
        raise ConfigError(
            f"{path}: message '{message.name}' (ID 0x{message.frame_id:X}) collides with '{loaded.name}' "
            f"(ID 0x{loaded.frame_id:X}) from a DBC file loaded before it for the same bus; expected unique "
            "message names and IDs per bus: list only one of the two files, or delete the duplicate message")


class _Declared(NamedTuple):
    """A message as the text writes it: the line of its BO_, its ID as written (bit 31 set for a 29-bit
    one), its name, and its SG_ lines as (line, signal name, multiplexing: "", "M", "m3" or "m3M")."""
    line: int
    frame_id: int
    name: str
    signals: list[tuple[int, str, str]]


def _declared(text: str) -> list[_Declared]:
    """Every BO_ of the text with the SG_ lines that follow it (an SG_ after another statement belongs to none)."""
    declared: list[_Declared] = []
    current = None
    line, counted_to = 1, 0
    for match in _STATEMENT.finditer(text):
        line += text.count("\n", counted_to, match.start())
        counted_to = match.start()
        frame_id, name, signal, multiplexing = match.groups()
        if name is not None:
            current = _Declared(line, int(frame_id), name, [])
            declared.append(current)
        elif signal is not None and current is not None:
            current.signals.append((line, signal, multiplexing))
        else:
            current = None
    return declared


def _frame_key(frame_id_as_written: int) -> tuple[int, bool]:
    """(frame_id, is_extended_frame), as cantools has them, from the ID a DBC file writes (bit 31: 29-bit)."""
    return frame_id_as_written & 0x7FFFFFFF, bool(frame_id_as_written & 0x80000000)


def message_lines(path: str | Path) -> dict[tuple[int, bool], int]:
    """The line of each message's BO_ in a DBC file, by (frame_id, is_extended_frame), for reports. (By ID,
    not name: cantools names a message by its SystemMessageLongSymbol attribute when it has one.)"""
    return {_frame_key(declared.frame_id): declared.line for declared in _declared(_read(Path(path)))}


def _check_loaded(path: Path, text: str, parsed: Database) -> None:
    """Refuse what cantools loads without a word but a bench cannot use (see the module's docstring),
    naming the file's line. The text is the reference: what it declares must be what was loaded."""
    declared = [message for message in _declared(text) if message.name != _INDEPENDENT_SIGNALS]
    lines: dict[tuple[int, bool], list[int]] = {}
    for message in declared:
        lines.setdefault(_frame_key(message.frame_id), []).append(message.line)
    pair = _duplicate(parsed.messages)
    if pair is not None:
        raise ConfigError(_duplicate_problem(path, *pair, lines))
    loaded = {(message.frame_id, message.is_extended_frame): message for message in parsed.messages}
    for message in declared:
        problem = _message_problem(message, loaded.get(_frame_key(message.frame_id)))
        if problem is not None:
            raise ConfigError(f"{path}:{problem}")


def _duplicate_problem(path: Path, earlier, later, lines: dict[tuple[int, bool], list[int]]) -> str:
    """"file:line: ..." for two messages of one file with one ID or name; `lines` has each ID's BO_ lines."""
    earlier_key = (earlier.frame_id, earlier.is_extended_frame)
    later_key = (later.frame_id, later.is_extended_frame)
    what = "ID" if earlier_key == later_key else "name"
    return (f"{path}:{lines.get(later_key, ['?'])[-1]}: message '{later.name}' (ID 0x{later.frame_id:X}) has the "
            f"same {what} as message '{earlier.name}' (ID 0x{earlier.frame_id:X}) at line "
            f"{lines.get(earlier_key, ['?'])[0]}; cantools keeps only one of the two, so the other is never "
            "decoded: expected unique message IDs and names in a file")


def _message_problem(declared: _Declared, message) -> str | None:
    """"line: problem" for the first thing wrong with one loaded message (None: not loaded) against its text.
    Signals are compared by count and by their names in the text: cantools may load one under its
    SystemSignalLongSymbol instead."""
    if message is None:
        return f"{declared.line}: message '{declared.name}' is in the file but was not loaded"
    if message.length > _MAX_FRAME_BYTES:
        return (f"{declared.line}: message '{message.name}' is {message.length} bytes long; expected at most "
                f"{_MAX_FRAME_BYTES} (a CAN FD frame)")
    signal_lines: dict[str, int] = {}
    for line, name, _multiplexing in declared.signals:
        if name in signal_lines:
            return (f"{line}: signal '{name}' of message '{message.name}' has the same name as the signal at line "
                    f"{signal_lines[name]}; a decoded frame holds one value per name, so one of the two would be "
                    "lost: expected unique signal names")
        signal_lines[name] = line
    if len(message.signals) != len(declared.signals):
        return (f"{declared.line}: message '{message.name}' has {len(declared.signals)} SG_ lines but "
                f"{len(message.signals)} signals were loaded")
    multiplexed = [(line, name, mux) for line, name, mux in declared.signals if re.fullmatch(r"m\d+", mux)]
    if multiplexed and not any(mux.endswith("M") for _line, _name, mux in declared.signals):
        line, name, mux = multiplexed[0]
        return (f"{line}: signal '{name}' of message '{message.name}' is multiplexed ({mux}) but the message has "
                "no multiplexer signal (M), so cantools would decode it from every frame: expected one signal "
                "marked M")
    for signal in message.signals:
        if signal.scale == 0:
            return (f"{signal_lines.get(signal.name, declared.line)}: signal '{signal.name}' of message "
                    f"'{message.name}' has scale 0: every frame would decode to its offset and no value could be "
                    "sent; expected a non-zero scale")
    return None


def load_dbc(path: str | Path, database: Database | None = None) -> Database:
    """Load one DBC file (into `database` when given, so a rig can merge several files of one bus).

    Raises `ConfigError` for a missing or broken file ("file:line: reason", see the module's docstring), and
    for a message whose name or ID is already in `database`.
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
        raise ConfigError(_syntax_error(path, text, exc)) from None
    _check_last_line(path, text)
    _check_loaded(path, text, parsed)
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
    """`message.encode(defaults | signals, strict=False)`, byte for byte, in about half the time.

    The 1 ms loop encodes a few thousand frames a second (2.2 us a frame here against 4.2 us for cantools on
    a merged dict), and bursts of them land on one tick. The fast path is compiled once per message from
    cantools' own codec tree: per multiplexer value, the signals that frame carries, each signal's own
    conversion and cantools' bitstruct formats. Only the signals of the selected group are read; the
    merged dict of every signal, the per-call node walk and type dispatch are what it saves.

    Anything it does not do the way cantools does (containers, nested multiplexing, value-table names as
    values, a multiplexer value without a group, a value bitstruct refuses) goes to cantools, which then
    encodes it or raises its own error.
    """
    if defaults is None:
        defaults = signal_defaults(message)
    encoder = _encoder(message)
    if encoder is not None:
        try:
            return encoder.encode(signals, defaults)
        except Exception:  # noqa: BLE001, S110 - cantools decides: it encodes, or raises its own error
            pass
    full = dict(defaults)
    full.update(signals)
    return message.encode(full, strict=False)


class _Plan:
    """What one frame layout needs: its signals, as (name, offset, scale, scaled-to-raw), and bitstruct
    packers for the codec nodes they come from (the root, plus the selected group in a multiplexed message).

    Per signal, the conversion is cantools' own method, except two inlined with the same arithmetic (a
    method call is a third of a signal's cost): LinearConversion's `round((value - offset) / scale)` (to_raw
    None) and an integer IdentityConversion's `round(value)`. The root and group are packed with one format
    made by cantools' own `create_encode_decode_formats` over both nodes' signals when that places every
    signal where its own node's format does (checked once, here): packing with it is then what OR-ing the
    nodes' packings gives, one bitstruct call pair fewer. Otherwise each node keeps its own packers.
    """
    __slots__ = ("length", "little_only", "packers", "signals")

    def __init__(self, nodes: list[dict], length: int):
        self.signals = tuple(_conversion(s) for node in nodes for s in node["signals"])
        self.length = length
        nodes = [node for node in nodes if node["signals"]]  # encode_data skips these: they pack to 0
        packers = [_packers(node["formats"]) for node in nodes]
        if len(nodes) > 1:
            merged = _packers(create_encode_decode_formats(
                sorted((s for node in nodes for s in node["signals"]), key=lambda s: s.start), length))
            if all(_packs_alike(merged, own, signal, nodes)
                   for node, own in zip(nodes, packers) for signal in node["signals"]):
                packers = [merged]
        self.packers = tuple(packers)
        self.little_only = self._little_only(nodes)

    def _little_only(self, nodes: list[dict]):
        """The little-endian packer, when it alone makes the frame: one set of packers and no big-endian
        signal, so the big-endian format packs only zero bits. Its bytes are then the frame's, reversed
        (`_pack_raw` reads them with int.from_bytes(..., "little")), without the round trip through an int."""
        if len(self.packers) != 1 or any(s.byte_order == "big_endian" for node in nodes for s in node["signals"]):
            return None
        pack_little = self.packers[0][1]
        zeros = dict.fromkeys((s.name for node in nodes for s in node["signals"]), 0)
        return pack_little if len(pack_little(zeros)) == self.length else None

    def pack(self, signals: dict, defaults: dict) -> bytes:
        raw = {}
        for name, offset, scale, to_raw in self.signals:
            value = signals[name] if name in signals else defaults[name]
            if not isinstance(value, (int, float)):  # a value-table name: cantools looks it up
                raise _NotHandled(name)
            raw[name] = round((value - offset) / scale) if to_raw is None else to_raw(value)
        if self.little_only is not None:
            return self.little_only(raw)[::-1]
        encoded = 0
        for packers in self.packers:
            encoded |= _pack_raw(packers, raw)
        return encoded.to_bytes(self.length, "big")


def _packers(formats) -> tuple:
    return formats.big_endian.pack, formats.little_endian.pack


def _pack_raw(packers: tuple, raw: dict) -> int:
    pack_big, pack_little = packers
    return int.from_bytes(pack_big(raw), "big") | int.from_bytes(pack_little(raw), "little")


def _packs_alike(merged: tuple, own: tuple, signal, nodes: list[dict]) -> bool:
    """Does the merged format put `signal` (every bit set, the others 0) where its own node's format does?
    If every signal lands alike, packing with the merged format is OR-ing each node's packing, as cantools
    does. (A broken file's overlapping signals do not, and keep a packer per node.)"""
    raw = dict.fromkeys((s.name for node in nodes for s in node["signals"]), 0)
    if signal.is_float:
        raw[signal.name] = 1.5
    else:
        raw[signal.name] = -1 if signal.is_signed else (1 << signal.length) - 1
    try:
        return _pack_raw(merged, raw) == _pack_raw(own, raw)
    except Exception:  # noqa: BLE001 - a layout bitstruct cannot pack here is one to leave to cantools' own
        return False


def _conversion(signal) -> tuple:
    conversion = signal.conversion
    if type(conversion) is LinearConversion and not conversion.is_float:
        return signal.name, conversion.offset, conversion.scale, None
    if type(conversion) is IdentityConversion and not conversion.is_float:
        return signal.name, 0, 1, round
    return signal.name, 0, 1, conversion.numeric_scaled_to_raw


class _FastEncoder:
    """A plain message has one `_Plan`; a multiplexed one a plan per multiplexer value (root + group).
    Nested (extended) multiplexing is left to cantools."""
    __slots__ = ("codecs", "length", "mux", "plan", "plans")

    def __init__(self, message):
        root = self.codecs = message._codecs  # a refreshed message gets new codecs, and a new encoder
        self.length = message.length
        self.plan = _Plan([root], self.length) if not root["multiplexers"] else None
        self.mux, self.plans = None, {}
        if self.plan is None:
            (self.mux, children), = root["multiplexers"].items()
            self.plans = {value: _Plan([root, child], self.length) for value, child in children.items()}

    def encode(self, signals: dict, defaults: dict) -> bytes:
        plan = self.plan
        if plan is None:  # Message._get_mux_number, for numbers; an unknown value is cantools' error to raise
            mux = signals[self.mux] if self.mux in signals else defaults[self.mux]
            if not isinstance(mux, (int, float)):
                raise _NotHandled(self.mux)
            plan = self.plans[int(mux)]
        return plan.pack(signals, defaults)


class _NotHandled(Exception):
    pass


_encoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fast_path_fits(message) -> bool:
    """A plain message, or one multiplexed on one level: what the fast encoder and decoder compile.
    Containers and nested (extended) multiplexing are left to cantools."""
    codecs = getattr(message, "_codecs", None)
    if message.is_container or not isinstance(codecs, dict):
        return False
    muxes = codecs["multiplexers"]
    return not muxes or (len(muxes) == 1 and not any(child["multiplexers"]
                                                     for child in next(iter(muxes.values())).values()))


def _compiled(cache: weakref.WeakKeyDictionary, kind: type, message):
    """`kind(message)` (a fast encoder or decoder), compiled on first use and again when cantools refreshes
    the message's codecs; None for what only cantools handles."""
    compiled = cache.get(message)
    if compiled is None or compiled.codecs is not message._codecs:
        if not _fast_path_fits(message):
            return None
        compiled = cache[message] = kind(message)
    return compiled


def _encoder(message) -> _FastEncoder | None:
    return _compiled(_encoders, _FastEncoder, message)


# decode: the receive side's counterpart of encode --------------------------------------------------------
def decode(message, data) -> dict:
    """`message.decode(data, decode_choices=False)`: the same dict (keys in the same order, values equal
    and of the same type: scaled numbers, value tables not applied) in 60% of the time.

    Every frame the Monitor and the emulated boards receive is decoded, thousands a second on the 1 ms
    loop (1.25 us a frame here against 2.1 us for cantools for BMS_Status, 1.6 against 2.9 us for the
    multiplexed CE_CellSetpoint). The fast path is compiled once per message from cantools' own codec
    tree, as `encode`'s is: per codec node (the root, and each multiplexer group) cantools' bitstruct
    unpackers and each signal's scaling. What it saves is the per-call node walk, unpacking a byte order
    no signal of the node uses, and a conversion method call per signal.

    Anything it does not do the way cantools does (containers, nested multiplexing, data of another length
    than the DBC's, a multiplexer value without a group, data bitstruct refuses) goes to cantools, which
    then decodes it (longer data: trimmed) or raises its own error.
    """
    decoder = _decoder(message)
    if decoder is not None and len(data) == decoder.length:
        try:
            return decoder.decode(data)
        except Exception:  # noqa: BLE001, S110 - cantools decides: it decodes, or raises its own error
            pass
    return message.decode(data, decode_choices=False)


class _Unpacker:
    """One codec node (the root, or one multiplexer group): cantools' bitstruct unpackers for the byte
    orders its signals use, and its signals in the node's order, in the cheapest of three forms that
    scales them all: `same`, names only (every raw value is its scaled value); `linear`, (name, scale,
    offset); else `signals`, (name, scale, offset, raw-to-scaled) where some need their conversion's method.

    cantools unpacks both byte orders of every node; an order none of the node's signals uses unpacks to
    {} from any data of the right length, so it is skipped (None), and a node without signals (a
    multiplexer value that carries none) unpacks nothing.
    """
    __slots__ = ("linear", "same", "signals", "unpack_big", "unpack_little")

    def __init__(self, node: dict):
        signals = node["signals"]
        self.signals = tuple(_scaling(s) for s in signals)
        self.linear = tuple(s[:3] for s in self.signals) if all(s[3] is None for s in self.signals) else None
        self.same = tuple(s.name for s in signals) if all(map(_unscaled, signals)) else None
        big = any(s.byte_order == "big_endian" for s in signals)  # as create_encode_decode_formats splits
        little = any(s.byte_order != "big_endian" for s in signals)
        self.unpack_big = node["formats"].big_endian.unpack if big else None
        self.unpack_little = node["formats"].little_endian.unpack if little else None

    def decode_into(self, data, decoded: dict) -> None:
        """Add the node's signals to `decoded`. A loop storing into one dict: in CPython 3.11 a
        comprehension per node, and merging its dict, cost more for the few signals a frame holds."""
        unpack_big, unpack_little = self.unpack_big, self.unpack_little
        if unpack_big is None:
            if unpack_little is None:
                return
            raw = unpack_little(data[::-1])  # cantools' little-endian formats read the reversed bytes
        elif unpack_little is None:
            raw = unpack_big(data)
        else:
            raw = {**unpack_big(data), **unpack_little(data[::-1])}
        if self.same is not None:
            for name in self.same:
                decoded[name] = raw[name]
        elif self.linear is not None:
            for name, scale, offset in self.linear:
                decoded[name] = raw[name] * scale + offset
        else:
            for name, scale, offset, to_scaled in self.signals:
                decoded[name] = raw[name] * scale + offset if to_scaled is None else to_scaled(raw[name])


def _decode_conversion(signal):
    """The conversion cantools scales `signal` with when decoding without choices: a value table's
    conversion scales as the one cantools builds for the same scale and offset without a table."""
    conversion = signal.conversion
    if type(conversion) is NamedSignalConversion:
        return BaseConversion.factory(scale=conversion.scale, offset=conversion.offset,
                                      is_float=conversion.is_float)
    return conversion


def _unscaled(signal) -> bool:
    """An integer IdentityConversion: cantools returns the raw int itself."""
    conversion = _decode_conversion(signal)
    return type(conversion) is IdentityConversion and not conversion.is_float


def _scaling(signal) -> tuple:
    """(name, scale, offset, None) where cantools' `raw_to_scaled(raw, decode_choices=False)` is
    `raw * scale + offset`, inlined with the same arithmetic (a method call is a third of a signal's cost):
    Linear and LinearInteger conversions (an int scale and offset keep an int raw an int), an integer
    IdentityConversion (`raw * 1 + 0` is the raw int). Anything else, a float IdentityConversion
    included (`* 1 + 0` would turn -0.0 into 0.0), calls the conversion's own method."""
    conversion = _decode_conversion(signal)
    if type(conversion) in (LinearConversion, LinearIntegerConversion):
        return signal.name, conversion.scale, conversion.offset, None
    if _unscaled(signal):
        return signal.name, 1, 0, None
    return signal.name, 1, 0, functools.partial(conversion.raw_to_scaled, decode_choices=False)


class _FastDecoder:
    """A plain message decodes its root node; a multiplexed one its root, then the group its multiplexer
    value selects. Nested (extended) multiplexing is left to cantools."""
    __slots__ = ("codecs", "groups", "length", "mux", "root")

    def __init__(self, message):
        root = self.codecs = message._codecs  # a refreshed message gets new codecs, and a new decoder
        self.length = message.length
        self.root = _Unpacker(root)
        self.mux, self.groups = None, {}
        if root["multiplexers"]:
            (self.mux, children), = root["multiplexers"].items()
            self.groups = {value: _Unpacker(child) for value, child in children.items()}

    def decode(self, data) -> dict:
        decoded: dict = {}
        self.root.decode_into(data, decoded)
        if self.mux is not None:
            # Message._get_mux_number for a number: the scaled value, truncated. A value without a group
            # raises KeyError here, and cantools then raises its own DecodeError.
            self.groups[int(decoded[self.mux])].decode_into(data, decoded)
        return decoded


_decoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _decoder(message) -> _FastDecoder | None:
    return _compiled(_decoders, _FastDecoder, message)


def precompile(database: Database) -> None:
    """Compile the fast encoder and decoder of every message now, at setup. Compiled on first use instead,
    a real-clock bench's first tick took 1-2 ms longer (its first frames' codecs), an overrun in every run."""
    for message in database.messages:
        _encoder(message)
        _decoder(message)


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
