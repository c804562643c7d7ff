"""Read-only driver for JK BMS over RS485/UART ("4E 57" frames), 115200 baud.

Frame: ``4E 57``, length (u16 big-endian, total - 2), terminal id (u32), command, source, frame
type, a payload of (field id, value) pairs, record number (u32), ``68``, two zero bytes, and a u16
sum of every byte before the last four. Field ids and sizes follow the JK RS485 protocol as
esphome-jk-bms (Apache-2.0) decodes it, and ../shared/realworld/vectors/README.md.

Limits: only the "read all" request is sent; only the fields in FIELD_VALUES are understood, and a
frame with any other field id is rejected rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import (
    Bytes,
    Checksum,
    Const,
    Error,
    FocusedSeq,
    GreedyRange,
    Int8ub,
    Int16ub,
    Int32ub,
    Padding,
    Prefixed,
    RawCopy,
    Rebuild,
    Struct,
    Switch,
    Terminated,
    len_,
    this,
)

from hil.serial.link import SerialLink
from hil.serial.protocols import DECODE_ERRORS, FramedProtocol, ProtocolError, hex_preview

COMMAND_READ_ALL = 0x06
SOURCE_HOST = 0x03
FRAME_TYPE_REQUEST = 0x00
FRAME_TYPE_RESPONSE = 0x01
# Bytes the length field counts besides the payload: itself, terminal id, command, source, type,
# record number, end mark and checksum.
FRAME_OVERHEAD = 2 + 4 + 3 + 4 + 1 + 4
MAX_FRAME_SIZE = 1024  # a 32-cell "read all" answer is about 350 bytes

FIELD_CELL_VOLTAGES = 0x79
FIELD_PACK_VOLTAGE = 0x83  # 0.01 V
FIELD_CURRENT = 0x84  # 0.01 A, encoding depends on FIELD_PROTOCOL_VERSION
FIELD_SOC = 0x85  # %
FIELD_PROTOCOL_VERSION = 0xC0


class JkError(ProtocolError):
    """A JK frame that does not decode, or lacks a field the caller asked for."""


def _sum16(data: bytes) -> int:
    return sum(data) & 0xFFFF


_CELL = Struct("index" / Int8ub, "voltage_mv" / Int16ub)
_U8_FIELDS = (0x85, 0x86, 0x9D, 0xA9, 0xAB, 0xAC, 0xAE, 0xAF, 0xB1, 0xB3, 0xB8, 0xC0)
_U32_FIELDS = (0x89, 0xAA, 0xB6, 0xB9)
_TEXT_FIELD_SIZES = {0xB2: 10, 0xB4: 8, 0xB5: 4, 0xB7: 15, 0xBA: 24}  # password, device id, date, version, maker
_U16_FIELDS = (
    *range(0x80, 0x85),
    0x87,
    0x8A,
    0x8B,
    0x8C,
    *range(0x8E, 0x9D),
    *range(0x9E, 0xA9),
    0xAD,
    0xB0,
)
FIELD_VALUES = {
    FIELD_CELL_VOLTAGES: Prefixed(Int8ub, FocusedSeq("cells", "cells" / GreedyRange(_CELL), Terminated)),
    **{field_id: Int8ub for field_id in _U8_FIELDS},
    **{field_id: Int16ub for field_id in _U16_FIELDS},
    **{field_id: Int32ub for field_id in _U32_FIELDS},
    **{field_id: Bytes(size) for field_id, size in _TEXT_FIELD_SIZES.items()},
}
PAYLOAD = FocusedSeq(
    "fields",
    "fields" / GreedyRange(Struct("id" / Int8ub, "value" / Switch(this.id, FIELD_VALUES, default=Error))),
    Terminated,
)
FRAME = Struct(
    "body"
    / RawCopy(
        Struct(
            "start" / Const(b"\x4e\x57"),
            "length" / Rebuild(Int16ub, len_(this.payload) + FRAME_OVERHEAD),
            "terminal_id" / Int32ub,
            "command" / Int8ub,
            "source" / Int8ub,
            "frame_type" / Int8ub,
            "payload" / Bytes(this.length - FRAME_OVERHEAD),
            "record_number" / Int32ub,
            "end" / Const(b"\x68"),
        )
    ),
    # The checksum field is four bytes; devices and esphome-jk-bms only compare the low two.
    Padding(2),
    "checksum" / Checksum(Int16ub, _sum16, this.body.data),
    Terminated,
)


class JkProtocol(FramedProtocol):
    name = "JK BMS"
    sync = b"\x4e\x57"
    header_size = 4
    max_frame_size = MAX_FRAME_SIZE
    frame = FRAME
    error = JkError

    def frame_size(self, header: bytes) -> int | None:
        if header[:2] != self.sync:
            return None
        length = int.from_bytes(header[2:4], "big")
        return length + 2 if length >= FRAME_OVERHEAD else None

    def checksum_ok(self, frame: bytes) -> bool:
        return len(frame) > 4 and _sum16(frame[:-4]) == int.from_bytes(frame[-2:], "big")


PROTOCOL = JkProtocol()

READ_ALL_REQUEST = PROTOCOL.build(
    {
        "body": {
            "value": {
                "terminal_id": 0,
                "command": COMMAND_READ_ALL,
                "source": SOURCE_HOST,
                "frame_type": FRAME_TYPE_REQUEST,
                "payload": b"\x00",  # register 0: everything
                "record_number": 0,
            }
        }
    }
)


@dataclass(frozen=True)
class JkStatus:
    pack_voltage_v: float
    pack_current_a: float  # > 0 discharges (the harness's convention)
    soc: float  # 0..1
    cell_voltages_mv: list[int]  # cell 1 first


def decode_fields(frame: bytes) -> dict[int, int | bytes | list]:
    """Every (field id, value) of a frame's payload; cell voltages as a list of (index, voltage_mv)."""
    payload = PROTOCOL.parse(frame).body.value.payload
    try:
        fields = PAYLOAD.parse(payload)
    except DECODE_ERRORS as error:
        raise JkError(f"JK payload does not decode ({error}); frame {hex_preview(frame)}") from None
    decoded: dict[int, int | bytes | list] = {field.id: field.value for field in fields}
    if FIELD_CELL_VOLTAGES in decoded:
        decoded[FIELD_CELL_VOLTAGES] = [(cell.index, cell.voltage_mv) for cell in decoded[FIELD_CELL_VOLTAGES]]
    return decoded


def pack_current_a(raw: int, protocol_version: int) -> float:
    """Current from field 0x84. With protocol version 1 the top bit set means charging and the
    other 15 bits are 10 mA steps (esphome-jk-bms ``get_current_``); other versions are refused."""
    if protocol_version != 1:
        raise JkError(
            f"JK current encoding for protocol version {protocol_version} (field 0xC0) is unknown; "
            "expected version 1"
        )
    magnitude_a = (raw & 0x7FFF) / 100
    return -magnitude_a if raw & 0x8000 else magnitude_a


def decode_status(frame: bytes) -> JkStatus:
    """Pack voltage, current, SOC and cell voltages from a "read all" answer."""
    fields = decode_fields(frame)
    needed = (FIELD_CELL_VOLTAGES, FIELD_PACK_VOLTAGE, FIELD_CURRENT, FIELD_SOC, FIELD_PROTOCOL_VERSION)
    missing = [f"0x{field_id:02X}" for field_id in needed if field_id not in fields]
    if missing:
        raise JkError(f"JK answer lacks fields {missing}; frame {hex_preview(frame)}")
    return JkStatus(
        pack_voltage_v=fields[FIELD_PACK_VOLTAGE] / 100,
        pack_current_a=pack_current_a(fields[FIELD_CURRENT], fields[FIELD_PROTOCOL_VERSION]),
        soc=fields[FIELD_SOC] / 100,
        cell_voltages_mv=[voltage_mv for _, voltage_mv in sorted(fields[FIELD_CELL_VOLTAGES])],
    )


def _is_read_all_answer(fields) -> bool:
    body = fields.body.value
    return body.command == COMMAND_READ_ALL and body.frame_type == FRAME_TYPE_RESPONSE


class JkReader:
    """Reads a JK BMS over a SerialLink opened with ``PROTOCOL`` (115200 baud)."""

    def __init__(self, link: SerialLink) -> None:
        self._link = link

    def read_status(self) -> JkStatus:
        """SOC, pack voltage, current and cell voltages: one "read all" request answers them all."""
        return decode_status(self._link.request(READ_ALL_REQUEST, accept=_is_read_all_answer))
