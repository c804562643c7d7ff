"""Debug UART of the reference BMS firmware: read its internal state. Read-only by design.

Frame: ``A7 7A``, length (u16 little-endian: command + payload bytes), command (u8), payload,
CRC-16/CCITT-FALSE (u16 little-endian) over length, command and payload. Multi-byte fields are
little-endian, as the firmware's MCU stores them. Requests carry no payload; each answer's command
is the request's with bit 7 set, or ``nack`` (0xFF).

Limits: at most 64 cells in the balancing mask, 255 fault-log entries and 255 calibration keys
per answer; calibration values are float32.
"""

from __future__ import annotations

from dataclasses import dataclass

from construct import Enum, Float32l, Int8ub, Int16ul, Int32ul, Int64ul, PascalString, PrefixedArray, Struct

from hil.serial.link import SerialLink
from hil.serial.protocols import CommandFrameProtocol, ProtocolError


class BmsDebugError(ProtocolError):
    """A BMS debug frame or answer is not what the protocol allows."""


Command = Enum(
    Int8ub,
    read_cell_voltages=0x10,
    read_balancing=0x11,
    read_fault_log=0x12,
    read_version=0x13,
    read_calibration=0x14,
    cell_voltages=0x90,
    balancing=0x91,
    fault_log=0x92,
    version=0x93,
    calibration=0x94,
    nack=0xFF,
)
FaultCode = Enum(
    Int16ul,
    over_voltage=1,
    under_voltage=2,
    over_current_charge=3,
    over_current_discharge=4,
    over_temperature=5,
    under_temperature=6,
    open_wire=7,
    cell_imbalance=8,
    contactor_fault=9,
    communication_timeout=10,
    thermistor_fault=11,
    self_discharge=12,
    afe_fault=13,
)
NackReason = Enum(Int8ub, unknown_command=1, busy=2, not_available=3)

PAYLOADS = {
    "read_cell_voltages": Struct(),
    "read_balancing": Struct(),
    "read_fault_log": Struct(),
    "read_version": Struct(),
    "read_calibration": Struct(),
    "cell_voltages": Struct("cell_voltages_mv" / PrefixedArray(Int8ub, Int16ul)),
    "balancing": Struct("cell_count" / Int8ub, "balancing_mask" / Int64ul),
    "fault_log": Struct("entries" / PrefixedArray(Int8ub, Struct("timestamp_ms" / Int32ul, "code" / FaultCode))),
    "version": Struct("firmware_version" / PascalString(Int8ub, "ascii")),
    "calibration": Struct(
        "entries" / PrefixedArray(Int8ub, Struct("key" / PascalString(Int8ub, "ascii"), "value" / Float32l))
    ),
    "nack": Struct("request" / Command, "reason" / NackReason),
}

PROTOCOL = CommandFrameProtocol(
    name="BMS debug UART",
    sync=b"\xa7\x7a",
    length_field=Int16ul,
    crc_field=Int16ul,
    commands=Command,
    payloads=PAYLOADS,
    error=BmsDebugError,
    # A calibration table of 255 keys of 32 characters is under 10 kB; more is garbage.
    max_frame_size=16 * 1024,
)


@dataclass(frozen=True)
class FaultLogEntry:
    timestamp_ms: int  # firmware uptime when the fault was logged
    code: str  # a FaultCode name, or the number as text if this harness does not know it


class BmsDebugClient:
    """Reads the reference BMS's internal state over a SerialLink opened with ``PROTOCOL``.

    A ``nack`` answer raises BmsDebugError naming the request and the firmware's reason.
    """

    def __init__(self, link: SerialLink) -> None:
        self._link = link

    def _read(self, request: str, answer: str):
        frame = self._link.request(
            PROTOCOL.build_message(request),
            accept=lambda fields: fields.message.value.command == answer
            or (fields.message.value.command == "nack" and fields.message.value.payload.request == request),
        )
        message = PROTOCOL.parse_message(frame)
        if message.command == "nack":
            raise BmsDebugError(f"BMS on {self._link.url} refused {request}: {message.payload.reason}")
        return message.payload

    def read_cell_voltages_mv(self) -> list[int]:
        """Cell voltages as the BMS measured them, cell 0 first."""
        return list(self._read("read_cell_voltages", "cell_voltages").cell_voltages_mv)

    def read_balancing_mask(self) -> int:
        """Bit n set while cell n is being balanced."""
        return self._read("read_balancing", "balancing").balancing_mask

    def read_fault_log(self) -> list[FaultLogEntry]:
        """The firmware's fault log, oldest entry first."""
        entries = self._read("read_fault_log", "fault_log").entries
        return [FaultLogEntry(timestamp_ms=entry.timestamp_ms, code=str(entry.code)) for entry in entries]

    def read_firmware_version(self) -> str:
        return self._read("read_version", "version").firmware_version

    def read_calibration(self) -> dict[str, float]:
        """Calibration constants by name (float32 precision)."""
        return {entry.key: entry.value for entry in self._read("read_calibration", "calibration").entries}
