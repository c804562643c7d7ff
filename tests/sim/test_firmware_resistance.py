"""The reference firmware's block-resistance diagnosis, at the board's inputs, one main task at a time.

In NORMAL, each load step of at least `resistance_step_min_a` (the current steady before and after it) adds each
block's voltage step times the current step to a least-squares estimate of the block's resistance. After
`resistance_steps` steps, a block above `resistance_ratio_max` times the median block's is suspect; the same block
in two estimates in a row is flagged (BMS_Diagnosis) and the current limits fall by its ratio, until the faults are
cleared.
"""
import numpy as np
import pytest

from hil.protocol import BmsState

LOAD_A = 10.0
HOLD_TASKS = 20   # 0.2 s at each level: the current steady well before and after each step
WEAK = 5


@pytest.fixture
def loaded(boards):
    boards.power_up()
    boards.run_for(1.0)
    return boards


def _drops(boards, weak: dict[int, float]) -> np.ndarray:
    """Each cell's IR drop per amp: the firmware's cell_r_est_ohm, times a factor for the blocks in `weak`."""
    per_a = np.full(boards.n_cells, boards.cal["cell_r_est_ohm"])
    for block, factor in weak.items():
        per_a[block] *= factor
    return per_a


def _load_steps(boards, steps: int, weak: dict[int, float], *, cells_lead=None, step_a: float = LOAD_A) -> None:
    """`steps` load steps (on if off, off if on), each cell's voltage following the current through its
    resistance. `cells_lead` (a slice of cells) step one task before the current does, as the bench's cell frames,
    spread over the setpoint period, can reach the front end before its current frame."""
    per_a = _drops(boards, weak)
    rest_v = boards.ce.setpoint_v + boards.ce.current_a * per_a
    for _ in range(steps):
        current_a = step_a if boards.ce.current_a == 0.0 else 0.0
        target_v = rest_v - current_a * per_a
        if cells_lead is not None:
            boards.ce.setpoint_v[cells_lead] = target_v[cells_lead]
            boards.step()
        boards.ce.current_a = current_a
        boards.ce.setpoint_v[:] = target_v
        boards.step(HOLD_TASKS)


def _estimate_steps(boards) -> int:
    return round(boards.cal["resistance_steps"])


def test_a_block_that_sags_more_is_flagged_after_two_estimates(loaded):
    steps = _estimate_steps(loaded)
    _load_steps(loaded, 2 * steps - 1, {WEAK: 1.5})
    assert loaded.fw.high_resistance_block is None, "one estimate suspects; the second must confirm"
    _load_steps(loaded, 1, {WEAK: 1.5})
    assert loaded.fw.high_resistance_block == WEAK and loaded.fw.block_resistance_ratio == pytest.approx(1.5, abs=0.01)
    loaded.run_for(1.1)   # a BMS_Diagnosis cycle
    values = loaded.monitor.values
    assert values["BMS_HighResistanceBlock"] == WEAK + 1 and values["BMS_BlockResistanceRatio"] == pytest.approx(1.5)
    assert loaded.fw.state == BmsState.NORMAL and loaded.closed and not loaded.fw.faults, "a warning, not a trip"


def test_a_spread_within_the_ratio_is_not_flagged(loaded):
    inside = loaded.cal["resistance_ratio_max"] - 0.03
    _load_steps(loaded, 4 * _estimate_steps(loaded), {WEAK: inside, 2: 0.9})
    assert loaded.fw.high_resistance_block is None and loaded.fw._r_steps == 0, "four estimates made, none flagged"


def test_two_estimates_that_suspect_different_blocks_flag_none(loaded):
    steps = _estimate_steps(loaded)
    _load_steps(loaded, steps, {WEAK: 1.5})
    _load_steps(loaded, steps, {WEAK + 1: 1.5})
    assert loaded.fw.high_resistance_block is None


def test_a_block_whose_cells_reach_the_front_end_before_the_current_is_judged_on_its_whole_step(loaded):
    """The weak block's cells (and their frame's neighbours) step a task before the current: the newer of the two
    steady readings before a step then holds the step already, which would hide it. The older one does not."""
    _load_steps(loaded, 2 * _estimate_steps(loaded), {WEAK: 1.5}, cells_lead=slice(4, 8))
    assert loaded.fw.high_resistance_block == WEAK and loaded.fw.block_resistance_ratio == pytest.approx(1.5, abs=0.01)


def test_small_steps_and_ramps_are_not_counted(loaded):
    _load_steps(loaded, 6, {WEAK: 2.0}, step_a=0.9 * loaded.cal["resistance_step_min_a"])
    assert loaded.fw._r_steps == 0, "steps below resistance_step_min_a"
    per_task_a = 0.2 * loaded.cal["resistance_step_min_a"]   # moving by more than the steady band every task
    per_a = _drops(loaded, {WEAK: 2.0})
    rest_v = loaded.ce.setpoint_v.copy()
    for k in range(1, 30):
        loaded.ce.current_a = k * per_task_a
        loaded.ce.setpoint_v[:] = rest_v - loaded.ce.current_a * per_a
        loaded.step()
    assert loaded.fw._r_steps == 0, "a ramp has no steady reading on either side of a step"


def test_the_limits_fall_by_the_ratio_and_the_flag_holds_until_cleared(loaded):
    loaded.run_for(3.0)   # the limits at their full values
    discharge_a, charge_a = loaded.fw.discharge_limit_a, loaded.fw.charge_limit_a
    _load_steps(loaded, 2 * _estimate_steps(loaded), {WEAK: 1.6})
    loaded.run_for(1.0)
    ratio = loaded.fw.block_resistance_ratio
    assert ratio == pytest.approx(1.6, abs=0.01)
    assert loaded.fw.discharge_limit_a == pytest.approx(discharge_a / ratio)
    assert loaded.fw.charge_limit_a == pytest.approx(charge_a / ratio)
    _load_steps(loaded, 2 * _estimate_steps(loaded), {})   # the block as good as the others again (busbar tightened)
    assert loaded.fw.high_resistance_block == WEAK, "latched: the service tool sees what was found"
    loaded.ce.setpoint_v[0] = loaded.cal["cell_ov_v"] + 0.05   # a fault, then a clear once it is gone
    loaded.run_until(lambda: loaded.fw.state == BmsState.FAULT, 1.0, "FAULT")
    loaded.ce.setpoint_v[0] = loaded.ce.setpoint_v[1]
    loaded.step()
    loaded.clear_faults()
    loaded.run_until(lambda: loaded.fw.state == BmsState.STANDBY, 1.0, "STANDBY after the clear")
    assert loaded.fw.high_resistance_block is None and loaded.fw.block_resistance_ratio == 0.0


def test_off_by_calibration(make_boards):
    boards = make_boards("dut.calibration.resistance_check_enabled=false")
    boards.power_up()
    _load_steps(boards, 2 * _estimate_steps(boards), {WEAK: 2.0})
    assert boards.fw.high_resistance_block is None and boards.fw._r_steps == 0
