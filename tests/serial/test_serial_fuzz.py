"""Random and corrupted byte streams into every serial protocol parser.

Properties: a parser raises nothing but its protocol's own error, the scanner's work and buffer stay
bounded, and a valid frame after garbage is still found. (The slcan parser has its own fuzz tests.)
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.serial.framing import FrameScanner
from hil.serial.protocols import bms_debug, cell_emulator, daly, jk, pylontech

FUZZ = settings(max_examples=150, deadline=None)
PROTOCOLS = [cell_emulator.PROTOCOL, bms_debug.PROTOCOL, daly.PROTOCOL, jk.PROTOCOL, pylontech.PROTOCOL]

ascii_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20)
cell_voltages_mv = st.lists(st.integers(0, 0xFFFF), max_size=24)

VALID_FRAMES = {
    "cell emulator": st.one_of(
        cell_voltages_mv.map(lambda v: cell_emulator.PROTOCOL.build_message("set_cell_voltages", cell_voltages_mv=v)),
        st.integers(0, 0xFFFF).map(lambda n: cell_emulator.PROTOCOL.build_message("heartbeat", sequence=n)),
    ),
    "BMS debug UART": st.one_of(
        ascii_text.map(lambda text: bms_debug.PROTOCOL.build_message("version", firmware_version=text)),
        st.lists(st.tuples(ascii_text, st.floats(width=32, allow_nan=False)), max_size=8).map(
            lambda pairs: bms_debug.PROTOCOL.build_message(
                "calibration", entries=[{"key": key, "value": value} for key, value in pairs]
            )
        ),
    ),
    "Daly BMS": st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(min_size=8, max_size=8)).map(
        lambda fields: daly.PROTOCOL.build(
            {"body": {"value": {"address": fields[0], "command": fields[1], "data": fields[2]}}}
        )
    ),
    "JK BMS": st.tuples(cell_voltages_mv, st.integers(0, 100)).map(
        lambda fields: jk.PROTOCOL.build(
            {
                "body": {
                    "value": {
                        "terminal_id": 0,
                        "command": jk.COMMAND_READ_ALL,
                        "source": 0,
                        "frame_type": jk.FRAME_TYPE_RESPONSE,
                        "payload": jk.PAYLOAD.build(
                            [
                                {
                                    "id": jk.FIELD_CELL_VOLTAGES,
                                    "value": [{"index": i + 1, "voltage_mv": v} for i, v in enumerate(fields[0])],
                                },
                                {"id": jk.FIELD_SOC, "value": fields[1]},
                            ]
                        ),
                        "record_number": 1,
                    }
                }
            }
        )
    ),
    "Pylontech RS485": st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=120)).map(
        lambda fields: pylontech.build_answer(fields[0], fields[2], return_code=fields[1])
    ),
}

by_name = pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda protocol: protocol.name)


def parse_or_own_error(protocol, data: bytes) -> None:
    try:
        protocol.parse(data)
    except protocol.error:
        pass


@by_name
@FUZZ
@given(data=st.binary(max_size=300))
def test_parse_raises_only_the_protocols_own_error(protocol, data):
    parse_or_own_error(protocol, data)
    parse_or_own_error(protocol, protocol.sync + data)


@by_name
@FUZZ
@given(chunks=st.lists(st.binary(max_size=200), max_size=8))
def test_scanner_yields_only_checksum_valid_frames_and_stays_bounded(protocol, chunks):
    scanner = FrameScanner(protocol)
    for chunk in chunks:
        for frame in scanner.feed(chunk):
            assert protocol.checksum_ok(frame)
            parse_or_own_error(protocol, frame)
        assert len(scanner.pending) <= protocol.max_frame_size


@by_name
@FUZZ
@given(data=st.data(), garbage=st.binary(max_size=200))
def test_valid_frame_after_garbage_is_found(protocol, data, garbage):
    frame = data.draw(VALID_FRAMES[protocol.name])
    found = FrameScanner(protocol).feed(garbage + frame)
    assert found and found[-1] == frame
    assert protocol.build(protocol.parse(frame)) == frame  # the found frame parses, and round-trips


@by_name
@FUZZ
@given(data=st.data(), flip_at=st.integers(min_value=0), flip_mask=st.integers(1, 255))
def test_corrupted_frame_is_dropped_and_the_next_one_found(protocol, data, flip_at, flip_mask):
    frame = data.draw(VALID_FRAMES[protocol.name])
    position = flip_at % len(frame)
    corrupted = frame[:position] + bytes([frame[position] ^ flip_mask]) + frame[position + 1 :]
    scanner = FrameScanner(protocol)
    found = scanner.feed(corrupted + frame)
    assert found[-1] == frame
    assert all(protocol.checksum_ok(candidate) for candidate in found)


@FUZZ
@given(payload=st.binary(max_size=120))
def test_jk_payload_decode_raises_only_jk_errors(payload):
    frame = jk.PROTOCOL.build(
        {
            "body": {
                "value": {
                    "terminal_id": 0,
                    "command": jk.COMMAND_READ_ALL,
                    "source": 0,
                    "frame_type": jk.FRAME_TYPE_RESPONSE,
                    "payload": payload,
                    "record_number": 0,
                }
            }
        }
    )
    try:
        jk.decode_status(frame)
    except jk.JkError:
        pass


@FUZZ
@given(frame=st.binary(min_size=13, max_size=13))
def test_daly_decoders_raise_only_daly_errors(frame):
    for decode in (daly.decode_soc, daly.decode_status):
        try:
            decode(frame)
        except daly.DalyError:
            pass


@FUZZ
@given(info=st.binary(max_size=120), return_code=st.sampled_from([0, 0, 0, 4]))
def test_pylontech_decoders_raise_only_pylontech_errors(info, return_code):
    frame = pylontech.build_answer(2, info, return_code)
    for decode in (pylontech.decode_module, pylontech.decode_all_modules, pylontech.decode_management,
                   pylontech.decode_alarms):
        try:
            decode(frame)
        except pylontech.PylontechError:
            pass
