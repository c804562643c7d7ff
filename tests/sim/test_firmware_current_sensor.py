"""The reference firmware's current-sensor plausibility check, at the board's inputs, one main task at a time.

In NORMAL, each task compares the current step the sensor reports over the last `current_plausibility_window_ms`
with the step the median cell's voltage made, through `cell_r_est_ohm`: a step either way above
`current_plausibility_mv` must show in both, with the same sign, within a factor of ten. With every contactor open
(STANDBY, FAULT, SAFE) nothing flows: a reading beyond `current_offset_max_a` either way, for
`current_offset_debounce_ms`, is an offset.
"""
import pytest

from hil.protocol import BmsState
from hil.sim.bms_firmware import MAIN_TASK_S

ON = "dut.calibration.current_plausibility_enabled=true"
OFFSET_ON = "dut.calibration.current_offset_enabled=true"
LOAD_A = 10.0


@pytest.fixture
def checked(make_boards):
    """The boards with the check on, in NORMAL with the contactors closed, nothing flowing."""
    boards = make_boards(ON)
    boards.power_up()
    boards.run_for(0.5)   # a full window of rest behind it
    return boards


def _tasks(boards, key: str) -> int:
    return round(boards.cal[key] / 1000 / MAIN_TASK_S)


def _load(boards, current_a: float, drop_factor: float = 1.0) -> None:
    """`current_a` through the sensor and every cell lower by `drop_factor` times its IR drop as the firmware
    estimates it (cell_r_est_ohm): a sound sensor, whose step the cells show."""
    boards.ce.current_a = current_a
    boards.ce.setpoint_v[:] -= current_a * boards.cal["cell_r_est_ohm"] * drop_factor


def _held(boards, tasks: int) -> bool:
    """Whether a current_sensor error came within `tasks` main tasks."""
    for _ in range(tasks):
        boards.step()
        if boards.fault("current_sensor"):
            return True
    return False


@pytest.mark.parametrize("drop_factor", [0.2, 1.0, 4.0, 9.0])
def test_a_sound_sensor_whose_step_the_cells_show_does_not_trip(checked, drop_factor):
    """A tenth to ten times the estimated IR drop is agreement: a cold pack's resistance is four times its warm
    one, an aged pack's more, and the estimate is a 10 s figure. (A current whose drop stays above UV.)"""
    current_a = min(LOAD_A, 0.5 / (checked.cal["cell_r_est_ohm"] * drop_factor))
    _load(checked, current_a, drop_factor)
    checked.run_for(1.0)
    _load(checked, -current_a, drop_factor)   # back to rest
    checked.run_for(1.0)
    assert not checked.fw.faults and checked.closed, checked.describe()


def test_a_sensor_that_drops_to_zero_under_load_trips_on_the_debounce_task(checked):
    _load(checked, LOAD_A)
    checked.run_for(1.0)
    checked.ce.current_a = 0.0   # dead: the cells still carry the load
    n = _tasks(checked, "current_plausibility_debounce_ms")
    checked.step(n - 1)
    assert not checked.fault("current_sensor") and checked.fw.state == BmsState.NORMAL, checked.describe()
    checked.step()
    assert checked.fault("current_sensor") and checked.fw.state == BmsState.FAULT, checked.describe()
    assert not any(checked.fw.contactor_cmd.values()), "a fault must command every contactor open"


def test_a_load_step_that_a_frozen_sensor_misses_trips(checked):
    checked.ce.setpoint_v[:] -= LOAD_A * checked.cal["cell_r_est_ohm"]   # the cells carry it; the sensor reads 0
    assert _held(checked, _tasks(checked, "current_plausibility_debounce_ms")), checked.describe()


def test_a_reversed_sensor_trips(checked):
    """Wired the wrong way round, it reads a discharge as a charge: the cells fall as it says they should rise."""
    _load(checked, LOAD_A)
    checked.ce.current_a = -LOAD_A
    assert _held(checked, _tasks(checked, "current_plausibility_debounce_ms")), checked.describe()


def test_steps_below_the_threshold_are_not_judged(checked):
    """Neither the cells' step nor the sensor's is large enough to judge: a sensor off by a small step passes."""
    small_v = 0.9 * checked.cal["current_plausibility_mv"] / 1000
    checked.ce.current_a = small_v / checked.cal["cell_r_est_ohm"]   # a step whose drop the cells do not show
    checked.run_for(1.0)
    checked.ce.setpoint_v[:] -= small_v   # and a drop with no step
    checked.run_for(1.0)
    assert not checked.fw.faults, checked.describe()


def test_the_skew_between_the_two_readings_is_ridden_through(checked):
    """The cells and the sensor are read over different paths (here the cells two tasks before the current):
    for those tasks they disagree, less than the debounce."""
    checked.ce.setpoint_v[:] -= LOAD_A * checked.cal["cell_r_est_ohm"]
    checked.step(2)
    checked.ce.current_a = LOAD_A
    checked.run_for(1.0)
    assert not checked.fw.faults, checked.describe()


def test_one_cell_stepping_alone_is_not_the_current(checked):
    """A single cell forced by the bench or with an open sense wire moves the median cell by nothing."""
    checked.ce.setpoint_v[3] -= 0.6   # the pack's mean cell would move by 37.5 mV
    checked.run_for(1.0)
    assert not checked.fault("current_sensor"), checked.describe()


def test_judged_in_normal_only_and_afresh_after_the_close(make_boards):
    """Outside NORMAL no load flows and the cells may step by themselves (outputs on, a bench forcing them); the
    window starts again at the close, so a rest before it is not compared with the load after."""
    boards = make_boards(ON)
    boards.standby()
    boards.ce.setpoint_v[:] -= 0.3   # every cell, no current: in STANDBY, not judged
    boards.run_for(1.0)
    assert not boards.fw.faults and boards.fw.state == BmsState.STANDBY, boards.describe()
    boards.request("discharge")
    boards.run_until(lambda: boards.fw.state == BmsState.NORMAL and boards.closed, 2.0, "NORMAL, contactors closed")
    _load(boards, LOAD_A)
    boards.run_for(1.0)
    assert not boards.fw.faults, boards.describe()


def test_off_by_calibration(make_boards):
    boards = make_boards()   # the fixture's default: the check off
    boards.power_up()
    boards.ce.current_a = LOAD_A
    boards.run_for(1.0)
    assert not boards.fault("current_sensor"), boards.describe()


@pytest.fixture
def at_rest(make_boards):
    """The boards with the offset check on, in STANDBY: every contactor open, nothing flowing."""
    boards = make_boards(OFFSET_ON)
    boards.standby()
    return boards


@pytest.mark.parametrize("sign", [1, -1], ids=["reads_discharge", "reads_charge"])
def test_an_offset_beyond_the_limit_trips_on_the_debounce_task(at_rest, sign):
    at_rest.ce.current_a = sign * (at_rest.cal["current_offset_max_a"] + 0.01)
    n = _tasks(at_rest, "current_offset_debounce_ms")
    at_rest.step(n - 1)
    assert not at_rest.fault("current_sensor"), at_rest.describe()
    at_rest.step()
    assert at_rest.fault("current_sensor") and at_rest.fw.state == BmsState.FAULT, at_rest.describe()


@pytest.mark.parametrize("sign", [1, -1], ids=["reads_discharge", "reads_charge"])
def test_an_offset_within_the_limit_passes(at_rest, sign):
    at_rest.ce.current_a = sign * (at_rest.cal["current_offset_max_a"] - 0.01)
    at_rest.run_for(2.0)
    assert not at_rest.fw.faults and at_rest.fw.state == BmsState.STANDBY, at_rest.describe()


def test_nothing_closes_while_the_sensor_reads_an_offset(at_rest):
    """A close request before the offset's error has debounced (a host that asks at once after power-up) waits;
    the error then comes, and nothing has closed."""
    at_rest.ce.current_a = -1.0
    at_rest.step()
    at_rest.request("discharge")
    for _ in range(_tasks(at_rest, "current_offset_debounce_ms") + 5):
        at_rest.step()
        assert not any(at_rest.fw.contactor_cmd.values()), at_rest.describe()
    assert at_rest.fault("current_sensor"), at_rest.describe()


def test_a_reading_that_returns_within_the_debounce_is_ridden_through(at_rest):
    """A load that takes a few tasks to stop once the contactors open reads, those tasks, as an offset would."""
    at_rest.ce.current_a = LOAD_A
    at_rest.step(_tasks(at_rest, "current_offset_debounce_ms") - 1)
    at_rest.ce.current_a = 0.0
    at_rest.run_for(1.0)
    assert not at_rest.fw.faults, at_rest.describe()


def test_the_fault_holds_while_the_offset_lasts(at_rest):
    """Judged in FAULT too: a clear request while the sensor still reads off is refused; once it reads zero for a
    task, the next one clears, and the BMS closes again."""
    at_rest.ce.current_a = -1.0
    at_rest.run_for(0.5)
    at_rest.clear_faults()
    at_rest.run_for(0.1)
    assert at_rest.fw.state == BmsState.FAULT and at_rest.fault("current_sensor"), at_rest.describe()
    at_rest.ce.current_a = 0.0
    at_rest.run_for(0.1)
    at_rest.clear_faults()
    at_rest.power_up()
    assert not at_rest.fw.faults, at_rest.describe()


def test_not_judged_while_a_contactor_may_carry_current(make_boards):
    """In NORMAL the load is what flows; a contactor welded shut keeps a path open after the BMS opened the rest,
    so its current is no offset either (the weld is its own fault)."""
    boards = make_boards(OFFSET_ON)
    boards.power_up()
    boards.ce.current_a = LOAD_A
    boards.run_for(1.0)
    assert not boards.fw.faults, boards.describe()
    boards.ce.welded_contactors = frozenset({"pos"})
    boards.request("standby")
    boards.run_for(1.0 + boards.cal["open_wait_ms"] / 1000)   # the load flows on: the BMS opens once it has waited
    assert boards.fault("contactor") and not boards.fault("current_sensor"), boards.describe()


def test_the_offset_check_is_off_by_calibration(make_boards):
    boards = make_boards()   # the fixture's default: the check off
    boards.standby()
    boards.ce.current_a = 2.0
    boards.run_for(1.0)
    assert not boards.fw.faults, boards.describe()


ZERO_ON = "dut.calibration.current_zero_enabled=true"


@pytest.fixture
def zeroing(make_boards):
    """The boards with the auto-zero on, in STANDBY: every contactor open, nothing flowing."""
    boards = make_boards(ZERO_ON, OFFSET_ON)
    boards.standby()
    return boards


def _window_tasks(boards) -> int:
    return _tasks(boards, "current_zero_window_ms")


def test_a_zero_learned_at_rest_is_taken_off_every_reading_after(zeroing):
    zeroing.ce.current_a = 0.3   # within current_offset_max_a: an offset the sensor may have
    zeroing.step(_window_tasks(zeroing) + 1)
    assert zeroing.fw.current_zero_a == pytest.approx(0.3) and zeroing.fw.nvm["current_zero_a"] == pytest.approx(0.3)
    assert zeroing.fw.current_a == pytest.approx(0.0)
    zeroing.ce.current_a = 0.305   # learned again each window; written to the flash only when it moved further
    zeroing.step(_window_tasks(zeroing))
    assert zeroing.fw.current_zero_a == pytest.approx(0.305, abs=1e-3)
    assert zeroing.fw.nvm["current_zero_a"] == pytest.approx(0.3), "within ZERO_NVM_STEP_A: not written"
    zeroing.ce.current_a = 0.3
    zeroing.step(_window_tasks(zeroing))
    zeroing.power_up()
    zeroing.ce.current_a = LOAD_A + 0.3   # the load, read through the same offset
    zeroing.step(2)
    assert zeroing.fw.current_a == pytest.approx(LOAD_A, abs=1e-3)
    assert zeroing.fw.current_zero_a == pytest.approx(0.3, abs=1e-3)


def test_no_zero_from_a_reading_beyond_the_limit_nor_with_a_contactor_closed(zeroing):
    zeroing.ce.current_a = zeroing.cal["current_offset_max_a"] + 0.1   # an offset the BMS reports, not learns
    zeroing.step(_window_tasks(zeroing) + 1)
    assert zeroing.fw.current_zero_a == 0.0 and zeroing.fault("current_sensor")
    zeroing.ce.current_a = 0.0
    zeroing.step()
    zeroing.clear_faults()
    zeroing.power_up()
    zeroing.ce.current_a = 0.3   # a load's current with the contactors closed is no zero
    zeroing.run_for(2.0)
    assert zeroing.fw.current_zero_a == 0.0 and zeroing.fw.current_a == pytest.approx(0.3)


def test_a_window_broken_by_a_larger_reading_starts_again(zeroing):
    zeroing.ce.current_a = 0.3
    zeroing.step(_window_tasks(zeroing) - 1)
    zeroing.ce.current_a = 2.0   # a load still running down, one task
    zeroing.step()
    zeroing.ce.current_a = 0.2
    zeroing.step(_window_tasks(zeroing) - 1)
    assert zeroing.fw.current_zero_a == 0.0, "no window has been whole yet"
    zeroing.step()
    assert zeroing.fw.current_zero_a == pytest.approx(0.2), "the whole window after the break, and only it"


def test_the_zero_is_kept_across_a_reset(zeroing):
    zeroing.ce.current_a = -0.25
    zeroing.step(_window_tasks(zeroing) + 1)
    zeroing.fw.supply(0.0, zeroing.t_s)   # the low-voltage supply lost: the MCU resets
    zeroing.fw.supply(12.0, zeroing.t_s)
    zeroing.run_until(lambda: zeroing.fw.powered, 1.0, "booted again")
    assert zeroing.fw.current_zero_a == pytest.approx(-0.25)


def test_auto_zero_off_by_calibration(make_boards):
    boards = make_boards(OFFSET_ON)   # the fixture's default: the auto-zero off
    boards.standby()
    boards.ce.current_a = 0.3
    boards.run_for(2.0)
    assert boards.fw.current_zero_a == 0.0 and boards.fw.current_a == pytest.approx(0.3)
