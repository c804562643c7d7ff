"""`hil.can.dbc.decode` is `message.decode(data, decode_choices=False)` exactly: for every message and every
multiplexer group of the project's DBCs, the vendor-style DBC, the real-world files and a file of edge cases
(floats, nested multiplexing, a scaled multiplexer, mixed byte orders, value tables, overlapping signals,
64-byte frames), the same keys in the same order with the same values of the same types, or the same
exception (wrong length, unknown multiplexer value)."""
from __future__ import annotations

import random

import pytest
from cantools.database import DecodeError
from cantools.database.utils import create_encode_decode_formats
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.can.dbc import _decoder, _pack_raw, _packers, decode, load_dbc, mux_groups

from .conftest import REALWORLD_FILES, VENDOR_DBC

# What the project's own files do not have, and cantools decodes all the same: float signals (a float
# IdentityConversion among them), nested multiplexing (left to cantools), a multiplexer with a scale (cantools
# selects the group by the scaled value, truncated), a multiplexed node holding both byte orders, value tables
# on scaled and signed signals, a message without signals, 64-byte frames with 64-bit signals, and
# overlapping signals (as the encode tests' broken file has).
EDGE_DBC = """VERSION ""
NS_ :
BS_:
BU_: X
BO_ 16 Overlap: 8 X
 SG_ M M : 0|4@1+ (1,0) [0|15] "" X
 SG_ A m0 : 2|8@1+ (1,0) [0|255] "" X
 SG_ B : 8|8@1- (0.5,-3) [0|255] "" X
BO_ 300 Nested: 8 X
 SG_ Top M : 0|4@1+ (1,0) [0|15] "" X
 SG_ Sub m0M : 4|4@1+ (1,0) [0|15] "" X
 SG_ Leaf0 m0 : 8|8@1+ (1,0) [0|255] "" X
 SG_ Leaf1 m1 : 8|8@1+ (1,0) [0|255] "" X
 SG_ Other m1 : 16|8@1- (2,-10) [0|255] "" X
BO_ 400 Floats: 8 X
 SG_ F32 : 0|32@1- (1,0) [0|0] "" X
 SG_ F32s : 32|32@1- (0.5,-1) [0|0] "" X
BO_ 401 Double: 8 X
 SG_ F64 : 7|64@0- (1,0) [0|0] "" X
BO_ 500 Mixed: 8 X
 SG_ Mux M : 0|8@1+ (1,0) [0|255] "" X
 SG_ BE m0 : 15|12@0- (0.25,-5) [0|0] "" X
 SG_ LE m0 : 20|12@1+ (2,-10) [0|0] "" X
 SG_ Named m1 : 8|8@1+ (0.5,1) [0|0] "" X
 SG_ NamedInt m1 : 16|8@1- (1,0) [0|0] "" X
 SG_ Root : 56|8@1- (1,0) [0|0] "" X
BO_ 501 HalfMux: 8 X
 SG_ HalfMux M : 0|8@1+ (0.5,0) [0|127] "" X
 SG_ H1 m1 : 8|8@1+ (1,0) [0|255] "" X
 SG_ H2 m2 : 16|16@0+ (0.1,0) [0|0] "" X
BO_ 502 Empty: 4 X
BO_ 503 Wide: 64 X
 SG_ W0 : 0|64@1+ (1,0) [0|0] "" X
 SG_ W1 : 64|64@1- (3,1) [0|0] "" X
 SG_ W2 : 135|64@0+ (1,0) [0|0] "" X
 SG_ W3 : 504|8@1+ (0.125,0) [0|0] "" X
VAL_ 500 Named 0 "Zero" 2 "Two" ;
VAL_ 500 NamedInt -1 "MinusOne" 0 "Zero" ;
SIG_VALTYPE_ 400 F32 : 1;
SIG_VALTYPE_ 400 F32s : 1;
SIG_VALTYPE_ 401 F64 : 2;
SG_MUL_VAL_ 300 Sub Top 0-0;
SG_MUL_VAL_ 300 Leaf0 Sub 0-0;
SG_MUL_VAL_ 300 Leaf1 Sub 1-1;
SG_MUL_VAL_ 300 Other Top 1-1;
"""

SOURCES = ["project", "vendor", "edge", *REALWORLD_FILES]
FUZZ = settings(max_examples=150, deadline=None)


@pytest.fixture(scope="module")
def databases(db, loaded, tmp_path_factory):
    """`databases(source)`: the database of a SOURCES entry, loaded once (module scope, as hypothesis wants)."""
    folder = tmp_path_factory.mktemp("dbc")
    (folder / "vendor.dbc").write_bytes(VENDOR_DBC.encode("cp1252"))
    (folder / "edge.dbc").write_text(EDGE_DBC)
    own = {"project": db, "vendor": load_dbc(folder / "vendor.dbc"), "edge": load_dbc(folder / "edge.dbc")}
    return lambda source: own[source] if source in own else loaded(source)


def _cantools(message, data) -> dict:
    return message.decode(data, decode_choices=False)


def _fast_only(message, data) -> dict:
    """The fast path alone, without handing over to cantools."""
    return _decoder(message).decode(data)


def _outcome(decoder, message, data) -> list | type:
    """Each decoded signal as (name, type, repr), in order, or the type of the exception raised. repr is
    stricter than ==: it tells -0.0 from 0.0, and lets a NaN equal a NaN."""
    try:
        decoded = decoder(message, data)
    except Exception as exc:  # noqa: BLE001 - the exception's type is what decode must reproduce
        return type(exc)
    return [(name, type(value), repr(value)) for name, value in decoded.items()]


def _mux_bits(message, group: dict) -> tuple[int, int]:
    """(mask, bits) of the group's multiplexer signals in a frame read as a big-endian int: where they sit,
    and the group's values there. Each is placed by cantools' own formats for that signal alone."""
    mask = bits = 0
    for name, value in group.items():
        if value is None:
            continue
        signal = message.get_signal_by_name(name)
        packers = _packers(create_encode_decode_formats([signal], message.length))
        mask |= _pack_raw(packers, {name: -1 if signal.is_signed else (1 << signal.length) - 1})
        bits |= _pack_raw(packers, {name: value})
    return mask, bits


def _with_mux(message, group: dict, frame: int) -> bytes:
    mask, bits = _mux_bits(message, group)
    return (frame & ~mask | bits).to_bytes(message.length, "big")


def _payloads(message, group: dict, rng: random.Random, n_random: int) -> list[bytes | bytearray]:
    """All bits 0, all bits 1 and `n_random` random frames, the group's multiplexer values set in each;
    every other one a bytearray, as python-can's `Message.data` is."""
    n_bits = 8 * message.length
    frames = [0, (1 << n_bits) - 1] + [rng.getrandbits(n_bits) for _ in range(n_random)]
    payloads = [_with_mux(message, group, frame) for frame in frames]
    return [bytearray(data) if i % 2 else data for i, data in enumerate(payloads)]


def _mismatches(database, n_random: int, decoder=decode) -> list[str]:
    rng = random.Random(1)
    wrong = []
    for message in database.messages:
        for group in mux_groups(message):
            for data in _payloads(message, group, rng, n_random):
                expected, got = _outcome(_cantools, message, data), _outcome(decoder, message, data)
                if got != expected:
                    wrong.append(f"{message.name} {bytes(data).hex()}: cantools {expected!r}, decode {got!r}")
    return wrong[:5]


@pytest.mark.parametrize("source", SOURCES)
def test_decode_equals_cantools_for_every_message_and_group(databases, source):
    database = databases(source)
    assert _mismatches(database, n_random=3 if source in REALWORLD_FILES else 20) == []


@pytest.mark.parametrize("source", SOURCES)
def test_every_message_of_the_zeros_and_ones_decodes_as_cantools_does(databases, source):
    """No multiplexer value set: all bits 1 selects a group only some messages have."""
    for message in databases(source).messages:
        for data in (bytes(message.length), b"\xff" * message.length):
            assert _outcome(decode, message, data) == _outcome(_cantools, message, data), message.name


@pytest.mark.parametrize("source", ["project", "vendor", *REALWORLD_FILES])
def test_the_fast_path_decodes_every_group_itself(databases, source):
    """No message of these files is left to cantools: none is nested or a container, and with the
    multiplexer value set, every frame of the right length is the fast path's own work."""
    database = databases(source)
    assert all(_decoder(message) is not None for message in database.messages)
    assert _mismatches(database, n_random=3 if source in REALWORLD_FILES else 10, decoder=_fast_only) == []


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_random_payloads_of_a_group_decode_as_cantools_does(databases, source, data):
    message = data.draw(st.sampled_from(databases(source).messages), label="message")
    group = data.draw(st.sampled_from(mux_groups(message)), label="group")
    frame = data.draw(st.binary(min_size=message.length, max_size=message.length), label="frame")
    payload = _with_mux(message, group, int.from_bytes(frame, "big"))
    assert _outcome(decode, message, payload) == _outcome(_cantools, message, payload)


@pytest.mark.parametrize("source", SOURCES)
@FUZZ
@given(data=st.data())
def test_any_bytes_of_any_length_decode_or_fail_as_cantools_does(databases, source, data):
    """Unknown multiplexer values, short frames (cantools refuses them) and long ones (cantools trims them)."""
    message = data.draw(st.sampled_from(databases(source).messages), label="message")
    payload = data.draw(st.binary(max_size=message.length + 4), label="payload")
    assert _outcome(decode, message, payload) == _outcome(_cantools, message, payload)


def test_wrong_length_and_unknown_multiplexer_values_raise_cantools_own_errors(db):
    setpoint = db.get_message_by_name("CE_CellSetpoint")
    for data in (bytes(7), b"", bytes([200]) + bytes(7)):  # short, empty, a multiplexer value without group
        with pytest.raises(DecodeError) as theirs:
            _cantools(setpoint, data)
        with pytest.raises(DecodeError) as ours:
            decode(setpoint, data)
        assert str(ours.value) == str(theirs.value)
    data = bytes([5]) + bytes(range(1, 8))
    assert decode(setpoint, data + b"\x99\x98") == decode(setpoint, data) == _cantools(setpoint, data)


def test_a_scaled_multiplexer_selects_its_group_by_the_scaled_value_truncated(databases):
    """cantools picks the group of int(raw * 0.5): raw 3 selects group 1, raw 4 and 5 group 2, the rest none."""
    message = databases("edge").get_message_by_name("HalfMux")
    for raw in range(256):
        data = bytes([raw]) + bytes(range(7))
        assert _outcome(decode, message, data) == _outcome(_cantools, message, data), raw
    assert "H1" in decode(message, bytes([3]) + bytes(7)) and "H2" in decode(message, bytes([5]) + bytes(7))


def test_values_keep_cantools_types(db, databases):
    """Integer-scaled signals stay ints, scaled ones floats, floats keep their sign (-0.0)."""
    status = db.get_message_by_name("BMS_Status")
    assert {type(v) for v in decode(status, bytes(8)).values()} == {int}
    assert type(decode(db.get_message_by_name("CE_CellSetpoint"), bytes(8))["CE_Cell01_Setpoint"]) is float
    edge = databases("edge")
    mixed = decode(edge.get_message_by_name("Mixed"), bytes([0]) + bytes(7))
    assert type(mixed["LE"]) is int and type(mixed["BE"]) is float and list(mixed) == ["Mux", "Root", "BE", "LE"]
    negative_zero = (0x80000000).to_bytes(4, "little") + bytes(4)
    assert repr(decode(edge.get_message_by_name("Floats"), negative_zero)["F32"]) == "-0.0"


def test_the_compiled_decoder_is_cached_and_rebuilt_when_the_message_is(databases):
    message = databases("edge").get_message_by_name("Mixed")
    decoder = _decoder(message)
    assert _decoder(message) is decoder
    message.refresh()  # new codecs: a decoder compiled from the old ones must not be used
    assert _decoder(message) is not decoder
    assert _decoder(databases("edge").get_message_by_name("Nested")) is None  # nested: cantools decodes it


def test_precompile_compiles_every_codec_before_the_first_frame(tmp_path):
    """A real-clock bench compiles at setup, so its first tick does not pay for the first frames' codecs."""
    from hil.can import dbc
    path = tmp_path / "vendor.dbc"
    path.write_bytes(VENDOR_DBC.encode("cp1252"))
    database = load_dbc(path)  # a fresh load: nothing of it compiled yet
    assert not any(m in dbc._encoders or m in dbc._decoders for m in database.messages)
    dbc.precompile(database)
    fits = [m for m in database.messages if dbc._fast_path_fits(m)]
    assert fits, "the vendor file has messages the fast path takes"
    for message in database.messages:
        assert (message in dbc._encoders) == (message in dbc._decoders) == (message in fits), message.name
    encoder = dbc._encoders[fits[0]]
    dbc.precompile(database)  # again: nothing recompiled
    assert dbc._encoders[fits[0]] is encoder
