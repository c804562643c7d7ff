"""Driver for a cell-emulator board that takes its setpoints over CAN (`dbc/cell_emulator.dbc`).

The same driver serves the emulated board and a real one speaking the same DBC. Its heartbeat
(`CE_Control`, 100 ms) is a rest-bus message: if the harness dies, it stops, and the board's watchdog turns
the outputs off within 500 ms. `MappedCellEmulator` drives an emulator with a DBC of its own through a
cell-emulator map (`hil.devices.ce_map`), with the same interface.
"""
from __future__ import annotations

import math

import can
import numpy as np
from cantools.database import Database

from hil.can.dbc import encode, signal_defaults
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.devices.bms import Readback
from hil.devices.ce_map import MAIN_CONTACTORS, PRECHARGE, RELAYS, CeMap, Setpoints
from hil.errors import ConfigError
from hil.reductions import clip

CELLS_PER_FRAME = 4
TEMPS_PER_FRAME = 7
WELDABLE = (*MAIN_CONTACTORS, PRECHARGE)   # the contactors a weld relay can hold closed


def setpoint_names(kind: str, n_channels: int) -> list[str]:
    """The DBC's setpoint signal of each channel, for `kind` "Cell" or "Temp": CE_Cell01_Setpoint, ..."""
    return [f"CE_{kind}{c + 1:02d}_Setpoint" for c in range(n_channels)]


def make_cell_emulator(ce_map: CeMap | None, bus: can.BusABC, db: Database, sender: PeriodicSender,
                       monitor: Monitor, n_channels: int, on_send=None) -> CellEmulator:
    """The reference protocol's driver, or a mapped one for a rig whose `[cell_emulator] map` names a map."""
    if ce_map is None:
        return CellEmulator(bus, db, sender, monitor, n_channels, on_send=on_send)
    return MappedCellEmulator(ce_map, bus, db, sender, monitor, n_channels, on_send=on_send)


class CellEmulator:
    # What the safe state commands and reads back: the periodic frame that carries the outputs' on/off (the
    # emulator's heartbeat), and the status frame that shows them.
    control_message = "CE_Control"
    outputs_readback = Readback("CE_Status", ("CE_OutputsOn",))

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
        self._insulation = db.get_message_by_name("CE_InsulationFault")
        self._weld = db.get_message_by_name("CE_ContactorWeld")
        self._stuck_open = db.get_message_by_name("CE_ContactorStuckOpen")
        self._link_short = db.get_message_by_name("CE_DcLinkShort")
        self._hvil = db.get_message_by_name("CE_HvilBreak")
        self._afe_link = db.get_message_by_name("CE_AfeLinkBreak")
        self._defaults = {m.name: signal_defaults(m) for m in (self._cells, self._temps, self._current, self._relay,
                                                                self._insulation, self._weld, self._stuck_open,
                                                                self._link_short, self._hvil, self._afe_link)}
        self._cell_names = setpoint_names("Cell", n_channels)
        self._temp_names = setpoint_names("Temp", n_channels)
        self.sender = sender
        sender.add("CE_Control", {"CE_OutputEnable": 0})

    def _send(self, message, signals: dict) -> None:
        self._put(message, encode(message, signals, self._defaults[message.name]))

    def _put(self, message, data) -> None:
        msg = can.Message(arbitration_id=message.frame_id, data=data, is_extended_id=message.is_extended_frame)
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

    def set_insulation_fault(self, resistance_ohm: float | None, tap: int | None = None) -> None:
        """Connect `resistance_ohm` between the pack and chassis (an insulation fault); None disconnects it.
        `tap` is where along the stack: the cell tap, counted as a front end counts them, from the pack's negative
        terminal (0) to its positive one (the channel count, and the default)."""
        _check_resistance(resistance_ohm, self._insulation.get_signal_by_name("CE_Iso_Resistance"))
        self._send(self._insulation, {"CE_Iso_Connect": int(resistance_ohm is not None),
                                      "CE_Iso_Resistance": round(resistance_ohm or 0),
                                      "CE_Iso_Depth": self._depth(tap)})

    def _depth(self, tap: int | None) -> int:
        """Cell tap `tap` (None: the positive terminal) as the cells between it and the positive terminal."""
        if tap is None:
            return 0
        if isinstance(tap, bool) or not isinstance(tap, int) or not 0 <= tap <= self.n_channels:
            raise ValueError(f"insulation fault tap {tap!r}: expected a cell tap from 0 (the pack's negative "
                             f"terminal) to {self.n_channels} (its positive terminal)")
        return self.n_channels - tap

    def set_contactor_weld(self, contactor: str | None) -> None:
        """Weld the BMS's "pos" or "neg" main contactor, or its "pre"charge contactor, shut (the bench's relay
        across its main and auxiliary contacts holds it closed whatever the BMS commands); None releases all."""
        _check_contactor(contactor, "weld", WELDABLE)
        self._send(self._weld, {"CE_Weld_Pos": int(contactor == "pos"), "CE_Weld_Neg": int(contactor == "neg"),
                                "CE_Weld_Pre": int(contactor == PRECHARGE)})

    def set_contactor_stuck_open(self, contactor: str | None) -> None:
        """Hold the BMS's "pos" or "neg" main contactor open (the bench's relay in series with its coil: it
        fails to close whatever the BMS commands, and its auxiliary contact shows it open); None restores both."""
        _check_contactor(contactor, "stuck open")
        self._send(self._stuck_open, {"CE_StuckOpen_Pos": int(contactor == "pos"),
                                      "CE_StuckOpen_Neg": int(contactor == "neg")})

    def set_dc_link_short(self, shorted: bool) -> None:
        """Short the DC link behind the BMS's contactors (the bench's relay across it), so a precharge can never
        charge it; False opens the short. For the precharge only: with the main contactors closed it would be a
        short circuit of the pack, which no bench should make."""
        self._send(self._link_short, {"CE_LinkShort": int(shorted)})

    def set_hvil_open(self, opened: bool) -> None:
        """Open the BMS's high-voltage interlock loop (the bench's relay in series with it), as an unplugged
        connector or a removed cover would; False closes it again."""
        self._send(self._hvil, {"CE_Hvil_Open": int(opened)})

    def set_afe_link_open(self, opened: bool) -> None:
        """Break the link between the BMS's controller and its cell-monitoring front end (the bench's relay in its
        isoSPI daisy chain), so every read of the cells and thermistors fails; False restores it."""
        self._send(self._afe_link, {"CE_AfeLink_Open": int(opened)})

    def outputs_off(self, values: dict) -> bool:
        """Whether `outputs_readback`'s signal values show the outputs off."""
        return values["CE_OutputsOn"] == 0

    @property
    def outputs_on(self) -> bool | None:
        value = self.monitor.values.get("CE_OutputsOn")
        return None if value is None else bool(value)

    @property
    def watchdog_tripped(self) -> bool:
        return bool(self.monitor.values.get("CE_WatchdogTripped", 0))


class MappedCellEmulator(CellEmulator):
    """A cell emulator with a DBC of its own: every setpoint and command through its map."""

    def __init__(self, ce_map: CeMap, bus: can.BusABC, db: Database, sender: PeriodicSender, monitor: Monitor,
                 n_channels: int, on_send=None):
        self.map = ce_map
        self.bus, self.monitor, self.sender, self.on_send = bus, monitor, sender, on_send
        self.n_channels = n_channels
        self._messages = {m.name: m for m in db.messages}
        # Defaults of the messages this driver sends (`_send` fills each frame's other signals with them): a
        # third-party DBC has dozens more, which every bench would otherwise work out again.
        sent = {frame.message for setpoints in (ce_map.cells, ce_map.temperatures) if setpoints
                for frame in setpoints.frames}
        sent |= {ce_map.current.message} if ce_map.current else set()
        sent |= {ce_map.relays["message"]} if ce_map.relays else set()
        sent |= {ce_map.insulation[0].message} if ce_map.insulation else set()
        sent |= {relays[0].message for relays in (ce_map.contactor_weld, ce_map.contactor_stuck_open) if relays}
        sent |= {signal.message for signal in (ce_map.dc_link_short, ce_map.hvil, ce_map.afe_link) if signal}
        self._defaults = {name: signal_defaults(self._messages[name]) for name in sent}
        # The frames `_send` seals with the map's AUTOSAR E2E profile, each message with an alive counter of its
        # own (the on/off frame's is the sender's).
        self._protections = {name: ce_map.protections[name] for name in sent if name in ce_map.protections}
        self._counters = dict.fromkeys(self._protections, 0)
        # Each setpoint's range in its signal's own units, so a value the emulator cannot take is sent as its
        # nearest, as the built-in driver clips to its DBC's.
        self._cell_limits = self._limits(ce_map.cells)
        self._temperature_limits = self._limits(ce_map.temperatures) if ce_map.temperatures else None
        self.control_message = ce_map.outputs.message
        self.outputs_readback = Readback(ce_map.readback.message, (ce_map.readback.name,))
        self._readback_values = monitor.latest(ce_map.readback.message)
        sender.add(self.control_message, {ce_map.outputs.name: ce_map.outputs_off}, cycle_s=ce_map.control_cycle_s)

    def _send(self, message, signals: dict) -> None:
        protection = self._protections.get(message.name)
        if protection is None:
            super()._send(message, signals)
            return
        counter = self._counters[message.name]
        self._counters[message.name] = (counter + 1) % protection.counter_modulo
        data = bytearray(encode(message, {**signals, protection.counter_signal: counter, protection.crc_signal: 0},
                                self._defaults[message.name]))
        protection.seal(data)
        self._put(message, data)

    def _limits(self, setpoints: Setpoints) -> dict[str, tuple[float, float]]:
        limits = {}
        for frame in setpoints.frames:
            for _, name in frame.channels:
                signal = self._messages[frame.message].get_signal_by_name(name)
                limits[name] = (-math.inf if signal.minimum is None else signal.minimum,
                                math.inf if signal.maximum is None else signal.maximum)
        return limits

    def enable(self, on: bool) -> None:
        self.sender.set(self.control_message,
                        **{self.map.outputs.name: self.map.outputs_on if on else self.map.outputs_off})

    @property
    def cell_frames(self) -> int:
        return len(self.map.cells.frames)

    def set_cells(self, voltage_v: np.ndarray, groups: range | None = None) -> None:
        self._send_mapped(self.map.cells, self._cell_limits, voltage_v, groups)

    @property
    def temperature_frames(self) -> int:
        return len(self.map.temperatures.frames) if self.map.temperatures else 0

    def set_temperatures(self, temperature_c: np.ndarray, groups: range | None = None) -> None:
        if self.map.temperatures is not None:   # no thermistors mapped: the BMS reads its own sensors
            self._send_mapped(self.map.temperatures, self._temperature_limits, temperature_c, groups)

    def _send_mapped(self, setpoints: Setpoints, limits: dict, values: np.ndarray, groups) -> None:
        values = np.asarray(values, dtype=float)
        for group in groups if groups is not None else range(len(setpoints.frames)):
            frame = setpoints.frames[group]
            signals = {} if frame.mux_signal is None else {frame.mux_signal: frame.mux_value}
            for channel, name in frame.channels:
                low, high = limits[name]
                value = (float(values[channel]) - setpoints.offset[channel]) / setpoints.scale[channel]
                signals[name] = clip(value, low, high)
            self._send(self._messages[frame.message], signals)

    def set_current(self, current_a: float) -> None:
        signal = self.map.current
        if signal is not None:   # no current setpoint mapped: the BMS's current sensor sees the real current
            self._send(self._messages[signal.message], {signal.name: (float(current_a) - signal.offset) / signal.scale})

    def set_relay(self, channel: int, **relays) -> None:
        mapped = self._mapped("relays", "'s fault relays cannot be switched")
        unmapped = [name for name, on in relays.items() if on and name not in mapped]
        if unmapped or any(name not in RELAYS for name in relays):
            raise ConfigError(f"{self.map.path}: [relays] has no {', '.join(unmapped or relays)}; mapped: "
                              f"{', '.join(name for name in RELAYS if name in mapped)}")
        signals = {mapped["channel"]: channel + self.map.relay_first_channel}
        signals.update({mapped[name]: int(relays.get(name, False)) for name in RELAYS if name in mapped})
        self._send(self._messages[mapped["message"]], signals)

    def set_insulation_fault(self, resistance_ohm: float | None, tap: int | None = None) -> None:
        resistance, connect = self._mapped("insulation", " cannot inject an insulation fault")
        depth = self.map.insulation_depth
        if tap is not None and depth is None:
            raise ConfigError(f"{self.map.path}: [insulation] has no 'depth': {self.map.name} connects its insulation "
                              f"fault at one point only, not at cell tap {tap}")
        _check_resistance(resistance_ohm, self._messages[resistance.message].get_signal_by_name(resistance.name),
                          resistance.scale, resistance.offset)
        value = 0.0 if resistance_ohm is None else (float(resistance_ohm) - resistance.offset) / resistance.scale
        signals = {resistance.name: value, connect.name: int(resistance_ohm is not None)}
        if depth is not None:
            signals[depth.name] = self._depth(tap)
        self._send(self._messages[resistance.message], signals)

    def set_contactor_weld(self, contactor: str | None) -> None:
        if contactor == PRECHARGE and self.map.precharge_weld is None:
            raise ConfigError(f"{self.map.path}: [contactor_weld] has no '{PRECHARGE}': {self.map.name} cannot weld "
                              "the precharge contactor")
        self._contactor_relays("contactor_weld", " cannot weld a contactor", contactor, "weld", self.map.precharge_weld)

    def set_contactor_stuck_open(self, contactor: str | None) -> None:
        self._contactor_relays("contactor_stuck_open", " cannot hold a contactor open", contactor, "stuck open")

    def set_dc_link_short(self, shorted: bool) -> None:
        signal = self._mapped("dc_link_short", " cannot short the DC link")
        self._send(self._messages[signal.message], {signal.name: int(shorted)})

    def set_hvil_open(self, opened: bool) -> None:
        signal = self._mapped("hvil", " cannot break the interlock loop")
        self._send(self._messages[signal.message], {signal.name: int(opened)})

    def set_afe_link_open(self, opened: bool) -> None:
        signal = self._mapped("afe_link", " cannot break the BMS's link to its front end")
        self._send(self._messages[signal.message], {signal.name: int(opened)})

    def _mapped(self, section: str, cannot: str):
        """What the map's `[section]` maps (its CeMap field of that name), or a ConfigError naming the map file
        and what its emulator, `self.map.name` + `cannot`, then cannot do."""
        mapped = getattr(self.map, section)
        if mapped is None:
            raise ConfigError(f"{self.map.path}: has no [{section}]: {self.map.name}{cannot}")
        return mapped

    def _contactor_relays(self, section: str, cannot: str, contactor: str | None, fault: str, pre=None) -> None:
        """One frame that closes the relay of `contactor` ("pos" or "neg", or "pre" where the precharge
        contactor's relay `pre` is mapped) and opens the others."""
        pos, neg = self._mapped(section, cannot)
        _check_contactor(contactor, fault, WELDABLE if pre is not None else MAIN_CONTACTORS)
        relays = {pos.name: int(contactor == "pos"), neg.name: int(contactor == "neg")}
        if pre is not None:
            relays[pre.name] = int(contactor == PRECHARGE)
        self._send(self._messages[pos.message], relays)

    def outputs_off(self, values: dict) -> bool:
        return self.map.readback.value(values) == self.map.readback_off

    @property
    def outputs_on(self) -> bool | None:
        if self.map.readback.value(self._readback_values) is None:
            return None
        return not self.outputs_off(self._readback_values)

    @property
    def watchdog_tripped(self) -> bool:
        return False   # a map names no watchdog signal: the emulator's own, if it has one, is not read


def _check_resistance(resistance_ohm: float | None, signal, scale: float = 1.0, offset: float = 0.0) -> None:
    """An insulation fault's resistance must be one the emulator's signal (cantools', its value in ohm being
    value * scale + offset) can carry: beyond its range the frame would carry another resistance."""
    if resistance_ohm is None:
        return
    low = offset + scale * (signal.minimum if signal.minimum is not None else 0.0)
    high = offset + scale * (signal.maximum if signal.maximum is not None else math.inf)
    if not low <= resistance_ohm <= high:
        raise ConfigError(f"insulation fault of {resistance_ohm!r} ohm: expected {low:g} to {high:g} ohm "
                          f"({signal.name}), or None to disconnect")


def _check_contactor(contactor: str | None, fault: str, allowed: tuple[str, ...] = MAIN_CONTACTORS) -> None:
    if contactor is not None and contactor not in allowed:
        raise ConfigError(f"contactor {fault} {contactor!r}: expected one of {', '.join(map(repr, allowed))}, "
                          "or None to release")
