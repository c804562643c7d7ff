"""Daly, JK and Pylontech BMS drivers against real frames from ../shared/realworld/vectors (skipped when absent)."""

from pathlib import Path

import pytest

from hil.serial.link import SerialLink
from hil.serial.protocols import daly, jk, pylontech
from hil.serial.protocols.daly import DalyError, DalyReader
from hil.serial.protocols.jk import JkError, JkReader
from hil.serial.protocols.pylontech import PylontechError, PylontechReader

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


def pylontech_frames() -> list[bytes]:
    """The Pylontech vector file's frames: ASCII lines, "~" kept, the "\\r" each frame ends with added back."""
    path = VECTORS_DIR / "pylontech_rs485_frames.txt"
    if not path.is_file():
        pytest.skip(f"real-world vectors not found at {path.resolve()} (they live outside the project)")
    return [line.strip().encode("ascii") + b"\r" for line in path.read_text().splitlines() if line.startswith("~")]


def test_pylontech_real_answers_pass_both_checksums():
    frames = pylontech_frames()
    assert len(frames) == 5
    for frame in frames:
        assert pylontech.PROTOCOL.checksum_ok(frame)
        assert pylontech.PROTOCOL.frame_size(frame[: pylontech.HEADER_SIZE]) == len(frame)


def test_pylontech_real_stack_answer_decodes_every_module():
    modules = pylontech.decode_all_modules(pylontech_frames()[0])
    assert len(modules) == 3
    first = modules[0]
    assert first.cell_voltages_mv[:3] == [3303, 3304, 3302] and len(first.cell_voltages_mv) == 15
    # The module's own voltage and its cells' sum are sent apart: decoded right, they agree.
    assert sum(first.cell_voltages_mv) / 1000 == pytest.approx(first.pack_voltage_v, abs=0.01)
    assert (first.bms_temperature_c, first.cell_temperatures_c) == (23.0, [22.0] * 4)
    assert first.pack_current_a == 2.6  # sent as -26 (0.1 A, charge positive): a discharge
    assert (first.remaining_ah, first.full_ah, first.cycles) == (33.5, 50.0, 31)
    assert first.soc == pytest.approx(0.67)


def test_pylontech_capacity_above_65_ah_comes_in_the_extended_fields():
    module = pylontech.decode_all_modules(pylontech_frames()[1])[0]
    assert (module.remaining_ah, module.full_ah) == (61.42, 74.0)  # the 16-bit fields hold 0xFFFF
    assert len(pylontech.decode_all_modules(pylontech_frames()[2])) == 2


def test_pylontech_one_module_and_its_management_answer():
    module = pylontech.decode_module(pylontech_frames()[3])
    assert module.address == 2 and len(module.cell_voltages_mv) == 8
    assert (module.pack_voltage_v, module.remaining_ah, module.full_ah) == (26.638, 95.46, 111.0)
    management = pylontech.decode_management(pylontech_frames()[4])
    # 8 LFP cells: 3.55 V each to charge to, 2.9 V each to discharge to.
    assert (management.charge_voltage_limit_v, management.discharge_voltage_limit_v) == (28.4, 23.2)
    assert (management.charge_current_limit_a, management.discharge_current_limit_a) == (55.5, 55.5)
    assert management.charge_enabled and management.discharge_enabled
    assert not management.charge_immediately and not management.full_charge_request


def test_pylontech_request_is_the_documented_one():
    # The analog request to the first module, as the protocol's examples and python-pylontech send it.
    assert pylontech.build_request(pylontech.COMMAND_ANALOG) == b"~20024642E00202FD33\r"
    assert pylontech.PROTOCOL.parse(pylontech.build_request(pylontech.COMMAND_ANALOG, target=0xFF)).body.value.info \
        == b"\xff"


def test_pylontech_bad_answers_are_pylontech_errors():
    stack, _, _, one_module, management = pylontech_frames()
    with pytest.raises(PylontechError, match="Pylontech"):
        pylontech.decode_module(one_module[:-5] + b"0000\r")
    with pytest.raises(PylontechError, match="analog .one module.* does not decode"):
        pylontech.decode_module(stack)  # an answer for every module, read as one
    refused = pylontech.build_answer(2, b"", return_code=0x04)
    with pytest.raises(PylontechError, match=r"address 2 refused the management request: return code 0x04 \(CID2 inv"):
        pylontech.decode_management(refused)
    wrong_length_checksum = management[:9] + b"0" + management[10:]
    assert pylontech.PROTOCOL.frame_size(wrong_length_checksum[: pylontech.HEADER_SIZE]) is None
    with pytest.raises(PylontechError, match="not a valid Pylontech RS485 frame"):
        pylontech.decode_management(wrong_length_checksum)


def test_pylontech_reader_over_a_link_skips_the_echo_and_reads_alarms(scripted_device):
    _, _, _, one_module, management = pylontech_frames()
    alarms = pylontech.ALARMS.build(dict(flag=0x10, address=2, cell_count=8, cell_alarms=[0, 0, 2, 0, 0, 0, 0, 0],
                                         temperature_count=5, temperature_alarms=[0] * 5, charge_current_alarm=0,
                                         pack_voltage_alarm=0, discharge_current_alarm=0, status=b"\x00\x0e\x00"))
    answers = {pylontech.COMMAND_ANALOG: one_module, pylontech.COMMAND_MANAGEMENT: management,
               pylontech.COMMAND_ALARMS: pylontech.build_answer(2, alarms)}

    def respond(request: bytes, index: int) -> bytes:
        return request + answers[pylontech.PROTOCOL.parse(request).body.value.cid2]  # RS485 echoes the request

    device = scripted_device(pylontech.PROTOCOL, respond)
    with SerialLink(device.url, pylontech.PROTOCOL, baudrate=9600, timeout_s=TIMEOUT_S) as link:
        reader = PylontechReader(link)
        assert reader.read_module().pack_voltage_v == 26.638
        assert reader.read_management().discharge_current_limit_a == 55.5
        read = reader.read_alarms()
        assert read.any and read.cell_alarms[2] == "above upper limit" and read.status == b"\x00\x0e\x00"
        assert set(read.cell_alarms[:2] + read.temperature_alarms) == {"normal"}
        assert link.counters["unexpected"] == 3
    assert [pylontech.PROTOCOL.parse(r).body.value.cid2 for r in device.requests] == [0x42, 0x92, 0x44]
