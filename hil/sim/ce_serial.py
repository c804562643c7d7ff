"""The emulated cell-emulator board's serial control port: the device side of
`hil.serial.protocols.cell_emulator`.

Set and read back cell voltages, switch the outputs and the per-channel sense-wire relays, and a
heartbeat. Every request from the host feeds the board's 500 ms watchdog, as a CAN `CE_Control` does.

Limits: voltages are whole mV from 0 to `MAX_CELL_MV` (the board's output range); a list longer than the
board's channels is refused (`bad_channel`), a shorter one sets the first channels only. Read-back gives
what the outputs present: 0 mV on a channel whose relay is open or shorted, and on all of them while the
outputs are off.
"""
from __future__ import annotations

from hil.serial.protocols.cell_emulator import PROTOCOL, CellEmulatorError
from hil.sim.cell_emulator_board import CellEmulatorBoard

MAX_CELL_MV = 5000
SETTINGS = ("set_cell_voltages", "set_outputs", "set_fault")


class CellEmulatorSerial:
    """`answer(frame, now_s)` for a `hil.sim.serial_device.SerialDevice` serving `PROTOCOL`."""

    def __init__(self, board: CellEmulatorBoard):
        self.board = board

    def answer(self, frame: bytes, now_s: float) -> bytes | None:
        try:
            message = PROTOCOL.parse_message(frame)
        except CellEmulatorError:
            return None  # the protocol has no refusal for an unknown command: a board stays silent
        board, command, payload = self.board, message.command, message.payload
        board.host_alive(now_s)
        if command == "heartbeat":
            return PROTOCOL.build_message("heartbeat_reply", sequence=payload.sequence, uptime_ms=round(now_s * 1000),
                                          outputs_enabled=board.outputs_on)
        if command == "read_cell_voltages":
            return PROTOCOL.build_message("cell_voltages",
                                          cell_voltages_mv=[round(v * 1000) for v in board.cell_voltage_v()])
        if command in SETTINGS:
            return PROTOCOL.build_message("ack", request=command, status=self._set(command, payload, now_s))
        return None  # an answer's command (ack, ...) is not a request

    def _set(self, command: str, payload, now_s: float) -> str:
        board = self.board
        if command == "set_cell_voltages":
            voltages_mv = payload.cell_voltages_mv
            if len(voltages_mv) > board.n_channels:
                return "bad_channel"
            if max(voltages_mv, default=0) > MAX_CELL_MV:
                return "out_of_range"
            board.setpoint_v[:len(voltages_mv)] = [mv / 1000 for mv in voltages_mv]
        elif command == "set_outputs":
            board.set_outputs(payload.enabled, now_s)
        else:  # set_fault
            if payload.channel >= board.n_channels:
                return "bad_channel"
            board.open_wire[payload.channel] = payload.fault == "open_wire"
            board.short[payload.channel] = payload.fault == "short"
        return "ok"
