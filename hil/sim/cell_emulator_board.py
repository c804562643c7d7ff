"""Emulated cell-emulator board: the analog side of the bench.

It takes cell-voltage, thermistor and pack-current setpoints over CAN (`dbc/cell_emulator.dbc`), or over
its serial control port (`hil.sim.ce_serial`), and presents them to the BMS's analog front end, through
per-channel fault relays. On the high-voltage side it can connect an insulation fault (a resistor from the
pack to chassis), weld either of the BMS's main contactors, or its precharge contactor, shut (a relay across
its contacts), hold a main one open (a relay in series with its coil), short the DC link behind them, or
break the BMS's high-voltage interlock loop (HVIL, a relay in series with it). Its
watchdog turns every output off, and releases those relays, when the host's heartbeat (`CE_Control`, or the
serial `heartbeat`) is silent for more than 500 ms, so a dead harness never leaves a bench energised or a
fault injected. Both ports command the same board: the last command wins.
"""
from __future__ import annotations

import math

import cantools
import numpy as np
from cantools.database import Database

from hil.can.dbc import decode
from hil.can.periodic import PeriodicSender
from hil.devices.cell_emulator import CELLS_PER_FRAME, TEMPS_PER_FRAME, setpoint_names

WATCHDOG_S = 0.5
THERMISTOR_OPEN_C = -273.0   # an open NTC reads as the coldest possible value
THERMISTOR_SHORT_C = 300.0   # a shorted NTC reads as the hottest


class CellEmulatorBoard:
    def __init__(self, n_channels: int, db: Database, sender: PeriodicSender):
        self.n_channels = n_channels
        self.db = db
        self.setpoint_v = np.zeros(n_channels)
        self.setpoint_c = np.full(n_channels, 25.0)
        self.current_a = 0.0
        self.outputs_on = False
        self.watchdog_tripped = False
        self.open_wire = np.zeros(n_channels, dtype=bool)
        self.short = np.zeros(n_channels, dtype=bool)
        self.thermistor_open = np.zeros(n_channels, dtype=bool)
        self.thermistor_short = np.zeros(n_channels, dtype=bool)
        self.insulation_fault_ohm = math.inf   # the injected pack-to-chassis resistance; inf: none connected
        self.insulation_fault_depth = 0   # cells between it and the pack's positive terminal
        self.welded_contactors: frozenset[str] = frozenset()   # "pos", "neg", "pre": the weld relays closed
        self.stuck_open_contactors: frozenset[str] = frozenset()   # "pos", "neg": their coils' relays open
        self.dc_link_shorted = False   # the relay across the DC link closed: the precharge cannot charge it
        self.hvil_open = False   # the relay in series with the BMS's interlock loop open: a connector unplugged
        self.afe_link_open = False   # the relay in the BMS's link to its front end open: every read fails its PEC
        self._last_heartbeat_s: float | None = None
        self._cell_names = setpoint_names("Cell", n_channels)
        self._temp_names = setpoint_names("Temp", n_channels)
        self._ids = {m.frame_id: m for m in db.messages if m.name.startswith("CE_") and m.name != "CE_Status"}
        sender.add("CE_Status", provider=lambda: {
            "CE_OutputsOn": int(self.outputs_on), "CE_WatchdogTripped": int(self.watchdog_tripped),
            "CE_ChannelCount": n_channels,
            "CE_FaultRelayCount": int(self.open_wire.sum() + self.short.sum()
                                      + self.thermistor_open.sum() + self.thermistor_short.sum()
                                      + math.isfinite(self.insulation_fault_ohm) + len(self.welded_contactors)
                                      + len(self.stuck_open_contactors) + self.dc_link_shorted
                                      + self.hvil_open + self.afe_link_open)})

    def on_frame(self, msg, now_s: float) -> None:
        message = self._ids.get(msg.arbitration_id)
        if message is None or msg.is_error_frame:
            return
        try:
            sig = decode(message, msg.data)
        except cantools.database.DecodeError:  # a garbled setpoint frame is ignored, as board firmware would
            return
        name = message.name
        if name == "CE_CellSetpoint":
            base = sig["CE_CellSetpoint_Mux"] * CELLS_PER_FRAME
            for c in range(base, min(base + CELLS_PER_FRAME, self.n_channels)):
                self.setpoint_v[c] = sig[self._cell_names[c]]
        elif name == "CE_TempSetpoint":
            base = sig["CE_TempSetpoint_Mux"] * TEMPS_PER_FRAME
            for c in range(base, min(base + TEMPS_PER_FRAME, self.n_channels)):
                self.setpoint_c[c] = sig[self._temp_names[c]]
        elif name == "CE_CurrentSetpoint":
            self.current_a = sig["CE_PackCurrent"]
        elif name == "CE_Control":
            self.set_outputs(bool(sig["CE_OutputEnable"]), now_s)
        elif name == "CE_FaultRelay":
            ch = sig["CE_Relay_Channel"]
            if 0 <= ch < self.n_channels:
                self.open_wire[ch] = bool(sig["CE_Relay_OpenWire"])
                self.short[ch] = bool(sig["CE_Relay_Short"])
                self.thermistor_open[ch] = bool(sig["CE_Relay_ThermistorOpen"])
                self.thermistor_short[ch] = bool(sig["CE_Relay_ThermistorShort"])
        elif name == "CE_InsulationFault":
            self.insulation_fault_ohm = float(sig["CE_Iso_Resistance"]) if sig["CE_Iso_Connect"] else math.inf
            self.insulation_fault_depth = min(int(sig["CE_Iso_Depth"]), self.n_channels)
        elif name == "CE_ContactorWeld":
            self.welded_contactors = _contactors(pos=sig["CE_Weld_Pos"], neg=sig["CE_Weld_Neg"], pre=sig["CE_Weld_Pre"])
        elif name == "CE_ContactorStuckOpen":
            self.stuck_open_contactors = _contactors(pos=sig["CE_StuckOpen_Pos"], neg=sig["CE_StuckOpen_Neg"])
        elif name == "CE_DcLinkShort":
            self.dc_link_shorted = bool(sig["CE_LinkShort"])
        elif name == "CE_HvilBreak":
            self.hvil_open = bool(sig["CE_Hvil_Open"])
        elif name == "CE_AfeLinkBreak":
            self.afe_link_open = bool(sig["CE_AfeLink_Open"])

    def host_alive(self, now_s: float) -> None:
        """A host heartbeat (CAN `CE_Control` or the serial `heartbeat`): it feeds the watchdog."""
        self._last_heartbeat_s = now_s

    def set_outputs(self, on: bool, now_s: float) -> None:
        """A host's output command; it feeds the watchdog, switching on clears a watchdog trip, and switching
        off releases the high-voltage fault relays."""
        self.host_alive(now_s)
        if on and not self.outputs_on:
            self.watchdog_tripped = False
        if self.outputs_on and not on:
            self._release_high_voltage_relays()
        self.outputs_on = on

    def tick(self, now_s: float) -> None:
        if self.outputs_on and (self._last_heartbeat_s is None or now_s - self._last_heartbeat_s > WATCHDOG_S):
            self.go_safe()
            self.watchdog_tripped = True

    def go_safe(self) -> None:
        self.outputs_on = False
        self.current_a = 0.0
        self._release_high_voltage_relays()

    def _release_high_voltage_relays(self) -> None:
        """Outputs off opens the insulation-fault resistor's relay, releases the contactors' weld and coil
        relays, opens the DC-link short and closes the interlock loop and the front end's link again, as
        CE_InsulationFault, CE_ContactorWeld, CE_ContactorStuckOpen, CE_DcLinkShort, CE_HvilBreak and CE_AfeLinkBreak
        say."""
        self.insulation_fault_ohm = math.inf
        self.insulation_fault_depth = 0
        self.welded_contactors = frozenset()
        self.stuck_open_contactors = frozenset()
        self.dc_link_shorted = False
        self.hvil_open = False
        self.afe_link_open = False

    # What the BMS's analog front end sees ------------------------------------------------------------
    def cell_voltage_v(self) -> np.ndarray:
        if not self.outputs_on:
            return np.zeros(self.n_channels)
        voltage_v = self.setpoint_v.copy()
        voltage_v[self.open_wire | self.short] = 0.0  # np.where's result, in half its time
        return voltage_v

    def thermistor_c(self) -> np.ndarray:
        temps = self.setpoint_c.copy()
        temps[self.thermistor_open] = THERMISTOR_OPEN_C
        temps[self.thermistor_short] = THERMISTOR_SHORT_C
        return temps

    def shunt_current_a(self) -> float:
        return self.current_a if self.outputs_on else 0.0

    def insulation_ohm(self) -> float:
        """The pack's resistance to chassis that an insulation monitor measures: the injected fault, or none."""
        return self.insulation_fault_ohm if self.outputs_on else math.inf

    def insulation_fault_position(self) -> float:
        """Where the insulation fault connects: its tap's share of the pack voltage above the negative terminal
        (1.0: the positive terminal)."""
        return 1.0 - self.insulation_fault_depth / self.n_channels


def _contactors(**relays: int) -> frozenset[str]:
    """The contactors ("pos", "neg", "pre") whose relay a contactor-fault frame closes."""
    return frozenset(contactor for contactor, on in relays.items() if on)
