"""The reference firmware's thermal-runaway check: a cell heating faster than the pack's median cell, for the hold.

The thermistor inputs are ramped on the cell-emulator board each 10 ms task, as a heating cell's sensor would
move; the firmware takes each cell's rise over the last second, once per 100 ms slow task.
"""
from hil.protocol import BmsState
from hil.sim.bms_firmware import RUNAWAY_WINDOW_S, SLOW_TASK_S

RAMP_C_PER_S = 2.0   # twice the default criterion (thermal_runaway_rate_c_per_s = 1.0)


def test_a_cell_heating_faster_than_the_pack_is_a_runaway_after_the_hold(make_boards):
    boards = make_boards()
    boards.power_up()
    hold_s = boards.cal["thermal_runaway_hold_ms"] / 1000
    start_s = boards.t_s
    warned_s = boards.ramp_temperatures([5], RAMP_C_PER_S, 10.0, lambda: boards.warning("thermal_runaway"))
    assert warned_s is not None, f"no thermal-runaway warning with cell 6 rising 2 degC/s; {boards.describe()}"
    # The rise over the last second first reaches 1 degC half a second in, seen at the next slow task.
    assert 0.5 <= warned_s - start_s <= 0.5 + SLOW_TASK_S + 0.011, boards.describe()
    assert not boards.fault("thermal_runaway"), "an error before the hold: the warning tier is the early one"
    fault_s = boards.ramp_temperatures([5], RAMP_C_PER_S, 10.0, lambda: boards.fault("thermal_runaway"))
    assert fault_s is not None, f"no thermal-runaway error; {boards.describe()}"
    assert hold_s - 0.011 <= fault_s - warned_s <= hold_s + 0.011, (fault_s - warned_s, boards.describe())
    assert float(boards.ce.setpoint_c[5]) < boards.cal["cell_ot_c"], "flagged only at OT: no early warning"
    boards.run_until(lambda: boards.fw.state == BmsState.FAULT and not boards.closed, 0.5, "FAULT, contactors open")


def test_a_pack_heating_evenly_is_no_runaway(make_boards):
    """A hard load heats every cell of a series string alike: the median takes it out (without it, the seeded
    bug thermal_rate_absolute, test_firmware_bugs.py)."""
    boards = make_boards()
    boards.power_up()
    hold_s = boards.cal["thermal_runaway_hold_ms"] / 1000
    warned_s = boards.ramp_temperatures(slice(None), RAMP_C_PER_S, hold_s + 2.0,
                                        lambda: boards.warning("thermal_runaway"))
    assert warned_s is None, boards.describe()
    assert boards.fw.state == BmsState.NORMAL and boards.closed and not boards.fw.faults, boards.describe()


def test_a_step_in_one_reading_is_no_runaway(make_boards):
    """A sensor that jumps (a connector's glitch, a forced value) rises over the window for one second only:
    a warning meanwhile, then nothing, and no error."""
    boards = make_boards()
    boards.power_up()
    boards.ce.setpoint_c[5] = 50.0
    boards.run_until(lambda: boards.warning("thermal_runaway"), 0.2, "the warning on the step")
    boards.run_for(RUNAWAY_WINDOW_S + SLOW_TASK_S)
    assert not boards.warning("thermal_runaway"), boards.describe()
    boards.run_for(boards.cal["thermal_runaway_hold_ms"] / 1000)
    assert not boards.fault("thermal_runaway") and boards.fw.state == BmsState.NORMAL, boards.describe()


def test_the_check_starts_afresh_after_a_reboot(make_boards):
    """After a loss of the low-voltage supply the first reading is the reference: a cell that warmed while the
    BMS was dark did not rise over any second the BMS saw (RAM from before the reset would say it did)."""
    boards = make_boards()
    boards.power_up()
    boards.host.supply.answer(b"VOLT 0", boards.t_s)   # the emulated lab supply, as its SCPI sets it
    boards.run_for(1.0)
    boards.ce.setpoint_c[5] = 45.0
    boards.host.supply.answer(b"VOLT 12", boards.t_s)
    boards.run_until(lambda: boards.fw.powered and boards.fw.state == BmsState.STANDBY, 2.0, "STANDBY after the boot")
    for _ in range(round((RUNAWAY_WINDOW_S + SLOW_TASK_S) / 0.01)):   # the window RAM from before would span
        boards.step()
        assert not boards.warning("thermal_runaway") and not boards.fault("thermal_runaway"), boards.describe()
