"""The harness's own board protocols (cell emulator, BMS debug UART), through their clients."""

import pytest

from hil.serial.link import SerialLink
from hil.serial.protocols import bms_debug, cell_emulator
from hil.serial.protocols.bms_debug import BmsDebugClient, BmsDebugError, FaultLogEntry
from hil.serial.protocols.cell_emulator import CellEmulatorClient, CellEmulatorError

CELL = cell_emulator.PROTOCOL
DEBUG = bms_debug.PROTOCOL
TIMEOUT_S = 0.5


class FakeCellEmulatorBoard:
    """Just enough of the board to answer the client: state in attributes, answers from the protocol."""

    def __init__(self, channel_count: int) -> None:
        self.cell_voltages_mv = [0] * channel_count
        self.outputs_enabled = False
        self.faults = ["none"] * channel_count

    def respond(self, request: bytes, index: int) -> bytes:
        message = CELL.parse_message(request)
        command, payload = str(message.command), message.payload
        if command == "read_cell_voltages":
            return CELL.build_message("cell_voltages", cell_voltages_mv=self.cell_voltages_mv)
        if command == "heartbeat":
            return CELL.build_message(
                "heartbeat_reply", sequence=payload.sequence, uptime_ms=1234, outputs_enabled=self.outputs_enabled
            )
        status = "ok"
        if command == "set_cell_voltages":
            if len(payload.cell_voltages_mv) != len(self.cell_voltages_mv):
                status = "bad_channel"
            else:
                self.cell_voltages_mv = list(payload.cell_voltages_mv)
        elif command == "set_outputs":
            self.outputs_enabled = payload.enabled
        elif command == "set_fault":
            if payload.channel >= len(self.faults):
                status = "bad_channel"
            else:
                self.faults[payload.channel] = str(payload.fault)
        return CELL.build_message("ack", request=command, status=status)


@pytest.fixture
def cell_board(scripted_device):
    board = FakeCellEmulatorBoard(channel_count=4)
    device = scripted_device(CELL, board.respond)
    with SerialLink(device.url, CELL, timeout_s=TIMEOUT_S) as link:
        yield board, CellEmulatorClient(link)


def test_cell_voltages_are_set_and_read_back(cell_board):
    board, client = cell_board
    client.set_cell_voltages_mv([3700, 3710, 3720, 3730])
    assert board.cell_voltages_mv == [3700, 3710, 3720, 3730]
    assert client.read_cell_voltages_mv() == [3700, 3710, 3720, 3730]


def test_outputs_faults_and_heartbeat(cell_board):
    board, client = cell_board
    client.set_outputs_enabled(True)
    client.set_fault(2, "open_wire")
    client.set_fault(3, "short")
    assert board.faults == ["none", "none", "open_wire", "short"]
    assert client.heartbeat(sequence=42) == (1234, True)


def test_refused_setting_raises_with_the_board_status(cell_board):
    _, client = cell_board
    with pytest.raises(CellEmulatorError, match="bad_channel"):
        client.set_fault(9, "short")
    with pytest.raises(CellEmulatorError, match="bad_channel"):
        client.set_cell_voltages_mv([3700])


def test_unknown_fault_name_is_a_protocol_error_before_anything_is_sent():
    with pytest.raises(CellEmulatorError, match="melted"):
        CELL.build_message("set_fault", channel=0, fault="melted")


DEBUG_ANSWERS = {
    "read_cell_voltages": ("cell_voltages", {"cell_voltages_mv": [3301, 3302, 3299]}),
    "read_balancing": ("balancing", {"cell_count": 3, "balancing_mask": 0b101}),
    "read_fault_log": (
        "fault_log",
        {"entries": [{"timestamp_ms": 1500, "code": "over_voltage"}, {"timestamp_ms": 2750, "code": 999}]},
    ),
    "read_version": ("version", {"firmware_version": "refbms 1.4.2"}),
    "read_calibration": (
        "calibration",
        {"entries": [{"key": "ov_trip_mv", "value": 4250.0}, {"key": "gain", "value": 0.5}]},
    ),
}


@pytest.fixture
def debug_client(scripted_device):
    def respond(request: bytes, index: int) -> bytes:
        command = str(DEBUG.parse_message(request).command)
        if command not in DEBUG_ANSWERS:
            return DEBUG.build_message("nack", request=command, reason="unknown_command")
        answer, payload = DEBUG_ANSWERS[command]
        return DEBUG.build_message(answer, **payload)

    device = scripted_device(DEBUG, respond)
    with SerialLink(device.url, DEBUG, timeout_s=TIMEOUT_S) as link:
        yield BmsDebugClient(link)


def test_bms_debug_reads_internal_state(debug_client):
    assert debug_client.read_cell_voltages_mv() == [3301, 3302, 3299]
    assert debug_client.read_balancing_mask() == 0b101
    assert debug_client.read_fault_log() == [FaultLogEntry(1500, "over_voltage"), FaultLogEntry(2750, "999")]
    assert debug_client.read_firmware_version() == "refbms 1.4.2"
    assert debug_client.read_calibration() == {"ov_trip_mv": 4250.0, "gain": 0.5}


def test_bms_debug_nack_names_the_request_and_reason(scripted_device):
    device = scripted_device(
        DEBUG, lambda request, index: DEBUG.build_message("nack", request="read_fault_log", reason="busy")
    )
    with SerialLink(device.url, DEBUG, timeout_s=TIMEOUT_S) as link:
        with pytest.raises(BmsDebugError, match="read_fault_log.*busy"):
            BmsDebugClient(link).read_fault_log()


def test_bms_debug_rejects_non_ascii_text_as_its_own_error():
    frame = DEBUG.build_message("version", firmware_version="x")
    patched = frame[:-3] + b"\xff" + frame[-2:]  # non-ASCII text, CRC now wrong as well
    with pytest.raises(BmsDebugError, match="BMS debug UART"):
        DEBUG.parse(patched)
