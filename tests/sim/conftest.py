"""The emulated boards on an in-process virtual bus, stepped one 10 ms main task at a time.

Each test gets the sim rig's BoardHost (reference firmware + cell-emulator board) and a host side: a
rest-bus sender (VCU heartbeat and request, cell-emulator heartbeat with outputs on) and a Monitor that
decodes what the boards send. The analog inputs are set on the cell-emulator board itself, so a value
reaches the firmware's front end exactly; the AFE noise is off unless a test turns it on. So is the current
sensor's plausibility check: these tests set a current without the cells' IR drop, which the check would rightly
call a dead sensor (tests/sim/test_firmware_current_sensor.py turns it on), and its auto-zero, which would take a
current a test sets at rest for the sensor's zero.
"""
import itertools
import json
import os

import can
import numpy as np
import pytest

from hil.can.dbc import load_dbcs
from hil.can.isotp_link import PADDING as UDS_PAD
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.model.cell import load_cell
from hil.protocol import FAULT_BITS, BmsState, ModeRequest
from hil.rig import PROJECT_ROOT, load_rig
from hil.sim.bms_firmware import MAIN_TASK_S, SLOW_TASK_S
from hil.sim.boards import BoardHost

SIM_RIG = PROJECT_ROOT / "rigs" / "sim.toml"
_channels = itertools.count()


class Boards:
    def __init__(self, overrides=(), bugs=(), soc0=0.5):
        overrides = ["dut.calibration.afe_noise_v=0.0", "dut.calibration.current_plausibility_enabled=false",
                     "dut.calibration.current_offset_enabled=false", "dut.calibration.current_zero_enabled=false",
                     f"dut.bugs={json.dumps(list(bugs))}", *overrides]
        self.rig = load_rig(SIM_RIG, overrides)
        self.cal = self.rig.data["dut"]["calibration"]
        channel = f"sim-test-{os.getpid()}-{next(_channels)}"
        self._board_bus = can.Bus(interface="virtual", channel=channel)
        self._host_bus = can.Bus(interface="virtual", channel=channel)
        db = load_dbcs(self.rig.dbc_paths("main"))
        self.host = BoardHost(self.rig, self._board_bus, db)
        self.fw = self.host.firmware
        self.ce = self.host.cell_emulator
        cell = load_cell(self.rig.resolve(self.rig.data["pack"]["cell"]))
        self.ocv_soc, self.ocv_v = cell.ocv_soc, cell.ocv_v
        self.n_cells = self.fw.n_cells
        self.ticks = 0
        self.uds_answers: list[bytes] | None = None   # UDS_BmsResponse's frames, once ask_uds has asked
        self.monitor = Monitor(db, lambda: self.t_s)
        self.sender = PeriodicSender(self._host_bus, db)
        self.sender.add("VCU_Heartbeat")
        self.sender.add("VCU_Request", {"VCU_ModeRequest": int(ModeRequest.STANDBY), "VCU_ClearFaults": 0})
        self.sender.add("CE_Control", {"CE_OutputEnable": 1})
        self.ce.setpoint_v[:] = self.ocv_at(soc0)

    @property
    def t_s(self) -> float:
        return self.ticks * MAIN_TASK_S

    def ocv_at(self, soc: float) -> float:
        """The cell voltage (on the AFE's 100 uV grid) at which the firmware reads `soc` off its OCV table."""
        return round(float(np.interp(soc, self.ocv_soc, self.ocv_v)), 4)

    def step(self, tasks: int = 1) -> None:
        """Run `tasks` main tasks (10 ms each): host frames out, boards run, board frames decoded."""
        for _ in range(tasks):
            t_s = self.t_s
            self.sender.tick(t_s)
            self.host.tick(t_s)
            while (msg := self._host_bus.recv(timeout=0)) is not None:
                self.monitor.on_message_received(msg)
            self.ticks += 1

    def step_slow(self, slow_tasks: int = 1) -> None:
        """Run `slow_tasks` slow-task periods (100 ms each)."""
        self.step(slow_tasks * round(SLOW_TASK_S / MAIN_TASK_S))

    def run_for(self, duration_s: float) -> None:
        self.step(round(duration_s / MAIN_TASK_S))

    def run_until(self, condition, timeout_s: float, what: str) -> float:
        """Step until `condition()`; return the time it became true. Raises with the state if it never does."""
        end = self.ticks + round(timeout_s / MAIN_TASK_S)
        while not condition():
            if self.ticks >= end:
                raise AssertionError(f"{what} not reached within {timeout_s} s; {self.describe()}")
            self.step()
        return self.t_s

    def ramp_temperatures(self, channels, c_per_s: float, duration_s: float, until=None) -> float | None:
        """Raise the thermistor inputs of `channels` (an index, list or slice) by `c_per_s`, task by task, as a
        heating cell's sensor moves, for `duration_s` or until `until()`; return when that first held, or None."""
        per_task_c = c_per_s * MAIN_TASK_S
        for _ in range(round(duration_s / MAIN_TASK_S)):
            self.ce.setpoint_c[channels] += per_task_c
            self.step()
            if until is not None and until():
                return self.t_s
        return None

    def describe(self) -> str:
        fw = self.fw
        return (f"t={self.t_s:.2f} s state={fw.state.name} faults={fw.faults:#x} active={fw.active:#x} "
                f"warnings={fw.warnings:#x} contactors={fw.contactor_fb}")

    def request(self, mode: str) -> None:
        self.sender.set("VCU_Request", VCU_ModeRequest=int(ModeRequest[mode.upper()]))

    def clear_faults(self) -> None:
        """One request frame with ClearFaults set, as a host sends it."""
        self.sender.set("VCU_Request", VCU_ClearFaults=1)
        sent = self.sender.last_sent_s("VCU_Request")
        self.run_until(lambda: self.sender.last_sent_s("VCU_Request") != sent, 0.2, "clear request sent")
        self.sender.set("VCU_Request", VCU_ClearFaults=0)

    def host_silent(self) -> None:
        """Stop every VCU frame (heartbeat and request both count as the host being alive)."""
        self.sender.stop("VCU_Heartbeat")
        self.sender.stop("VCU_Request")

    def last_host_frame_s(self) -> float:
        return max(self.sender.last_sent_s("VCU_Heartbeat"), self.sender.last_sent_s("VCU_Request"))

    def fault(self, name: str) -> bool:
        return bool(self.fw.faults >> FAULT_BITS[name] & 1)

    def warning(self, name: str) -> bool:
        return bool(self.fw.warnings >> FAULT_BITS[name] & 1)

    @property
    def closed(self) -> bool:
        return self.fw.contactor_fb["pos"] and self.fw.contactor_fb["neg"]

    def standby(self) -> None:
        self.run_until(lambda: self.fw.state == BmsState.STANDBY, 1.0, "STANDBY")

    def park(self) -> None:
        """STANDBY, then the host silent until the firmware sleeps."""
        self.standby()
        self.host_silent()
        self.run_until(lambda: self.fw.asleep, self.cal["sleep_after_s"] + 1.0, "asleep from STANDBY")

    def discharge_between_rests(self, end_soc: float, capacity_fraction: float, rest_s: float) -> None:
        """From STANDBY at rest (the first SOC read off the OCV: soc0), draw at 20 A the charge a pack of
        `capacity_fraction` of the rated capacity gives down to `end_soc`, then rest `rest_s` at `end_soc`'s OCV
        (the second reading): what a capacity (SOH) estimate is made of."""
        self.standby()
        current_a = 20.0
        drawn_ah = (self.fw.soc - end_soc) * capacity_fraction * self.cal["capacity_ah"]
        self.ce.current_a = current_a
        self.run_for(drawn_ah / current_a * 3600)
        self.ce.current_a = 0.0
        self.ce.setpoint_v[:] = self.ocv_at(end_soc)
        self.run_for(rest_s)

    def power_up(self, mode: str = "discharge") -> None:
        """STANDBY, then `mode` requested, until NORMAL with both main contactors closed."""
        self.standby()
        self.request(mode)
        self.run_until(lambda: self.fw.state == BmsState.NORMAL and self.closed, 2.0, "NORMAL, contactors closed")

    def ask_uds(self, *request: int, tasks: int = 2, message: str = "UDS_BmsRequest") -> list[bytes]:
        """A tester's single-frame request on `message` (UDS_BmsRequest, or UDS_FunctionalRequest to every ECU; ISO-TP,
        padded to 8 bytes): the UDS_BmsResponse frames that came within `tasks` main tasks (kept in `uds_answers`,
        which collects every later one too)."""
        if self.uds_answers is None:
            self.uds_answers = []
            self.monitor.tap("UDS_BmsResponse", lambda msg: self.uds_answers.append(bytes(msg.data)))
        self.uds_answers.clear()
        self.sender.send_frame(message, bytes([len(request), *request]).ljust(8, bytes([UDS_PAD])))
        self.step(tasks)
        return list(self.uds_answers)

    def close(self) -> None:
        self._host_bus.shutdown()
        self._board_bus.shutdown()


@pytest.fixture
def make_boards():
    """`make_boards(*overrides, bugs=(), soc0=0.5)`: a fresh Boards; closed after the test."""
    made = []

    def _make(*overrides, bugs=(), soc0=0.5):
        boards = Boards(overrides, bugs, soc0)
        made.append(boards)
        return boards

    yield _make
    for boards in made:
        boards.close()


@pytest.fixture
def boards(make_boards):
    return make_boards()
