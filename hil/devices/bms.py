"""The BMS under test, as the harness sees it: decoded CAN status in, host requests out.

`Bms` works the same for the emulated firmware and for a real board with the reference DBC; `MappedBms`
for a BMS with a DBC of its own, through a DUT map (`hil.devices.dut_map`). Waits run the bench loop (see
`hil.loop.Loop.run_until`), so they work on both clocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.devices.dut_map import DutMap
from hil.errors import ConfigError
from hil.protocol import DIAGNOSES, FAULT_BITS, WARNING_BIT_COUNT, BmsState, ModeRequest, fault_names


@dataclass(frozen=True)
class Readback:
    """A status message, and those of its signals, that confirm a step of the safe state (hil.safety)."""
    message: str
    signals: tuple[str, ...]


def make_bms(dut_map: DutMap | None, monitor: Monitor, sender: PeriodicSender, loop) -> Bms:
    """The reference protocol's proxy, or a mapped one for a rig whose `[dut] map` names a DUT map."""
    return Bms(monitor, sender, loop) if dut_map is None else MappedBms(dut_map, monitor, sender, loop)


class Bms:
    # What the safe state asks and reads back: the request frame, and the status frames that show the
    # reported pack current and the contactors.
    request_message = "VCU_Request"
    heartbeat_messages = ("VCU_Heartbeat", "VCU_Request")   # the host frames the BMS times out without
    current_readback = Readback("BMS_PackData", ("BMS_PackCurrent",))
    soc_message = "BMS_SOC"   # the status message that carries the SOC (None: this BMS's proxy cannot read it)
    contactor_readback = Readback("BMS_Status", ("BMS_ContactorPos", "BMS_ContactorNeg", "BMS_ContactorPre"))
    firmware_message = "BMS_Version"   # the message that says which build runs (None: this proxy cannot read it)

    def __init__(self, monitor: Monitor, sender: PeriodicSender, loop):
        self.monitor = monitor
        self.sender = sender
        self.loop = loop
        self._mask_bits = 0
        self._mask = np.zeros(0, dtype=bool)
        self._schedule_requests()

    def _schedule_requests(self) -> None:
        """Start the host's periodic frames, asking for STANDBY."""
        self.sender.add("VCU_Heartbeat")
        self.sender.add("VCU_Request", {"VCU_ModeRequest": int(ModeRequest.STANDBY), "VCU_ClearFaults": 0})

    # What the BMS reports ------------------------------------------------------------------------------
    @property
    def state(self) -> BmsState | None:
        value = self.monitor.values.get("BMS_State")
        return None if value is None else BmsState(value)

    @property
    def contactors_closed(self) -> bool:
        v = self.monitor.values
        return bool(v.get("BMS_ContactorPos") and v.get("BMS_ContactorNeg"))

    @property
    def precharge_closed(self) -> bool | None:
        """Whether the BMS reports its precharge contactor closed (False before it has reported); None when this
        BMS's proxy cannot read it (a DUT map without `precharge_contactor`)."""
        return bool(self.monitor.values.get("BMS_ContactorPre"))

    @property
    def any_contactor_closed(self) -> bool:
        """Whether the BMS reports any of its contactors closed: a main one, or the precharge one if readable."""
        v = self.monitor.values
        return bool(v.get("BMS_ContactorPos") or v.get("BMS_ContactorNeg") or self.precharge_closed)

    @property
    def faults(self) -> list[str]:
        return fault_names(int(self.monitor.values.get("BMS_FaultBits", 0)))

    @property
    def warnings(self) -> list[str]:
        values = self.monitor.values
        return fault_names(int(values.get("BMS_WarningBits", 0))) + [
            name for name, signal in DIAGNOSES.items() if values.get(signal)]

    @property
    def warning_names(self) -> tuple[str, ...]:
        """The warnings this BMS's proxy can read (a DUT map names its own, or none)."""
        return tuple(name for name, bit in FAULT_BITS.items() if bit < WARNING_BIT_COUNT) + tuple(DIAGNOSES)

    @property
    def high_resistance_block(self) -> int | None:
        """The series block (from 0) the BMS flags as `cell_resistance`; None while it flags none."""
        block = self.monitor.values.get("BMS_HighResistanceBlock")
        return int(block) - 1 if block else None

    @property
    def firmware_version(self) -> str | None:
        """The build the BMS says it runs ("1.2.0"; "1.2.0+57" with a build number); None until it has said so,
        or when this BMS's proxy cannot read it (`firmware_message` is None)."""
        values = self.monitor.values
        parts = [values.get(name) for name in ("BMS_SwMajor", "BMS_SwMinor", "BMS_SwPatch")]
        if None in parts:
            return None
        build = values.get("BMS_SwBuild")
        return _version(parts) + (f"+{int(build)}" if build else "")

    def ask_firmware_version(self) -> None:
        """Ask the BMS which build it runs, where it says so only when asked (the reference BMS sends it once
        a second: nothing to ask)."""

    def _fraction(self, signal: str) -> float | None:
        """A signal in % as a fraction (0..1); None until reported."""
        value = self.monitor.values.get(signal)
        return None if value is None else value / 100.0

    @property
    def soc(self) -> float | None:
        return self._fraction("BMS_SOC")

    @property
    def soh(self) -> float | None:
        """The BMS's state of health (0..1), its capacity against rated; None until reported."""
        return self._fraction("BMS_SOH")

    @property
    def soc_min(self) -> float | None:
        """The SOC of the BMS's emptiest block (0..1), which ends a discharge; None until reported."""
        return self._fraction("BMS_SOC_Min")

    @property
    def soc_max(self) -> float | None:
        """The SOC of the BMS's fullest block (0..1), which ends a charge; None until reported."""
        return self._fraction("BMS_SOC_Max")

    @property
    def discharge_limit_a(self) -> float | None:
        return self.monitor.values.get("BMS_DischargeCurrentLimit")

    @property
    def charge_limit_a(self) -> float | None:
        return self.monitor.values.get("BMS_ChargeCurrentLimit")

    def _balancing_bits(self) -> int:
        v = self.monitor.values
        return int(v.get("BMS_Balancing_Cells01to48", 0)) | int(v.get("BMS_Balancing_Cells49to96", 0)) << 48

    def balancing_mask(self, n_cells: int) -> np.ndarray:
        """Which cells the BMS reports bleeding (BMS_BalancingMask), as a bool array."""
        bits = self._balancing_bits()
        if bits != self._mask_bits or self._mask.size != n_cells:
            self._mask_bits = bits
            self._mask = np.array([bool(bits >> i & 1) for i in range(n_cells)])
        return self._mask

    def reported_current_a(self, values: dict) -> float:
        """The pack current (A, > 0 discharges) in `current_readback`'s signal values."""
        return values["BMS_PackCurrent"]

    # What the BMS measured, as it reports it: the suite compares these with what the bench applies.
    @property
    def pack_current_a(self) -> float | None:
        """The pack current the BMS reports (A, > 0 discharges); None before it has."""
        return self.monitor.values.get("BMS_PackCurrent")

    @property
    def pack_voltage_v(self) -> float | None:
        return self.monitor.values.get("BMS_PackVoltage")

    @property
    def insulation_ohm(self) -> float | None:
        """The insulation resistance, pack to chassis, the BMS reports (ohm); NaN before it has, None when this
        BMS's proxy cannot read it (a DUT map without `insulation_ohm`)."""
        kohm = self.monitor.values.get("BMS_InsulationResistance")
        return math.nan if kohm is None else 1000.0 * kohm

    def cell_voltages_v(self, n_cells: int) -> np.ndarray | None:
        """The cell voltages the BMS reports, first cell first; NaN for a cell it has not reported. None when
        this BMS's proxy cannot read them (a DUT map without them)."""
        return _reported(self.monitor.values, [f"BMS_Cell{c + 1:02d}_Voltage" for c in range(n_cells)])

    def cell_temperatures_c(self, n_cells: int) -> np.ndarray | None:
        """The cell temperatures the BMS reports, one per thermistor channel; as `cell_voltages_v`."""
        return _reported(self.monitor.values, [f"BMS_Temp{c + 1:02d}" for c in range(n_cells)])

    def _state_text(self) -> str:
        return self.state.name if self.state is not None else "no BMS_Status received"

    def describe(self) -> str:
        return (f"state={self._state_text()} contactors_closed={self.contactors_closed} faults={self.faults} "
                f"warnings={self.warnings} soc={'none' if self.soc is None else f'{self.soc:.4f}'}")

    # What the host asks --------------------------------------------------------------------------------
    def request(self, mode: str | ModeRequest) -> None:
        mode = ModeRequest[mode.upper()] if isinstance(mode, str) else mode
        self.sender.set("VCU_Request", VCU_ModeRequest=int(mode))

    def clear_faults(self, timeout_s: float = 1.0) -> None:
        """Send one request with ClearFaults set, as a host would, and wait until it has gone out."""
        self.sender.pulse("VCU_Request", timeout_s, self.loop, VCU_ClearFaults=1)

    def heartbeat(self, on: bool) -> None:
        """Start or stop the host heartbeat (and request frames), to test the BMS's timeout reaction."""
        for name in self.heartbeat_messages:
            if on:
                self.sender.start(name, self.loop.t_s)
            else:
                self.sender.stop(name)

    def host_frame_fault(self, fault: str | None, frames: int = 1) -> None:
        """From now, send every host frame the BMS times out without (`heartbeat_messages`) with `fault`:
        "frozen_counter" (the alive counter stuck: a hung host whose CAN controller keeps re-sending its last
        buffer), "bad_crc" (the CRC wrong: a corrupted frame), "lost_frame" (the next `frames` of each left out,
        once: the one after them comes with its counter `frames` + 1 on); None: sound again. See
        `host_frames_without`."""
        for name in self.heartbeat_messages:
            self.sender.inject(name, fault, frames)

    def host_frames_without(self, fault: str) -> list[str]:
        """The host frames that have nothing `fault` could break (no alive counter, no CRC)."""
        return [name for name in self.heartbeat_messages if not self.sender.supports(name, fault)]

    # Waits ------------------------------------------------------------------------------------------
    def wait_state(self, state: str | BmsState, timeout_s: float) -> float:
        """Run the bench until the BMS reports `state`; return the bench time it did."""
        target = BmsState[state.upper()] if isinstance(state, str) else state
        return self.loop.run_until(lambda: self.state == target, timeout_s,
                                   lambda: f"waiting for BMS state {target.name}; {self.describe()}")

    def left_fault_within(self, duration_s: float) -> float | None:
        """Run the bench up to `duration_s`: the time the BMS first left FAULT or reported a contactor closed,
        or None if it did neither (a latched fault that holds)."""
        return self.loop.first_time(lambda: self.any_contactor_closed or self.state != BmsState.FAULT, duration_s)

    def wait_contactors_open(self, timeout_s: float) -> float:
        return self.loop.run_until(lambda: not self.contactors_closed and self.state is not None, timeout_s,
                                   lambda: f"waiting for contactors to open; {self.describe()}")


class MappedBms(Bms):
    """A BMS with a DBC of its own: every value read, and every request sent, through its DUT map."""

    def __init__(self, dut_map: DutMap, monitor: Monitor, sender: PeriodicSender, loop):
        self.map = dut_map
        # Each message's own values: a third-party DBC can reuse a signal name in another message.
        self._latest = {name: monitor.latest(name) for name in dut_map.messages()}
        self.request_message = dut_map.request_message
        # the request frame is the host's heartbeat, with any further frames the map lists
        self.heartbeat_messages = (dut_map.request_message, *(name for name, _ in dut_map.heartbeats))
        current = dut_map.read["pack_current_a"]
        self.current_readback = Readback(current.message, (current.name,))
        self.soc_message = dut_map.read["soc"].message if "soc" in dut_map.read else None
        self.contactor_readback = Readback(dut_map.contactors[0].message, tuple(s.name for s in dut_map.contactors))
        self.firmware_message = dut_map.firmware_version[0].message if dut_map.firmware_version else None
        super().__init__(monitor, sender, loop)

    def _schedule_requests(self) -> None:
        self.sender.add(self.map.request_message, {self.map.mode_signal: self.map.modes[ModeRequest.STANDBY]},
                        cycle_s=self.map.request_cycle_s)
        for name, cycle_s in self.map.heartbeats:
            self.sender.add(name, cycle_s=cycle_s)

    def _read(self, key: str):
        signal = self.map.read.get(key)
        return None if signal is None else signal.value(self._latest[signal.message])

    def _raised(self, flags: dict) -> list[str]:
        return [name for name, signals in flags.items()
                if any(signal.value(self._latest[signal.message]) for signal in signals)]

    @property
    def state(self) -> BmsState | None:
        """The harness's state for the BMS's reported value; None before it reports, or for a value the
        map's [states] does not name (`describe` shows it)."""
        value = self._read("state")
        return None if value is None else self.map.states.get(value)

    @property
    def contactors_closed(self) -> bool:
        return all(signal.value(self._latest[signal.message]) for signal in self.map.contactors)

    @property
    def precharge_closed(self) -> bool | None:
        if "precharge_contactor" not in self.map.read:
            return None
        return bool(self._read("precharge_contactor"))

    @property
    def any_contactor_closed(self) -> bool:
        return any(signal.value(self._latest[signal.message]) for signal in self.map.contactors) or bool(
            self.precharge_closed)

    @property
    def faults(self) -> list[str]:
        return self._raised(self.map.faults)

    @property
    def warnings(self) -> list[str]:
        return self._raised(self.map.warnings)

    @property
    def warning_names(self) -> tuple[str, ...]:
        return tuple(self.map.warnings)

    @property
    def soc(self) -> float | None:
        return self._read("soc")

    @property
    def soh(self) -> float | None:
        return self._read("soh")

    @property
    def soc_min(self) -> float | None:
        return self._read("soc_min")

    @property
    def soc_max(self) -> float | None:
        return self._read("soc_max")

    @property
    def firmware_version(self) -> str | None:
        parts = [signal.value(self._latest[signal.message]) for signal in self.map.firmware_version]
        return None if not parts or None in parts else _version(parts)

    def ask_firmware_version(self) -> None:
        if self.map.firmware_request is not None:
            self.sender.send_once(*self.map.firmware_request)

    @property
    def discharge_limit_a(self) -> float | None:
        return self._read("discharge_limit_a")

    @property
    def charge_limit_a(self) -> float | None:
        return self._read("charge_limit_a")

    def _balancing_bits(self) -> int:
        bits, shift = 0, 0
        for signal, width in self.map.balancing:
            bits |= int(signal.value(self._latest[signal.message]) or 0) << shift
            shift += width
        return bits

    def reported_current_a(self, values: dict) -> float:
        return self.map.read["pack_current_a"].value(values)

    @property
    def pack_current_a(self) -> float | None:
        return self._read("pack_current_a")

    @property
    def pack_voltage_v(self) -> float | None:
        return self._read("pack_voltage_v")

    @property
    def insulation_ohm(self) -> float | None:
        if "insulation_ohm" not in self.map.read:
            return None
        value = self._read("insulation_ohm")
        return math.nan if value is None else value

    @property
    def high_resistance_block(self) -> int | None:
        value = self._read("high_resistance_block")
        return None if value is None or value < 0 else round(value)

    def cell_voltages_v(self, n_cells: int) -> np.ndarray | None:
        return self._cells("cell_voltages_v", n_cells)

    def cell_temperatures_c(self, n_cells: int) -> np.ndarray | None:
        return self._cells("cell_temperatures_c", n_cells)

    def _cells(self, key: str, n_cells: int) -> np.ndarray | None:
        """A cell series of the map, from its own message's values (foxBMS 2 names its cells alike in two
        messages); None when the map has none."""
        series = self.map.cells.get(key)
        if series is None:
            return None
        return _reported(self._latest[series.message], series.names(n_cells)) * series.scale + series.offset

    def _state_text(self) -> str:
        value, signal = self._read("state"), self.map.read["state"]
        if value is None:
            return f"no {signal} received"
        state = self.map.states.get(value)
        return state.name if state is not None else f"{signal}={value} (not in {self.map.path.name} [states])"

    def request(self, mode: str | ModeRequest) -> None:
        mode = ModeRequest[mode.upper()] if isinstance(mode, str) else mode
        if mode not in self.map.modes:
            raise ConfigError(f"{self.map.path}: [request.modes] has no {mode.name}: {self.map.name} cannot be "
                              f"asked for it (mapped: {', '.join(m.name for m in self.map.modes)})")
        self.sender.set(self.request_message, **{self.map.mode_signal: self.map.modes[mode]})

    def clear_faults(self, timeout_s: float = 1.0) -> None:
        if self.map.clear_faults_signal is None:
            raise ConfigError(f"{self.map.path}: [request] has no clear_faults signal: {self.map.name}'s faults "
                              "cannot be cleared by request")
        self.sender.pulse(self.request_message, timeout_s, self.loop, **{self.map.clear_faults_signal: 1})


def _reported(values: dict, names: list[str]) -> np.ndarray:
    """The values of `names` as floats, NaN where none has been received."""
    return np.array([values.get(name, np.nan) for name in names], dtype=float)


def _version(parts) -> str:
    """Version numbers as a build is named: whole numbers joined by dots ("1.2.0")."""
    return ".".join(str(int(part)) if float(part).is_integer() else f"{part:g}" for part in parts)
