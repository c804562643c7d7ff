"""Daly and JK BMS drivers against real frames from ../shared/realworld/vectors (skipped when absent)."""

from pathlib import Path

import pytest

from hil.serial.link import SerialLink
from hil.serial.protocols import daly, jk
from hil.serial.protocols.daly import DalyError, DalyReader
from hil.serial.protocols.jk import JkError, JkReader

VECTORS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "realworld" / "vectors"
TIMEOUT_S = 0.5


def vector_frames(file_name: str) -> list[bytes]:
    """The hex frames of one vector file, in file order; skips the test if the folder is absent."""
    path = VECTORS_DIR / file_name
    if not path.is_file():
        pytest.skip(f"real-world vectors not found at {path.resolve()} (they live outside the project)")
    lines = (line.strip() for line in path.read_text().splitlines())
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]


def test_daly_real_requests_match_ours_and_pass_the_checksum():
    request_rs485, request_uart, _ = vector_frames("daly_uart_frames.txt")
    assert daly.build_request(daly.COMMAND_SOC, daly.HOST_ADDRESS_RS485) == request_rs485
    assert daly.build_request(daly.COMMAND_CELL_VOLTAGES, daly.HOST_ADDRESS_UART) == request_uart
    assert all(daly.PROTOCOL.checksum_ok(frame) for frame in vector_frames("daly_uart_frames.txt"))


def test_daly_real_soc_answer_decodes():
    soc_answer = vector_frames("daly_uart_frames.txt")[2]
    assert daly.decode_soc(soc_answer) == daly.DalySoc(pack_voltage_v=76.4, pack_current_a=11.3, soc=0.0)


def test_daly_checksum_error_and_wrong_command_are_daly_errors():
    soc_answer = vector_frames("daly_uart_frames.txt")[2]
    with pytest.raises(DalyError, match="Daly"):
        daly.decode_soc(soc_answer[:-1] + bytes([soc_answer[-1] ^ 1]))
    with pytest.raises(DalyError, match="command 0x94, got 0x90"):
        daly.decode_status(soc_answer)


def test_jk_real_read_all_answer_decodes():
    (answer,) = vector_frames("jk_bms_rs485_frames.txt")
    assert jk.PROTOCOL.checksum_ok(answer)
    status = jk.decode_status(answer)
    assert (status.pack_voltage_v, status.pack_current_a, status.soc) == (53.59, -2.08, 0.15)  # charging 2.08 A
    assert status.cell_voltages_mv[:3] == [3821, 3834, 3831] and len(status.cell_voltages_mv) == 14
    assert jk.decode_fields(answer)[0xB7] == b"H6.X__S6.1.3S__"


def test_jk_current_sign_and_unknown_encoding():
    assert jk.pack_current_a(0x80D0, protocol_version=1) == -2.08
    assert jk.pack_current_a(0x00D0, protocol_version=1) == 2.08
    with pytest.raises(JkError, match="protocol version 0"):
        jk.pack_current_a(0x00D0, protocol_version=0)


def test_jk_checksum_error_is_a_jk_error():
    (answer,) = vector_frames("jk_bms_rs485_frames.txt")
    assert not jk.PROTOCOL.checksum_ok(answer[:-1] + b"\x00")
    with pytest.raises(JkError, match="JK BMS"):
        jk.decode_status(answer[:-1] + b"\x00")


def test_jk_reader_over_a_link(scripted_device):
    (answer,) = vector_frames("jk_bms_rs485_frames.txt")
    device = scripted_device(jk.PROTOCOL, lambda request, index: b"\x00\x4e" + answer)
    with SerialLink(device.url, jk.PROTOCOL, timeout_s=TIMEOUT_S) as link:
        assert JkReader(link).read_status().pack_voltage_v == 53.59
    assert device.requests == [jk.READ_ALL_REQUEST]


def test_daly_reader_skips_the_rs485_echo(scripted_device):
    soc_answer = vector_frames("daly_uart_frames.txt")[2]
    device = scripted_device(daly.PROTOCOL, lambda request, index: request + soc_answer)
    with SerialLink(device.url, daly.PROTOCOL, baudrate=9600, timeout_s=TIMEOUT_S) as link:
        assert DalyReader(link).read_soc().pack_voltage_v == 76.4
        assert link.counters["unexpected"] == 1


def daly_answer(command: int, data: bytes) -> bytes:
    return daly.PROTOCOL.build({"body": {"value": {"address": 0x01, "command": command, "data": data}}})


def test_daly_reader_collects_multi_frame_cell_voltages(scripted_device):
    # No real 0x95 answer is in the vectors; these follow the documented layout.
    status = daly.STATUS_DATA.build(
        dict(
            cell_count=5, temperature_sensor_count=1, charger_connected=False, load_connected=True, dio_states=0, cycles=3
        )
    )
    voltage_frames = [
        daly_answer(daly.COMMAND_CELL_VOLTAGES, daly.CELL_VOLTAGES_DATA.build(dict(frame_number=n, cell_voltages_mv=v)))
        for n, v in ((1, [3300, 3301, 3302]), (2, [3303, 3304, 0]))
    ]

    def respond(request: bytes, index: int) -> bytes:
        command = daly.PROTOCOL.parse(request).body.value.command
        return daly_answer(command, status) if command == daly.COMMAND_STATUS else b"".join(voltage_frames)

    device = scripted_device(daly.PROTOCOL, respond)
    with SerialLink(device.url, daly.PROTOCOL, baudrate=9600, timeout_s=TIMEOUT_S) as link:
        assert DalyReader(link).read_cell_voltages_mv() == [3300, 3301, 3302, 3303, 3304]
