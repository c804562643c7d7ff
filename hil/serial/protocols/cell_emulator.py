"""Serial control protocol of the harness's cell-emulator board (emulated in hil/sim, or real).

Frame: ``AA 55``, length (u8: command + payload bytes), command (u8), payload, CRC-16/CCITT-FALSE
(u16 big-endian) over length, command and payload. Requests from the host use commands 0x01..0x05;
the board answers ``ack`` (0x80) to settings, ``cell_voltages`` (0x82) and ``heartbeat_reply`` (0x85).

Limits: at most 127 channels per frame (255 payload bytes); voltages are whole mV, 0..65 535.
"""

from __future__ import annotations

from collections.abc import Sequence

from construct import Enum, Flag, Int8ub, Int16ub, Int32ub, PrefixedArray, Struct

from hil.serial.link import SerialLink
from hil.serial.protocols import CommandFrameProtocol, ProtocolError


class CellEmulatorError(ProtocolError):
    """A cell-emulator frame or answer is not what the protocol allows."""


Command = Enum(
    Int8ub,
    set_cell_voltages=0x01,
    read_cell_voltages=0x02,
    set_outputs=0x03,
    set_fault=0x04,
    heartbeat=0x05,
    ack=0x80,
    cell_voltages=0x82,
    heartbeat_reply=0x85,
)
# A per-channel relay either leaves the sense wire alone, opens it, or shorts the cell.
Fault = Enum(Int8ub, none=0, open_wire=1, short=2)
Status = Enum(Int8ub, ok=0, bad_channel=1, out_of_range=2, busy=3)

_CELL_VOLTAGES_MV = Struct("cell_voltages_mv" / PrefixedArray(Int8ub, Int16ub))
PAYLOADS = {
    "set_cell_voltages": _CELL_VOLTAGES_MV,
    "read_cell_voltages": Struct(),
    "set_outputs": Struct("enabled" / Flag),
    "set_fault": Struct("channel" / Int8ub, "fault" / Fault),
    "heartbeat": Struct("sequence" / Int16ub),
    "ack": Struct("request" / Command, "status" / Status),
    "cell_voltages": _CELL_VOLTAGES_MV,
    "heartbeat_reply": Struct("sequence" / Int16ub, "uptime_ms" / Int32ub, "outputs_enabled" / Flag),
}

PROTOCOL = CommandFrameProtocol(
    name="cell emulator",
    sync=b"\xaa\x55",
    length_field=Int8ub,
    crc_field=Int16ub,
    commands=Command,
    payloads=PAYLOADS,
    error=CellEmulatorError,
    max_frame_size=2 + 1 + 255 + 2,
)


def _answers(command: str):
    return lambda fields: fields.message.value.command == command


class CellEmulatorClient:
    """The host side over a :class:`hil.serial.link.SerialLink` opened with ``PROTOCOL``.

    Every setting waits for the board's ``ack`` and raises CellEmulatorError unless it says ``ok``.
    """

    def __init__(self, link: SerialLink) -> None:
        self._link = link

    def _set(self, command: str, **payload) -> None:
        reply = PROTOCOL.parse_message(
            self._link.request(PROTOCOL.build_message(command, **payload), accept=_answers("ack"))
        )
        if reply.payload.request != command or reply.payload.status != "ok":
            raise CellEmulatorError(
                f"cell emulator on {self._link.url} refused {command} {payload}: answered "
                f"{reply.payload.status} for {reply.payload.request}"
            )

    def set_cell_voltages_mv(self, cell_voltages_mv: Sequence[int]) -> None:
        """Set every channel's output voltage, channel 0 first."""
        self._set("set_cell_voltages", cell_voltages_mv=[int(v) for v in cell_voltages_mv])

    def read_cell_voltages_mv(self) -> list[int]:
        """The voltages the board is outputting, channel 0 first."""
        frame = self._link.request(PROTOCOL.build_message("read_cell_voltages"), accept=_answers("cell_voltages"))
        return list(PROTOCOL.parse_message(frame).payload.cell_voltages_mv)

    def set_outputs_enabled(self, enabled: bool) -> None:
        """Connect (True) or disconnect (False) all channel outputs."""
        self._set("set_outputs", enabled=enabled)

    def set_fault(self, channel: int, fault: str) -> None:
        """Switch one channel's fault relay: ``"none"``, ``"open_wire"`` or ``"short"``."""
        self._set("set_fault", channel=channel, fault=fault)

    def heartbeat(self, sequence: int) -> tuple[int, bool]:
        """Check the board is alive; returns (uptime_ms, outputs_enabled)."""
        frame = self._link.request(
            PROTOCOL.build_message("heartbeat", sequence=sequence),
            accept=lambda fields: fields.message.value.command == "heartbeat_reply"
            and fields.message.value.payload.sequence == sequence,
        )
        reply = PROTOCOL.parse_message(frame).payload
        return reply.uptime_ms, reply.outputs_enabled
