"""A bench assembled from a rig: buses, boards, pack model, DUT proxy, loop. One per test.

Each tick of the loop, in this order:
1. the in-process emulated boards run (sim rig only; on other rigs they run in their own process);
2. received frames are decoded (virtual clock: here, synchronously; real clock: on a Notifier thread);
3. the BMS's contactor state and current limit turn the load demand into the current that flows;
4. the pack model steps; every setpoint period the cell emulator gets new voltages and current;
5. every 100 ms the thermistor setpoints, one frame a tick from mid-period;
6. rest-bus messages (VCU heartbeat and request, cell-emulator heartbeat) go out when due;
7. the trace records a row every setpoint period: the model's cells, and what the cell emulator outputs.

The cell emulator shares the DUT's CAN bus unless the rig gives it one of its own (`[cell_emulator] bus`):
then each bus has its own adapter, Monitor and periodic sender, and both go to one CAN log as channels.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
import time
from pathlib import Path

import can
import numpy as np

from hil.can.bus import open_bus
from hil.can.dbc import load_dbcs, precompile
from hil.can.log import CanLog
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.can.simbus import SimBus
from hil.devices.bms import make_bms
from hil.devices.cell_emulator import make_cell_emulator
from hil.devices.uds import make_uds_client
from hil.devices.emulator_process import EmulatorProcess
from hil.devices.power_supply import open_power_supply
from hil.errors import DeviceLost, HilError
from hil.loop import Loop
from hil.profiles.base import UNITS
from hil.protocol import BmsState
from hil.reductions import amean, greatest, least
from hil.rig import Rig
from hil.safety import SafeState, make_safe
from hil.spec import load_spec
from hil.trace import Trace

_channel_ids = itertools.count()
TEMPERATURE_PERIOD_S = 0.1
# A BMS silent this long counts as dark: its contactors open with its supply, so no current flows. A VCU acts
# on a BMS timeout the same way; long enough that a late frame on a loaded machine is not taken for one.
BMS_SILENT_S = 0.25
# The CAN log's channel of each bus, as python-can counts them (0-based; BLF viewers show CAN 1 and CAN 2).
DUT_LOG_CHANNEL = 0
CE_LOG_CHANNEL = 1
# How long a bench waits for the BMS to say which build it runs: two and a half cycles of a once-a-second message.
FIRMWARE_WAIT_S = 2.5


class Bench:
    def __init__(self, rig: Rig, *, report_dir: str | Path | None = None, name: str = "run",
                 trace_memory_rows: int | None = None):
        """`report_dir`: where `<name>.csv` (trace) and `<name>.blf` (CAN log) go, written as the run goes.
        `trace_memory_rows`: keep only the newest rows of the trace in memory (long runs; the CSV has all)."""
        self.rig = rig
        self.clock = rig.make_clock()
        self.spec = load_spec(rig.spec_path)
        self.pack = rig.make_pack()
        self.cell = self.pack.cell
        # The BMS's bleed resistors, as the cell emulator's channels see them when balancing is on.
        calibration = rig.data["dut"].get("calibration", {})
        self.bleed_r_ohm = float(np.mean(self.cell.ocv_v)) / calibration.get("balance_current_a", 0.1)
        self._bleed_mask = None
        # What the host reads from the BMS's frames every tick, worked out again only when a frame has
        # updated the Monitor's values (see `_read_bms`): most ticks bring none.
        self._bms_value_updates = -1
        self._limit_discharge_a = self._limit_charge_a = None
        self._contactors_closed = False
        self._balancing_mask = None
        bus_name, ce_bus_name = rig.data["dut"]["bus"], rig.data["cell_emulator"]["bus"]
        self.db = load_dbcs(rig.dbc_paths(bus_name))
        precompile(self.db)
        # The cell emulator's bus, DBC files, sender and Monitor are the DUT's own unless the rig gives it a bus
        # of its own (a lab's cell emulator is often kept off the vehicle bus).
        own_ce_bus = ce_bus_name != bus_name
        self.ce_db = self.db
        if own_ce_bus:
            self.ce_db = load_dbcs(rig.dbc_paths(ce_bus_name))
            precompile(self.ce_db)
        self.boards = None
        self.emulator = None
        self.supply = None
        self.uds = None
        self._debug_url = rig.debug_port   # "auto": the emulated boards' pty, known once their process is up
        self._asked_firmware: str | None = None   # the build read over the debug UART or UDS, once asked
        self._board_bus = self._board_ce_bus = None
        self._notifiers: list[can.Notifier] = []
        self.can_log = None
        self.profile = None
        self.demand = 0.0          # A (or W when demand_kind is "power") when no profile runs
        self.demand_kind = "current"
        self.honour_limits = True  # the host caps demand at the BMS's current limits, as a VCU would
        self.pack_current_a = 0.0
        self._closed = False
        # Forced cell-emulator outputs (NaN = follow the model): how a test drives one cell over a limit. None
        # while no channel is forced, so a tick sends the model's values without merging.
        self._forced_cell_v: np.ndarray | None = None
        self._forced_temperature_c: np.ndarray | None = None
        self._forced_current_a: float | None = None
        self._current_offset_a = 0.0   # added to what the current sensor reads (forced or not)
        # Each bus's python-can keywords (its channel is filled in below for emulated boards) and rig table.
        self._bus_kwargs = {name: rig.can_kwargs(name) for name in dict.fromkeys((bus_name, ce_bus_name))}
        self._bus_where = {name: f"{rig.path} [can.{name}]" for name in self._bus_kwargs}
        try:
            if rig.emulate_in_process:
                board_buses = {}
                for bus, kwargs in self._bus_kwargs.items():
                    # A fresh channel per bench keeps parallel and successive benches in one process apart.
                    kwargs["channel"] = f"hil-{os.getpid()}-{next(_channel_ids)}"
                    board_buses[bus] = SimBus(channel=kwargs["channel"])
                self._board_bus = board_buses[bus_name]
                self._board_ce_bus = board_buses[ce_bus_name] if own_ce_bus else None
                from hil.sim.boards import BoardHost
                self.boards = BoardHost(rig, self._board_bus, self.db, ce_bus=self._board_ce_bus,
                                        ce_db=self.ce_db if self._board_ce_bus is not None else None)
            elif rig.data["dut"]["kind"] == "emulated":
                self.emulator = EmulatorProcess(rig)
                for bus, kwargs in self._bus_kwargs.items():
                    kwargs["interface"], kwargs["channel"] = self.emulator.endpoints[bus]
                if self._debug_url == "auto":
                    self._debug_url = self.emulator.endpoints["debug"][1]
            self.bus = self._open_bus(bus_name)
            board_supply = self.boards.supply if self.boards is not None else None
            self.supply = open_power_supply(
                rig, emulated_answer=board_supply.answer if board_supply is not None else None, now_s=self.clock.now_s,
                emulated_port=self.emulator.endpoints.get("psu", (None, None))[1] if self.emulator else None)
            dut_map, ce_map = rig.load_dut_map(self.db), rig.load_ce_map(self.ce_db)
            # The AUTOSAR E2E profiles the maps name protect each bus's frames both ways.
            protections = dut_map.protections if dut_map is not None else {}
            ce_protections = ce_map.protections if ce_map is not None else {}
            if not own_ce_bus:
                protections = {**protections, **ce_protections}
            self.monitor = Monitor(self.db, self.clock.now_s, protections)
            if report_dir is not None:
                report_dir = Path(report_dir)
                report_dir.mkdir(parents=True, exist_ok=True)
                self.can_log = CanLog(report_dir / f"{name}.blf")
            self.trace = Trace(Path(report_dir) / f"{name}.csv" if report_dir is not None else None,
                               memory_rows=trace_memory_rows)
            self.sender = PeriodicSender(self.bus, self.db, on_send=self._log_sent, protections=protections)
            # What a tick reads and sends on each bus: (bus, its Monitor, its CAN-log listener or None), senders.
            self._inboxes = [(self.bus, self.monitor, self._log_as(DUT_LOG_CHANNEL))]
            self._senders = [self.sender]
            self.ce_bus, self.ce_monitor, self.ce_sender = self.bus, self.monitor, self.sender
            log_ce_sent = self._log_sent
            if own_ce_bus:
                self.ce_bus = self._open_bus(ce_bus_name)
                self.ce_monitor = Monitor(self.ce_db, self.clock.now_s, ce_protections)
                log_ce_sent = functools.partial(self._log_sent, channel=CE_LOG_CHANNEL)
                self.ce_sender = PeriodicSender(self.ce_bus, self.ce_db, on_send=log_ce_sent,
                                                protections=ce_protections)
                self._inboxes.append((self.ce_bus, self.ce_monitor, self._log_as(CE_LOG_CHANNEL)))
                self._senders.append(self.ce_sender)
            self.loop = Loop(self.clock, rig.dt_s, self._tick_or_lost,
                             overrun_policy=rig.overrun_policy)
            self.bms = make_bms(dut_map, self.monitor, self.sender, self.loop)
            # The harness as a diagnostic tester (hil.devices.uds); None where it has no UDS for this BMS.
            self.uds = make_uds_client(dut_map, self.monitor, self.sender, self.loop)
            self._status_message = self.bms.contactor_readback.message
            if self.supply is not None:
                self.supply.note = lambda text: self.trace.mark(self.loop.t_s, text)
            self.cell_emulator = make_cell_emulator(ce_map, self.ce_bus, self.ce_db,
                                                    self.ce_sender, self.ce_monitor,
                                                    rig.data["cell_emulator"]["channels"], on_send=log_ce_sent)
            self._setpoint_every = max(1, int(round(rig.setpoint_period_s / rig.dt_s)))
            self._temperature_every = max(1, int(round(TEMPERATURE_PERIOD_S / rig.dt_s)))
            # The frames (multiplexer groups) due at each phase of those periods, worked out once.
            self._cell_groups = _groups_by_phase(self.cell_emulator.cell_frames, self._setpoint_every)
            self._temperature_groups = _groups_by_phase(self.cell_emulator.temperature_frames,
                                                        self._temperature_every)
            # The run's timeline starts here, before anything is received: a frame the Monitor stamped
            # before a restart would sit ahead of every later one (a negative cycle time in its statistics).
            self.clock.restart()
            if self.clock.is_real:
                for bus, monitor, log in self._inboxes:
                    notifier = can.Notifier(bus, [monitor] + ([log] if log else []), timeout=0.005)
                    self._notifiers.append(notifier)
                    # Its reader threads (python-can 4.x keeps them in `_readers`) stamp what they receive.
                    for reader in getattr(notifier, "_readers", ()):
                        if isinstance(reader, threading.Thread):
                            self.clock.raise_reader(reader)
        except BaseException:
            self.close()
            raise

    def _open_bus(self, name: str) -> can.BusABC:
        """The harness's end of rig bus `name`. With the boards in this process, they poll their bus from the
        loop's thread: the virtual bus without its thread-safety costs (hil.can.simbus) carries the same
        frames, a quarter of a run's time less. On a real clock the harness's bus is read by a Notifier
        thread, so it keeps a blocking inbox."""
        kwargs, bus_class = self._bus_kwargs[name], None
        if self.boards is not None and kwargs.get("interface") == "virtual":
            bus_class = functools.partial(SimBus, blocking=True) if self.clock.is_real else SimBus
        return open_bus(kwargs, self._bus_where[name], bus_class)

    def _log_as(self, channel: int) -> _LogAs | None:
        return _LogAs(self.can_log, channel) if self.can_log is not None else None

    # --------------------------------------------------------------------------------------------------
    def _stamp(self, msg: can.Message) -> can.Message:
        msg.timestamp = self.clock.now_s() if not self.clock.is_real else time.time()
        return msg

    def _log_sent(self, msg: can.Message, channel: int = DUT_LOG_CHANNEL) -> None:
        if self.can_log is not None:
            msg.is_rx = False
            msg.channel = channel
            self.can_log.on_message_received(self._stamp(msg))

    def tick(self, t_s: float) -> None:
        if self.boards is not None:
            self.boards.tick(t_s)
        if not self._notifiers:
            for bus, monitor, log in self._inboxes:
                while (msg := bus.recv(timeout=0)) is not None:
                    monitor.on_message_received(msg)
                    if log is not None:
                        log.on_message_received(self._stamp(msg))
        demand = self.profile.at(t_s) if self.profile is not None else self.demand
        kind = self.profile.kind if self.profile is not None else self.demand_kind
        current_a = demand / max(self.pack.pack_voltage_v, 1.0) if kind == "power" else demand
        if self.monitor.value_updates != self._bms_value_updates:
            self._read_bms()
        if self.honour_limits:
            limit_dis, limit_chg = self._limit_discharge_a, self._limit_charge_a
            if limit_dis is not None:
                current_a = min(current_a, limit_dis)
            if limit_chg is not None:
                current_a = max(current_a, -limit_chg)
        if not self._contactors_closed:
            current_a = 0.0
        self.pack_current_a = current_a
        mask = self._balancing_mask
        if mask is not self._bleed_mask:  # the proxy returns the same array until the mask changes
            self._bleed_mask = mask
            self.pack.faults.set_bleed(mask, self.bleed_r_ohm)
        self.pack.step(current_a, self.loop.dt_s)
        tick = self.loop.ticks
        # Each cell setpoint frame goes out once per setpoint period, the frames spread over its ticks so
        # that a large pack's burst does not land on one tick.
        phase = tick % self._setpoint_every
        if phase == 0 and self._contactors_closed and (self.monitor.age_s(self._status_message) or 0.0) > BMS_SILENT_S:
            self._contactors_closed = False   # until its next frame (a BMS that lost its supply, say)
        groups = self._cell_groups[phase]
        if groups or phase == 0:
            output_v = _forced(self.pack.measured_cell_voltage_v, self._forced_cell_v)
            if groups:
                self.cell_emulator.set_cells(output_v, groups)
        if phase == 0:
            sensed_a = current_a if self._forced_current_a is None else self._forced_current_a
            self.cell_emulator.set_current(sensed_a + self._current_offset_a)
            v = self.pack.cell_voltage_v
            state = self.bms.state
            self.trace.record((t_s, demand, current_a, float(least(v)), amean(v), float(greatest(v)),
                               float(greatest(self.pack.temperature_c)), amean(self.pack.soc), self.bms.soc,
                               state.name if state is not None else "NONE", self.bms.contactors_closed,
                               float(least(output_v)), float(greatest(output_v))))
        # Thermistor frames, like the cell setpoints, are spread over their period: one per tick (14 for a
        # 96-cell pack), starting half-way through it, away from the BMS's 100 ms messages at its start.
        groups = self._temperature_groups[(tick - self._temperature_every // 2) % self._temperature_every]
        if groups:
            self.cell_emulator.set_temperatures(
                _forced(self.pack.measured_temperature_c, self._forced_temperature_c), groups)
        for sender in self._senders:
            sender.tick(t_s)

    def _read_bms(self) -> None:
        """The BMS's current limits, contactors and bleed mask as its latest frames report them. The count
        is taken first: a frame the Notifier thread adds meanwhile counts as unread, and is read next tick."""
        self._bms_value_updates = self.monitor.value_updates
        bms = self.bms
        self._limit_discharge_a, self._limit_charge_a = bms.discharge_limit_a, bms.charge_limit_a
        self._contactors_closed = bms.contactors_closed
        self._balancing_mask = bms.balancing_mask(self.pack.n_series)

    def _tick_or_lost(self, t_s: float) -> None:
        """`tick`, with a CAN adapter that fails mid-run (unplugged, or its boards' process gone) reported as
        DeviceLost naming it, instead of python-can's bare "Could not write to serial device"."""
        try:
            self.tick(t_s)
        except can.CanOperationError as exc:
            # python-can's error does not say which adapter: with a bus for the cell emulator, either.
            adapter = " or ".join(f"{self._bus_where[bus]}: CAN adapter {kwargs['interface']} on "
                                  f"{kwargs.get('channel')}" for bus, kwargs in self._bus_kwargs.items())
            message = (f"{adapter} failed mid-run: {exc} ({exc.__cause__}). "
                       "It worked before: check its cable, USB connection and power")
            if self.emulator is not None:
                message += "; " + self.emulator.exit_status(wait_s=1.0)
            raise DeviceLost(message) from exc

    # Convenience for tests ------------------------------------------------------------------------------
    def power_up(self, mode: str = "discharge", timeout_s: float = 3.0) -> float:
        """Outputs on, wait for STANDBY, request `mode`, and wait for NORMAL with contactors closed.

        Does nothing if the BMS is already NORMAL with its contactors closed.
        """
        if self.bms.state == BmsState.NORMAL and self.bms.contactors_closed:
            return self.loop.t_s
        self.cell_emulator.enable(True)
        self.bms.wait_state(BmsState.STANDBY, timeout_s)
        self.bms.request(mode)
        self.bms.wait_state(BmsState.NORMAL, timeout_s)
        return self.loop.run_until(lambda: self.bms.contactors_closed, timeout_s, self.bms.describe)

    @property
    def firmware_source(self) -> str | None:
        """Where the BMS says its build: its CAN message; where CAN does not carry it, its debug UART (`[dut]
        debug_port`) or else UDS (its software-version DID); or None."""
        if self.bms.firmware_message is not None:
            return self.bms.firmware_message
        if self._debug_url is not None:
            return f"debug UART {self._debug_url}"
        return None if self.uds is None else f"UDS ReadDataByIdentifier 0x{self.uds.software_version_did:04X}"

    @property
    def reported_firmware(self) -> str | None:
        """The build the BMS has said it runs so far (no waiting, no request); None until it has."""
        return self.bms.firmware_version if self.bms.firmware_message is not None else self._asked_firmware

    def firmware_version(self, timeout_s: float = FIRMWARE_WAIT_S) -> str | None:
        """The build the BMS says it runs, asked for first where it must be asked, and waited for up to
        `timeout_s` (on CAN; where CAN does not carry it, read over the debug UART or UDS: `firmware_source`);
        None when none can tell. Raises `HilTimeout` when the BMS does not say it in time, the serial link's
        errors (naming the port) for a debug UART that does not answer, and `UdsRefused` for a BMS that refuses
        the DID."""
        message = self.bms.firmware_message
        if message is None:
            if self._asked_firmware is None and self._debug_url is not None:
                from hil.serial.link import SerialLink
                from hil.serial.protocols import bms_debug
                with SerialLink(self._debug_url, bms_debug.PROTOCOL,
                                baudrate=self.rig.data["dut"].get("debug_baudrate", 115200)) as link:
                    self._asked_firmware = bms_debug.BmsDebugClient(link).read_firmware_version()
            elif self._asked_firmware is None and self.uds is not None:
                self._asked_firmware = self.uds.software_version()
            return self._asked_firmware
        if self.bms.firmware_version is not None:
            return self.bms.firmware_version
        self.bms.ask_firmware_version()
        self.loop.run_until(lambda: self.bms.firmware_version is not None, timeout_s,
                            lambda: f"no firmware version from the BMS ({self.monitor.absence(message) or message})"
                                    f"; {self.bms.describe()}")
        return self.bms.firmware_version

    def check_firmware(self) -> None:
        """Refuse a BMS that runs another build than the rig's `[dut] firmware` names (nothing to check without
        it, or for a BMS whose build nothing can read: the report then records the rig's word). A build said
        only over the debug UART is read here in any case, for the report."""
        expected = self.rig.expected_firmware
        if expected is None and (self.bms.firmware_message is not None or self.firmware_source is None):
            return   # CAN says it as the test runs (or nothing can): the report has it without a wait here
        seen = self.firmware_version()
        if expected is not None and seen is not None and seen != expected:
            raise HilError(f"{self.rig.path}: [dut] firmware = {expected!r}, but the BMS says it runs {seen!r} "
                           f"({self.firmware_source}): flash build {expected}, or correct the rig's "
                           "[dut] firmware")

    def wait_for(self, message: str, expected, timeout_s: float):
        """Run the bench until `message` matches `expected` ({signal: value} or a predicate); see
        `Monitor.wait_for`. Returns the matching sample; raises `HilTimeout` with the last values seen."""
        return self.monitor.wait_for(message, expected, timeout_s, run=self.loop.run_until)

    def force_cell(self, channel: int, voltage_v: float | None) -> None:
        """Drive one cell-emulator channel (0-based) to `voltage_v` regardless of the model; None releases it."""
        self._forced_cell_v = _force(self._forced_cell_v, self.cell_emulator.n_channels, channel, voltage_v)
        self.trace.mark(self.loop.t_s, f"cell {channel} " + ("released" if voltage_v is None
                                                            else f"forced to {voltage_v:.3f} V"))

    def force_temperature(self, channel: int, temperature_c: float | None) -> None:
        self._forced_temperature_c = _force(self._forced_temperature_c, self.cell_emulator.n_channels, channel,
                                            temperature_c)
        self.trace.mark(self.loop.t_s, f"thermistor {channel} " + ("released" if temperature_c is None
                                                                  else f"forced to {temperature_c:.1f} degC"))

    def release_channels(self) -> None:
        """Every forced cell and thermistor channel back to the model."""
        if self._forced_cell_v is None and self._forced_temperature_c is None:
            return
        self._forced_cell_v = self._forced_temperature_c = None
        self.trace.mark(self.loop.t_s, "cells and thermistors released")

    def force_current(self, current_a: float | None) -> None:
        """Make the BMS's current sensor (the cell emulator's current output) read `current_a` whatever flows: 0
        for a dead sensor, `bench.pack_current_a` for one frozen at its reading; None releases it."""
        if current_a is None and self._forced_current_a is None:
            return   # nothing to release (the safe state's load step releases it every time)
        self._forced_current_a = None if current_a is None else float(current_a)
        self.trace.mark(self.loop.t_s, "current sensor " + ("released" if current_a is None
                                                            else f"forced to {current_a:.2f} A"))

    def offset_current(self, offset_a: float) -> None:
        """Make the BMS's current sensor read `offset_a` more than flows (a Hall sensor's or a shunt amplifier's
        zero drifted; > 0 reads as discharge); 0 releases it."""
        offset_a = float(offset_a)
        if offset_a == self._current_offset_a:
            return   # nothing changes (the safe state's load step releases it every time)
        self._current_offset_a = offset_a
        self.trace.mark(self.loop.t_s, "current sensor " + (f"offset by {offset_a:+.3f} A" if offset_a
                                                            else "offset released"))

    def set_load(self, demand: float, kind: str = "current", honour_limits: bool = True) -> None:
        """Demand in A (kind "current") or W (kind "power"), > 0 discharges. Stops any running profile."""
        if kind not in ("current", "power"):
            raise HilError(f"load kind {kind!r}: expected 'current' or 'power'")
        self.profile = None
        self.demand, self.demand_kind, self.honour_limits = demand, kind, honour_limits
        # The trace's demand column holds A or W: the event says which (the plot's demand axis reads it).
        self.trace.mark(self.loop.t_s, f"load {demand:g} {UNITS[kind]}" + _limits_note(honour_limits))

    def run_profile(self, profile, honour_limits: bool = True) -> None:
        """Start `profile` at the current bench time; `profile.at` is then read with time from now."""
        self.profile = _Shifted(profile, self.loop.t_s)
        self.honour_limits = honour_limits
        self.trace.mark(self.loop.t_s, f"profile {profile.name} ({profile.duration_s:g} s) in {profile.unit}"
                        + _limits_note(honour_limits))

    def make_safe(self, timeout_s: float = 5.0) -> SafeState:
        """Load zero, contactors open by request, cell-emulator outputs off, in that order, each confirmed by
        a frame read back after its command (see `hil.safety`). Raises `hil.safety.NotSafe` naming the steps
        not confirmed; the later steps still run."""
        return make_safe(self, timeout_s)

    def close(self) -> None:
        """Release everything; idempotent. Emulated boards go safe when their harness disappears."""
        if self._closed:
            return
        self._closed = True
        self.clock.release()  # the loop's thread leaves real-time scheduling with its bench
        for notifier in self._notifiers:
            notifier.stop()
        if getattr(self, "trace", None) is not None:
            self.trace.close()
        if self.supply is not None:
            self.supply.close()
        buses = (getattr(self, "bus", None), getattr(self, "ce_bus", None), self._board_bus, self._board_ce_bus)
        for bus in dict.fromkeys(bus for bus in buses if bus is not None):   # ce_bus is bus when they share one
            with contextlib.suppress(can.CanError):  # a lost adapter cannot be told to close; carry on
                bus.shutdown()
        if self.can_log is not None:
            self.can_log.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _LogAs(can.Listener):
    """Logs a received frame under its bus's CAN log channel (the frames of both buses share one file)."""

    def __init__(self, can_log: CanLog, channel: int):
        self.can_log, self.channel = can_log, channel

    def on_message_received(self, msg: can.Message) -> None:
        msg.channel = self.channel
        self.can_log.on_message_received(msg)


def _limits_note(honour_limits: bool) -> str:
    return "" if honour_limits else " (BMS current limits ignored)"


def _groups_by_phase(frames: int, every: int) -> list[range]:
    """For each tick phase of a period of `every` ticks, the frames sent then: frame g at phase g % every."""
    return [range(phase, frames, every) for phase in range(every)]


def _force(forced: np.ndarray | None, n_channels: int, channel: int, value: float | None) -> np.ndarray | None:
    """`forced` with `channel` set to `value` (None releases it); None again once no channel is forced."""
    if forced is None:
        forced = np.full(n_channels, np.nan)
    forced[channel] = np.nan if value is None else value
    return None if np.isnan(forced).all() else forced


def _forced(model: np.ndarray, forced: np.ndarray | None) -> np.ndarray:
    if forced is None:
        return model
    n = min(model.size, forced.size)
    return np.where(np.isnan(forced[:n]), model[:n], forced[:n])


class _Shifted:
    """A profile started at bench time `t0_s`."""

    def __init__(self, profile, t0_s: float):
        self.profile, self.t0_s, self.kind = profile, t0_s, profile.kind

    def at(self, t_s: float) -> float:
        return self.profile.at(t_s - self.t0_s)
