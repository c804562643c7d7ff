"""The emulated boards of a rig (reference BMS firmware + cell-emulator board) on their CAN bus or buses.

`BoardHost.tick(now_s)` is the boards' whole world: drain each bus, hand each frame to the boards on that
bus, run their tasks and send their cyclic frames. The sim rig ticks it from the harness loop (one process,
virtual clock); `hil emulate` ticks it from its own real-time loop in a separate process.

The two boards share one bus unless the rig puts the cell emulator on a bus of its own (`[cell_emulator]
bus`). Either way the firmware reads the cells through the cell-emulator board's outputs (its analog front
end's wires), not over CAN. With `[power_supply] kind = "emulated"` the firmware's low-voltage input is the
emulated lab supply's output (`hil.sim.lab_supply`), read every tick; without it, always powered.

With an `EventLog`, the host reports what an observer of the boards' terminals would see change: the
cell emulator's outputs, the BMS's main contactors (feedback, not command), its state, and its power. Changes
are noticed after each tick, so an event's time is at most one tick after the change.
"""
from __future__ import annotations

import can
from cantools.database import Database

from hil.can.dbc import precompile
from hil.can.periodic import PeriodicSender
from hil.model.cell import load_cell
from hil.rig import Rig
from hil.sim.bms_firmware import BmsFirmware
from hil.sim.calibration import calibration_from
from hil.sim.cell_emulator_board import CellEmulatorBoard
from hil.sim.events import EventLog
from hil.sim.lab_supply import LabSupply


class BoardHost:
    def __init__(self, rig: Rig, bus: can.BusABC, db: Database, *, ce_bus: can.BusABC | None = None,
                 ce_db: Database | None = None, events: EventLog | None = None):
        """`bus` and `db`: the DUT's bus and its DBC files; `ce_bus` and `ce_db` the cell emulator's, when the rig
        gives it a bus of its own (None: it shares the DUT's)."""
        self.bus = bus
        self.events = events
        dut = rig.data["dut"]
        pack = rig.data["pack"]
        cell = load_cell(rig.resolve(pack["cell"]))
        # In `hil emulate`, the codecs' first use would make its first tick late: compile them now.
        precompile(db)
        self.sender = PeriodicSender(bus, db)
        if ce_bus is None:
            ce_bus, ce_db, ce_sender = bus, db, self.sender
        else:
            precompile(ce_db)
            ce_sender = PeriodicSender(ce_bus, ce_db)
        self.cell_emulator = CellEmulatorBoard(rig.data["cell_emulator"]["channels"], ce_db, ce_sender)
        calibration = calibration_from(dut.get("calibration", {}), f"{rig.path} [dut.calibration]")
        self.firmware = BmsFirmware(calibration, pack["n_series"], cell.ocv_soc, cell.ocv_v, self.cell_emulator,
                                    db, self.sender, bugs=dut.get("bugs", []), seed=dut.get("seed", rig.seed),
                                    where=f"{rig.path} [dut] bugs")
        supply = rig.data.get("power_supply", {})
        self.supply = (LabSupply(supply["nominal_v"], supply.get("current_limit_a", 2.0))
                       if supply.get("kind") == "emulated" else None)
        if self.supply is not None:
            self.supply.load_a = self.firmware.supply_current_a
        self._boards = (self.cell_emulator, self.firmware)
        # Each bus with the boards wired to it, and each bus's sender: one of each when the boards share a bus.
        if ce_bus is bus:
            self._wiring = ((bus, self._boards),)
            self._senders = (self.sender,)
        else:
            self._wiring = ((ce_bus, (self.cell_emulator,)), (bus, (self.firmware,)))
            self._senders = (ce_sender, self.sender)
        self._seen = {"outputs_on": False, "contactors_closed": False, "state": None, "powered": True}

    def tick(self, now_s: float) -> None:
        if self.supply is not None:
            self.firmware.supply(self.supply.output_v(now_s), now_s)
        for bus, boards in self._wiring:
            while (msg := bus.recv(timeout=0)) is not None:
                for board in boards:
                    board.on_frame(msg, now_s)
        for board in self._boards:
            board.tick(now_s)
        for sender in self._senders:
            sender.tick(now_s)
        if self.events is not None:
            self._report_changes(None)

    def go_safe(self, cause: str = "shutdown") -> None:
        """Contactors open and outputs off now. `cause` (e.g. "host_lost") goes into the events."""
        for board in self._boards:
            board.go_safe()
        if self.events is not None:
            self._report_changes(cause)

    def _report_changes(self, shutdown_cause: str | None) -> None:
        """Emit an event per observable change since the last look. A shutdown's outputs_off has reason
        "shutdown" and says why in "cause"; otherwise the watchdog or the host switched the outputs."""
        ce, fw, seen, emit = self.cell_emulator, self.firmware, self._seen, self.events.emit
        if ce.outputs_on != seen["outputs_on"]:
            seen["outputs_on"] = ce.outputs_on
            if ce.outputs_on:
                emit("cell_emulator", "outputs_on")
            elif shutdown_cause is not None:
                emit("cell_emulator", "outputs_off", reason="shutdown", cause=shutdown_cause)
            else:
                emit("cell_emulator", "outputs_off", reason="watchdog" if ce.watchdog_tripped else "host")
        if fw.powered != seen["powered"]:
            seen["powered"] = fw.powered
            emit("bms", "booted" if fw.powered else "power_lost", reset_v=fw.reset_v)
        closed = fw.contactor_fb["pos"] and fw.contactor_fb["neg"]
        if closed != seen["contactors_closed"]:
            seen["contactors_closed"] = closed
            emit("bms", "contactors_closed" if closed else "contactors_open")
        if fw.state != seen["state"]:
            seen["state"] = fw.state
            emit("bms", "state", state=fw.state.name)
