"""The reference firmware's sleep: with every contactor open and no host or tester frame for `sleep_after_s`, it
saves its SOC and sleeps, silent, drawing its quiescent current; the host's next frame wakes it (a boot); the cell
emulator's frames on the same bus do neither. Asleep, its wake-up timer reads the cells every `sleep_check_s`, and
wakes it for news only."""
import pytest

from hil.protocol import BmsState
from hil.sim.bms_firmware import SLEEP_SUPPLY_A
from .test_lab_supply import ask


def _silent_in_standby(boards) -> float:
    """From NORMAL, the host asks for STANDBY, then stops sending; returns when its last frame went out."""
    boards.power_up()
    boards.request("standby")
    boards.run_until(lambda: not any(boards.fw.contactor_cmd.values()), 2.0, "contactors open")
    boards.run_for(0.2)
    boards.host_silent()
    return boards.last_host_frame_s()


def test_an_idle_bms_sleeps_silent_at_its_quiescent_current(make_boards):
    boards = make_boards()
    last_host_s = _silent_in_standby(boards)
    sleep_after_s = boards.cal["sleep_after_s"]
    boards.run_for(last_host_s + sleep_after_s - 0.1 - boards.t_s)
    assert not boards.fw.asleep, "asleep before sleep_after_s"
    slept_s = boards.run_until(lambda: boards.fw.asleep, 0.3, "asleep")
    assert slept_s - last_host_s == pytest.approx(sleep_after_s, abs=0.0101)
    assert boards.fw.nvm["soc"] == boards.fw.soc, "the SOC saved as it fell asleep"
    frames = boards.monitor.stats["BMS_Status"].count
    boards.run_for(2.0)   # the cell emulator's own frames go on all the while
    assert boards.fw.asleep and boards.monitor.stats["BMS_Status"].count == frames, "a sleeping BMS sent frames"
    assert float(ask(boards.host.supply, "MEAS:CURR?", boards.t_s)) == pytest.approx(SLEEP_SUPPLY_A, abs=1e-4)


def test_the_hosts_next_frame_wakes_it_within_boot_ms_as_it_was(make_boards):
    boards = make_boards()
    _silent_in_standby(boards)
    boards.run_until(lambda: boards.fw.asleep, boards.cal["sleep_after_s"] + 1.0, "asleep")
    soc = boards.fw.soc
    boards.run_for(1.0)
    woken_s = boards.t_s
    boards.sender.start("VCU_Heartbeat", woken_s)
    boards.sender.start("VCU_Request", woken_s)
    awake_s = boards.run_until(lambda: not boards.fw.asleep, 1.0, "awake")
    assert awake_s - woken_s == pytest.approx(boards.cal["boot_ms"] / 1000, abs=0.0101)
    boards.standby()
    assert boards.fw.soc == soc, "the SOC it slept with, from NVM"
    boards.power_up()   # and it closes on request as after any boot


def test_a_latched_fault_sleeps_and_wakes_with_it(make_boards):
    """The host gone in NORMAL: a heartbeat fault opens the contactors; idle, the BMS sleeps in FAULT, and wakes
    in FAULT, the fault still latched (NVM), until the host clears it."""
    boards = make_boards()
    boards.power_up()
    boards.host_silent()
    boards.run_until(lambda: boards.fw.asleep, boards.cal["heartbeat_timeout_ms"] / 1000
                     + boards.cal["sleep_after_s"] + 1.0, "asleep")
    boards.sender.start("VCU_Heartbeat")
    boards.sender.start("VCU_Request")
    boards.run_for(1.0)
    assert boards.fw.state == BmsState.FAULT and boards.fault("heartbeat"), boards.describe()


def test_a_host_that_talks_keeps_it_awake_and_zero_means_never(make_boards):
    talking, never = make_boards(), make_boards("dut.calibration.sleep_after_s=0")
    talking.power_up()
    talking.request("standby")
    talking.run_for(3 * talking.cal["sleep_after_s"])
    _silent_in_standby(never)
    never.run_for(60.0)
    assert not talking.fw.asleep and talking.fw.state == BmsState.STANDBY, talking.describe()
    assert not never.fw.asleep and never.fw.state == BmsState.STANDBY, never.describe()


def test_a_welded_contactor_keeps_it_awake_to_report_it(make_boards):
    """The host gone with a main contactor welded shut: the BMS opens what it can and faults, but the pack's
    terminals stay live, and it stays awake, reporting, however long the host is silent."""
    boards = make_boards()
    boards.power_up()
    boards.ce.welded_contactors = frozenset({"pos"})
    boards.host_silent()
    boards.run_for(boards.cal["heartbeat_timeout_ms"] / 1000 + 3 * boards.cal["sleep_after_s"])
    assert boards.fw.state == BmsState.FAULT and boards.fw.contactor_fb["pos"], boards.describe()
    assert not boards.fw.asleep, "asleep with a contactor welded shut"


def test_a_parked_fault_latched_already_wakes_nobody_again(make_boards):
    """The clean firmware woke for a low cell, latched cell_uv and fell asleep again (in FAULT): the same low cell
    at the next checks wakes it no more, its DTC stored already."""
    boards = make_boards()
    boards.park()
    boards.ce.setpoint_v[3] = boards.cal["cell_uv_v"] - 0.1
    boards.run_until(lambda: boards.fault("cell_uv"), boards.cal["sleep_check_s"] + 2.0, "cell_uv latched")
    boards.run_until(lambda: boards.fw.asleep, boards.cal["sleep_after_s"] + 1.0, "asleep again in FAULT")
    boards.run_for(2 * boards.cal["sleep_check_s"] + 0.5)
    assert boards.fw.asleep and boards.fw.state == BmsState.FAULT, boards.describe()


def test_a_dark_emulator_does_not_wake_a_parked_bms(make_boards):
    """The emulator's outputs off around a sleeping BMS (the bench shut down): every cell reads 0 V, open sense
    wires to the firmware, not empty cells, and no emergency of the cells: its checks leave it asleep."""
    boards = make_boards()
    boards.park()
    boards.sender.set("CE_Control", CE_OutputEnable=0)
    boards.run_until(lambda: not boards.ce.outputs_on, 1.0, "the emulator's outputs off")
    boards.run_for(2 * boards.cal["sleep_check_s"] + 0.5)
    assert boards.fw.asleep and not boards.fw.faults, boards.describe()
