"""The emulated cell-emulator board, driven over CAN by the harness's own driver (`hil.devices.cell_emulator`)."""
import can
import numpy as np
import pytest

from hil.sim.bms_firmware import MAIN_TASK_S
from hil.sim.cell_emulator_board import WATCHDOG_S, CellEmulatorBoard


@pytest.fixture
def driver(boards):
    from hil.devices.cell_emulator import CellEmulator
    driver = CellEmulator(boards._host_bus, boards.monitor.db, boards.sender, boards.monitor, boards.ce.n_channels)
    driver.enable(True)  # the driver schedules its own CE_Control heartbeat, outputs off
    return driver


def test_setpoints_arrive_through_every_multiplexed_frame(boards, driver):
    voltages = np.linspace(3.0, 4.1, boards.ce.n_channels)
    driver.set_cells(voltages)
    driver.set_temperatures(np.linspace(10.0, 40.0, boards.ce.n_channels))
    driver.set_current(-3.25)
    boards.step()
    assert boards.ce.cell_voltage_v() == pytest.approx(voltages, abs=0.00025)  # 0.5 mV resolution
    assert boards.ce.thermistor_c() == pytest.approx(np.linspace(10.0, 40.0, boards.ce.n_channels), abs=0.25)
    assert boards.ce.shunt_current_a() == pytest.approx(-3.25)


def test_outputs_follow_the_heartbeats_enable_and_are_reported(boards, driver):
    boards.step()
    assert boards.ce.outputs_on
    driver.enable(False)
    boards.run_for(0.2)
    assert not boards.ce.outputs_on and not boards.ce.cell_voltage_v().any() and boards.ce.shunt_current_a() == 0
    assert driver.outputs_on is False and not driver.watchdog_tripped


def test_watchdog_turns_outputs_off_just_after_500_ms_of_silence(boards, driver):
    boards.step()
    boards.sender.stop("CE_Control")
    last_s = boards.sender.last_sent_s("CE_Control")
    boards.run_until(lambda: boards.t_s >= last_s + WATCHDOG_S, 1.0, "watchdog time")
    boards.step()  # the task at exactly 500 ms since the last heartbeat
    assert boards.ce.outputs_on, "not before the watchdog time has passed"
    boards.step()
    assert not boards.ce.outputs_on and boards.ce.watchdog_tripped
    boards.run_for(0.2)
    assert driver.watchdog_tripped and driver.outputs_on is False


def test_a_new_enable_after_a_watchdog_trip_clears_it(boards, driver):
    boards.step()
    boards.sender.stop("CE_Control")
    boards.run_for(1.0)
    assert boards.ce.watchdog_tripped
    boards.sender.start("CE_Control", boards.t_s)
    boards.step()
    assert boards.ce.outputs_on and not boards.ce.watchdog_tripped


@pytest.mark.parametrize("relay", ["open_wire", "short"])
def test_sense_wire_relays_zero_one_channel(boards, driver, relay):
    boards.step()
    driver.set_relay(4, **{relay: True})
    boards.step()
    v = boards.ce.cell_voltage_v()
    assert v[4] == 0 and np.all(np.delete(v, 4) > 3)
    driver.set_relay(4)
    boards.step()
    assert boards.ce.cell_voltage_v()[4] > 3


@pytest.mark.parametrize("relay,reading_c", [("thermistor_open", -273.0), ("thermistor_short", 300.0)])
def test_thermistor_relays_read_as_the_extremes(boards, driver, relay, reading_c):
    driver.set_relay(2, **{relay: True})
    boards.step()
    assert boards.ce.thermistor_c()[2] == reading_c
    boards.run_for(0.2)
    assert boards.monitor.values["CE_FaultRelayCount"] == 1


def test_garbled_and_out_of_range_frames_are_ignored(boards):
    relay_id = boards.monitor.db.get_message_by_name("CE_FaultRelay").frame_id
    boards._host_bus.send(can.Message(arbitration_id=relay_id, data=bytes([200, 1, 0, 0, 0, 0, 0, 0]),
                                      is_extended_id=False))
    boards._host_bus.send(can.Message(arbitration_id=relay_id, data=b"\x01", is_extended_id=False))
    boards.step()
    assert not boards.ce.open_wire.any()


def test_board_without_a_host_keeps_outputs_off(boards):
    board = CellEmulatorBoard(4, boards.monitor.db, boards.sender)
    board.tick(10 * MAIN_TASK_S)
    assert not board.outputs_on and not board.cell_voltage_v().any()


def test_the_watchdog_opens_the_high_voltage_fault_relays_too(boards, driver):
    """A dead harness must not leave a contactor welded shut or held open, the pack tied to chassis, nor the
    BMS's interlock loop open: the watchdog releases them with the outputs, and the status frame counts them
    while they are in."""
    boards.step()
    driver.set_contactor_weld("pos")
    driver.set_contactor_stuck_open("neg")
    driver.set_dc_link_short(True)
    driver.set_insulation_fault(10_000.0)
    driver.set_hvil_open(True)
    driver.set_afe_link_open(True)
    boards.run_for(0.2)
    assert boards.ce.welded_contactors == {"pos"} and boards.ce.insulation_ohm() == 10_000.0
    assert boards.ce.stuck_open_contactors == {"neg"} and boards.ce.dc_link_shorted and boards.ce.hvil_open
    assert boards.ce.afe_link_open and boards.monitor.values["CE_FaultRelayCount"] == 6
    boards.sender.stop("CE_Control")
    boards.run_for(2 * WATCHDOG_S)
    assert boards.ce.watchdog_tripped and not boards.ce.welded_contactors and not boards.ce.stuck_open_contactors
    assert not boards.ce.dc_link_shorted and not boards.ce.hvil_open and not boards.ce.afe_link_open
    assert boards.ce.insulation_ohm() == float("inf") and boards.monitor.values["CE_FaultRelayCount"] == 0


def test_outputs_off_releases_the_high_voltage_fault_relays(boards, driver):
    """The safe state's last step (outputs off) leaves no contactor welded or held open, no pack tied to chassis
    and no interlock loop open, as the DBC's comments on those frames promise, without waiting for the watchdog."""
    boards.step()
    driver.set_contactor_weld("neg")
    driver.set_contactor_stuck_open("pos")
    driver.set_dc_link_short(True)
    driver.set_insulation_fault(10_000.0)
    driver.set_hvil_open(True)
    driver.set_afe_link_open(True)
    driver.enable(True)
    boards.run_for(0.2)
    assert boards.monitor.values["CE_FaultRelayCount"] == 6
    driver.enable(False)
    boards.run_for(0.2)
    assert not boards.ce.welded_contactors and not boards.ce.stuck_open_contactors and not boards.ce.watchdog_tripped
    assert not boards.ce.dc_link_shorted and not boards.ce.hvil_open and not boards.ce.afe_link_open
    assert boards.ce.insulation_fault_ohm == float("inf") and boards.monitor.values["CE_FaultRelayCount"] == 0
