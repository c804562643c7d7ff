"""Read-only driver for Daly BMS UART/RS485 ("A5" frames), 9600 baud 8N1.

Frame (13 bytes): ``A5``, address, command, data length (always 8), 8 data bytes, and the low byte
of the sum of the 12 bytes before it. The host sends address 0x40 (RS485) or 0x80 (UART); the BMS
answers from 0x01. Layouts follow the Daly UART protocol as used by python-daly-bms and
dbus-serialbattery (both MIT), and ../shared/realworld/vectors/README.md.

Limits: only the reads below (0x90 SOC, 0x94 status, 0x95 cell voltages); nothing is ever written.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from construct import Array, Bytes, Checksum, Const, Flag, Int8ub, Int16ub, Padding, RawCopy, Struct, Terminated, this

from hil.serial.link import SerialLink
from hil.serial.protocols import FramedProtocol, ProtocolError, hex_preview

HOST_ADDRESS_RS485 = 0x40
HOST_ADDRESS_UART = 0x80
HOST_ADDRESSES = (HOST_ADDRESS_RS485, HOST_ADDRESS_UART)
COMMAND_SOC = 0x90
COMMAND_STATUS = 0x94
COMMAND_CELL_VOLTAGES = 0x95

FRAME_SIZE = 13
DATA_SIZE = 8
CELLS_PER_VOLTAGE_FRAME = 3
# Current is sent offset by 30 000 in 0.1 A. dbus-serialbattery negates it to get its charge-positive
# current, so a raw value above the offset is a discharge: the harness's positive direction.
CURRENT_OFFSET_DA = 30_000


class DalyError(ProtocolError):
    """A Daly frame that does not decode, or an answer to the wrong command."""


def _sum8(data: bytes) -> int:
    return sum(data) & 0xFF


FRAME = Struct(
    "body"
    / RawCopy(
        Struct(
            "start" / Const(b"\xa5"),
            "address" / Int8ub,
            "command" / Int8ub,
            "data_length" / Const(DATA_SIZE, Int8ub),
            "data" / Bytes(DATA_SIZE),
        )
    ),
    "checksum" / Checksum(Int8ub, _sum8, this.body.data),
    Terminated,
)
SOC_DATA = Struct(
    "pack_voltage_dv" / Int16ub,
    "gather_voltage_dv" / Int16ub,
    "current_raw_da" / Int16ub,
    "soc_permille" / Int16ub,
)
STATUS_DATA = Struct(
    "cell_count" / Int8ub,
    "temperature_sensor_count" / Int8ub,
    "charger_connected" / Flag,
    "load_connected" / Flag,
    "dio_states" / Int8ub,
    "cycles" / Int16ub,
    Padding(1),
)
CELL_VOLTAGES_DATA = Struct(
    "frame_number" / Int8ub,  # 1-based; frame n carries cells 3(n-1) .. 3(n-1)+2
    "cell_voltages_mv" / Array(CELLS_PER_VOLTAGE_FRAME, Int16ub),
    Padding(1),
)


class DalyProtocol(FramedProtocol):
    name = "Daly BMS"
    sync = b"\xa5"
    header_size = 4
    max_frame_size = FRAME_SIZE
    frame = FRAME
    error = DalyError

    def frame_size(self, header: bytes) -> int | None:
        return FRAME_SIZE if header[:1] == self.sync and header[3] == DATA_SIZE else None

    def checksum_ok(self, frame: bytes) -> bool:
        return len(frame) == FRAME_SIZE and _sum8(frame[:-1]) == frame[-1]


PROTOCOL = DalyProtocol()


@dataclass(frozen=True)
class DalySoc:
    pack_voltage_v: float
    pack_current_a: float  # > 0 discharges (the harness's convention)
    soc: float  # 0..1


@dataclass(frozen=True)
class DalyStatus:
    cell_count: int
    temperature_sensor_count: int
    charger_connected: bool
    load_connected: bool
    cycles: int


def build_request(command: int, address: int = HOST_ADDRESS_RS485) -> bytes:
    """A read request: the command with 8 zero data bytes."""
    return PROTOCOL.build({"body": {"value": {"address": address, "command": command, "data": bytes(DATA_SIZE)}}})


def _data(frame: bytes, command: int) -> bytes:
    body = PROTOCOL.parse(frame).body.value
    if body.command != command:
        raise DalyError(
            f"expected a Daly answer to command 0x{command:02X}, got 0x{body.command:02X}: {hex_preview(frame)}"
        )
    return body.data


def decode_soc(frame: bytes) -> DalySoc:
    """Pack voltage, current and SOC from a 0x90 answer."""
    data = SOC_DATA.parse(_data(frame, COMMAND_SOC))
    return DalySoc(
        pack_voltage_v=data.pack_voltage_dv / 10,
        pack_current_a=(data.current_raw_da - CURRENT_OFFSET_DA) / 10,
        soc=data.soc_permille / 1000,
    )


def decode_status(frame: bytes) -> DalyStatus:
    """Cell count and other counts from a 0x94 answer."""
    data = STATUS_DATA.parse(_data(frame, COMMAND_STATUS))
    return DalyStatus(
        cell_count=data.cell_count,
        temperature_sensor_count=data.temperature_sensor_count,
        charger_connected=data.charger_connected,
        load_connected=data.load_connected,
        cycles=data.cycles,
    )


def decode_cell_voltages_mv(frames: Iterable[bytes], cell_count: int) -> list[int]:
    """Cell voltages, cell 1 first, from the 0x95 answer frames (any order, duplicates ignored)."""
    by_number = {}
    for frame in frames:
        data = CELL_VOLTAGES_DATA.parse(_data(frame, COMMAND_CELL_VOLTAGES))
        by_number[data.frame_number] = list(data.cell_voltages_mv)
    needed = range(1, voltage_frame_count(cell_count) + 1)
    missing = [number for number in needed if number not in by_number]
    if missing:
        raise DalyError(
            f"Daly cell voltages for {cell_count} cells need frames {list(needed)}; "
            f"missing {missing}, got {sorted(by_number)}"
        )
    return [voltage for number in needed for voltage in by_number[number]][:cell_count]


def voltage_frame_count(cell_count: int) -> int:
    return math.ceil(cell_count / CELLS_PER_VOLTAGE_FRAME)


def _answers(command: int):
    # An RS485 adapter may echo the request back; it carries a host address, the BMS's answer not.
    return lambda fields: fields.body.value.command == command and fields.body.value.address not in HOST_ADDRESSES


class DalyReader:
    """Reads a Daly BMS over a SerialLink opened with ``PROTOCOL`` (9600 baud)."""

    def __init__(self, link: SerialLink, address: int = HOST_ADDRESS_RS485) -> None:
        self._link = link
        self._address = address

    def _request(self, command: int) -> bytes:
        return self._link.request(build_request(command, self._address), accept=_answers(command))

    def read_soc(self) -> DalySoc:
        return decode_soc(self._request(COMMAND_SOC))

    def read_status(self) -> DalyStatus:
        return decode_status(self._request(COMMAND_STATUS))

    def read_cell_voltages_mv(self, cell_count: int | None = None) -> list[int]:
        """Cell voltages; asks the BMS for its cell count first unless given."""
        if cell_count is None:
            cell_count = self.read_status().cell_count
        frames = [self._request(COMMAND_CELL_VOLTAGES)]
        for _ in range(voltage_frame_count(cell_count) - 1):
            frames.append(self._link.read_frame(accept=_answers(COMMAND_CELL_VOLTAGES)))
        return decode_cell_voltages_mv(frames, cell_count)
