"""Driver for a cell-emulator board that takes its setpoints over CAN (`dbc/cell_emulator.dbc`).

The same driver serves the emulated board and a real one speaking the same DBC. Its heartbeat
(`CE_Control`, 100 ms) is a rest-bus message: if the harness dies, it stops, and the board's watchdog turns
the outputs off within 500 ms.
"""
from __future__ import annotations

import can
import numpy as np
from cantools.database import Database

from hil.can.dbc import encode, signal_defaults
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.reductions import clip

CELLS_PER_FRAME = 4
TEMPS_PER_FRAME = 7


def setpoint_names(kind: str, n_channels: int) -> list[str]:
    """The DBC's setpoint signal of each channel, for `kind` "Cell" or "Temp": CE_Cell01_Setpoint, ..."""
    return [f"CE_{kind}{c + 1:02d}_Setpoint" for c in range(n_channels)]


class CellEmulator:
    def __init__(self, bus: can.BusABC, db: Database, sender: PeriodicSender, monitor: Monitor, n_channels: int,
                 on_send=None):
        self.bus = bus
        self.monitor = monitor
        self.n_channels = n_channels
        self.on_send = on_send
        self._cells = db.get_message_by_name("CE_CellSetpoint")
        self._temps = db.get_message_by_name("CE_TempSetpoint")
        self._current = db.get_message_by_name("CE_CurrentSetpoint")
        self._relay = db.get_message_by_name("CE_FaultRelay")
        self._defaults = {m.name: signal_defaults(m) for m in (self._cells, self._temps, self._current, self._relay)}
        self._cell_names = setpoint_names("Cell", n_channels)
        self._temp_names = setpoint_names("Temp", n_channels)
        self.sender = sender
        sender.add("CE_Control", {"CE_OutputEnable": 0})

    def _send(self, message, signals: dict) -> None:
        msg = can.Message(arbitration_id=message.frame_id, data=encode(message, signals, self._defaults[message.name]),
                          is_extended_id=message.is_extended_frame)
        self.bus.send(msg)
        if self.on_send is not None:
            self.on_send(msg)

    def enable(self, on: bool) -> None:
        """Outputs on or off; takes effect with the next heartbeat frame (within 100 ms)."""
        self.sender.set("CE_Control", CE_OutputEnable=int(on))

    @property
    def cell_frames(self) -> int:
        """How many CE_CellSetpoint frames (multiplexer groups) a full set of cell setpoints takes."""
        return -(-self.n_channels // CELLS_PER_FRAME)

    def set_cells(self, voltage_v: np.ndarray, groups: range | None = None) -> None:
        """Send cell setpoints; `groups` (multiplexer indices) sends only those frames, so a caller can
        spread a large pack's frames over several ticks."""
        self._send_setpoints(self._cells, "CE_CellSetpoint_Mux", self._cell_names, CELLS_PER_FRAME, voltage_v,
                             (0.0, 8.19), groups if groups is not None else range(self.cell_frames))

    @property
    def temperature_frames(self) -> int:
        """How many CE_TempSetpoint frames (multiplexer groups) a full set of thermistor setpoints takes."""
        return -(-self.n_channels // TEMPS_PER_FRAME)

    def set_temperatures(self, temperature_c: np.ndarray, groups: range | None = None) -> None:
        """Send thermistor setpoints; `groups` (multiplexer indices) sends only those frames, so a caller
        can spread a large pack's 14 frames over several ticks instead of loading one tick with them."""
        self._send_setpoints(self._temps, "CE_TempSetpoint_Mux", self._temp_names, TEMPS_PER_FRAME, temperature_c,
                             (-40.0, 87.5), groups if groups is not None else range(self.temperature_frames))

    def _send_setpoints(self, message, mux: str, names: list[str], per_frame: int, values: np.ndarray,
                        limits: tuple[float, float], groups) -> None:
        """One frame per multiplexer group (`mux`), its channels' values limited to what the DBC can carry.
        Only the frame's own few values are read and clipped, as Python floats: clipping the whole pack's
        array for each frame (two numpy calls) cost a fifth of what the frame's encoding does."""
        values = np.asarray(values, dtype=float)
        low, high = limits
        for group in groups:
            first, last = group * per_frame, min((group + 1) * per_frame, self.n_channels)
            frame_values = values[first:last].tolist()
            signals = {mux: group}
            for c, name in enumerate(names[first:last]):
                signals[name] = clip(frame_values[c], low, high)
            self._send(message, signals)

    def set_current(self, current_a: float) -> None:
        self._send(self._current, {"CE_PackCurrent": float(current_a)})

    def set_relay(self, channel: int, *, open_wire=False, short=False, thermistor_open=False,
                  thermistor_short=False) -> None:
        """Switch one channel's fault relays (0-based channel). All False restores the channel."""
        self._send(self._relay, {"CE_Relay_Channel": channel, "CE_Relay_OpenWire": int(open_wire),
                                 "CE_Relay_Short": int(short), "CE_Relay_ThermistorOpen": int(thermistor_open),
                                 "CE_Relay_ThermistorShort": int(thermistor_short)})

    @property
    def outputs_on(self) -> bool | None:
        value = self.monitor.values.get("CE_OutputsOn")
        return None if value is None else bool(value)

    @property
    def watchdog_tripped(self) -> bool:
        return bool(self.monitor.values.get("CE_WatchdogTripped", 0))
