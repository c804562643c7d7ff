"""The emulated boards of a rig (reference BMS firmware + cell-emulator board) on one CAN bus.

`BoardHost.tick(now_s)` is the boards' whole world: drain the bus, hand each frame to every board, run
their tasks and send their cyclic frames. The sim rig ticks it from the harness loop (one process, virtual
clock); `hil emulate` ticks it from its own real-time loop in a separate process.
"""
from __future__ import annotations

import can
from cantools.database import Database

from hil.can.periodic import PeriodicSender
from hil.model.cell import load_cell
from hil.rig import Rig
from hil.sim.bms_firmware import BmsFirmware
from hil.sim.calibration import calibration_from
from hil.sim.cell_emulator_board import CellEmulatorBoard


class BoardHost:
    def __init__(self, rig: Rig, bus: can.BusABC, db: Database):
        self.bus = bus
        dut = rig.data["dut"]
        pack = rig.data["pack"]
        cell = load_cell(rig.resolve(pack["cell"]))
        self.sender = PeriodicSender(bus, db)
        self.cell_emulator = CellEmulatorBoard(rig.data["cell_emulator"]["channels"], db, self.sender)
        calibration = calibration_from(dut.get("calibration", {}), f"{rig.path} [dut.calibration]")
        self.firmware = BmsFirmware(calibration, pack["n_series"], cell.ocv_soc, cell.ocv_v, self.cell_emulator,
                                    db, self.sender, bugs=dut.get("bugs", []), seed=dut.get("seed", rig.seed))
        self._boards = (self.cell_emulator, self.firmware)

    def tick(self, now_s: float) -> None:
        while (msg := self.bus.recv(timeout=0)) is not None:
            for board in self._boards:
                board.on_frame(msg, now_s)
        for board in self._boards:
            board.tick(now_s)
        self.sender.tick(now_s)

    def go_safe(self) -> None:
        for board in self._boards:
            board.go_safe()
