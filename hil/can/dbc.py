"""Load CAN databases, tolerating the quirks of real files and of cantools versions.

A broken file gives a `ConfigError` naming the file and, where the parser tells, the line. Multiplexed
(also nested), big-endian, 29-bit and CAN FD (up to 64-byte) messages are cantools' own and work as is.
"""
from __future__ import annotations

import functools
import re
import weakref
from pathlib import Path

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
    __slots__ = ("packers", "signals")

    def __init__(self, nodes: list[dict], length: int):
        self.signals = tuple(_conversion(s) for node in nodes for s in node["signals"])
        nodes = [node for node in nodes if node["signals"]]  # encode_data skips these: they pack to 0
        packers = [_packers(node["formats"]) for node in nodes]
        if len(nodes) > 1:
            merged = _packers(create_encode_decode_formats(
                sorted((s for node in nodes for s in node["signals"]), key=lambda s: s.start), length))
            if all(_packs_alike(merged, own, signal, nodes)
                   for node, own in zip(nodes, packers) for signal in node["signals"]):
                packers = [merged]
        self.packers = tuple(packers)

    def pack(self, signals: dict, defaults: dict) -> int:
        raw = {}
        for name, offset, scale, to_raw in self.signals:
            value = signals[name] if name in signals else defaults[name]
            if not isinstance(value, (int, float)):  # a value-table name: cantools looks it up
                raise _NotHandled(name)
            raw[name] = round((value - offset) / scale) if to_raw is None else to_raw(value)
        encoded = 0
        for packers in self.packers:
            encoded |= _pack_raw(packers, raw)
        return encoded


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
        return plan.pack(signals, defaults).to_bytes(self.length, "big")


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
