"""What the reference firmware estimates and decides from its measurements: SOC, SOP limits, balancing,
self-discharge."""
import math

import pytest

from hil.protocol import FAULT_BITS, BmsState
from hil.sim.bms_firmware import MAIN_TASK_S, SLOW_TASK_S

# Ignores the weakest-cell (SOP) voltage limit, to see the temperature and SOC derating alone.
NO_VOLTAGE_LIMIT = "dut.calibration.cell_r_est_ohm=0.0001"


def _coulomb_soc_drop(boards, current_a: float, duration_s: float) -> float:
    boards.standby()
    soc0 = boards.fw.soc
    boards.ce.current_a = current_a
    boards.run_for(duration_s)
    return soc0 - boards.fw.soc


def test_coulomb_counting_follows_the_charge_drawn(boards):
    drop = _coulomb_soc_drop(boards, 10.0, 36.0)
    assert drop == pytest.approx(10.0 * 36.0 / 3600 / boards.cal["capacity_ah"], rel=1e-6)


def test_coulomb_counting_sees_the_current_sensor_gain_and_offset_errors(make_boards):
    boards = make_boards("dut.calibration.soc_current_gain=1.2", "dut.calibration.soc_current_offset_a=0.5")
    drop = _coulomb_soc_drop(boards, 10.0, 36.0)
    assert drop == pytest.approx((1.2 * 10.0 + 0.5) * 36.0 / 3600 / boards.cal["capacity_ah"], rel=1e-6)


def test_charging_raises_soc(boards):
    assert _coulomb_soc_drop(boards, -5.0, 36.0) == pytest.approx(-5.0 * 36.0 / 3600 / 5.0, rel=1e-6)


REST_S = 2.0


@pytest.fixture
def drifted(make_boards):
    """A 20 % high current sensor has pulled the SOC below the OCV's 0.5 by the time the current stops."""
    boards = make_boards("dut.calibration.soc_current_gain=1.2", f"dut.calibration.soc_rest_s={REST_S}")
    _coulomb_soc_drop(boards, 10.0, 36.0)
    boards.ce.current_a = 0.0
    return boards


def test_ocv_correction_after_rest(drifted):
    drifted.run_for(REST_S - 2 * MAIN_TASK_S)
    assert drifted.fw.soc < 0.49, "no correction before the rest time"
    drifted.run_for(3 * MAIN_TASK_S)
    assert drifted.fw.soc == pytest.approx(0.5, abs=1e-4), "SOC read off the OCV table after the rest"


def test_a_current_pulse_restarts_the_rest_timer(drifted):
    drifted.run_for(0.75 * REST_S)
    drifted.ce.current_a = 2 * drifted.cal["soc_rest_current_a"]
    drifted.step()
    drifted.ce.current_a = 0.0
    drifted.run_for(0.75 * REST_S)
    assert drifted.fw.soc < 0.49, "the rest was interrupted: no correction yet"


def test_current_below_the_rest_current_still_counts_as_rest(drifted):
    drifted.ce.current_a = 0.5 * drifted.cal["soc_rest_current_a"]
    drifted.run_for(REST_S + 2 * MAIN_TASK_S)
    assert drifted.fw.soc == pytest.approx(0.5, abs=1e-4)


# Each block's SOC: the pack's, plus its spread read off its own OCV -----------------------------------------

def _spread_pack(make_boards, block_socs: dict[int, float], *overrides):
    """Boards whose blocks rest at 0.5, but for `block_socs` ({block: SOC}), in STANDBY: the SOC read off the OCV."""
    boards = make_boards(*overrides)
    for block, soc in block_socs.items():
        boards.ce.setpoint_v[block] = boards.ocv_at(soc)
    boards.standby()
    return boards


def test_each_blocks_soc_is_read_off_its_ocv_and_the_ends_are_reported(make_boards):
    boards = _spread_pack(make_boards, {2: 0.3, 9: 0.7})
    assert boards.fw.soc_min == pytest.approx(0.3, abs=0.01) and boards.fw.soc_max == pytest.approx(0.7, abs=0.01)
    assert boards.fw.soc == pytest.approx(0.5, abs=0.01), "the pack's SOC is still its blocks' mean"
    boards.run_for(0.2)   # one BMS_SOC cycle
    values = boards.monitor.values
    assert values["BMS_SOC_Min"] == pytest.approx(30.0, abs=1.0) and values["BMS_SOC_Max"] == pytest.approx(70.0, abs=1.0)


def test_the_ends_are_counted_with_the_pack(make_boards):
    boards = _spread_pack(make_boards, {2: 0.3, 9: 0.7})
    spread_before = (boards.fw.soc - boards.fw.soc_min, boards.fw.soc_max - boards.fw.soc)
    drop = _coulomb_soc_drop(boards, 10.0, 36.0)
    assert drop == pytest.approx(10.0 * 36.0 / 3600 / boards.cal["capacity_ah"], rel=1e-6)
    assert (boards.fw.soc - boards.fw.soc_min, boards.fw.soc_max - boards.fw.soc) == pytest.approx(spread_before)


@pytest.mark.parametrize("block_soc,discharge_factor,charge_factor", [(0.06, 0.5, 1.0), (0.94, 1.0, 1.0)])
def test_limits_taper_with_the_block_at_the_end(make_boards, block_soc, discharge_factor, charge_factor):
    """One block near an end, the rest mid SOC: the emptiest block tapers the discharge, not the pack's mean. The
    charge tapers by the mean: the fullest cell's voltage ends it (the CV phase)."""
    boards = _spread_pack(make_boards, {5: block_soc}, NO_VOLTAGE_LIMIT)
    boards.step_slow()
    assert boards.fw.soc == pytest.approx(0.5 + (block_soc - 0.5) / boards.n_cells, abs=1e-3), "the blocks' mean"
    cal = boards.cal
    assert boards.fw.discharge_limit_a == pytest.approx(discharge_factor * cal["max_discharge_current_a"], rel=0.03)
    assert boards.fw.charge_limit_a == pytest.approx(charge_factor * cal["max_charge_current_a"], rel=0.03)


def test_a_bleeding_blocks_soc_falls_by_its_bleed(make_boards):
    """The pack's current, all that coulomb counting sees, does not flow through a bleed resistor."""
    boards = make_boards()
    boards.ce.setpoint_v[4] = boards.ocv_at(0.5) + (boards.cal["balance_threshold_mv"] + 5) / 1000
    boards.standby()
    max_before, soc_before = boards.fw.soc_max, boards.fw.soc
    boards.run_for(100.0)
    assert boards.fw.balancing[4] and boards.fw.soc == soc_before, boards.describe()
    bled_soc = boards.cal["balance_current_a"] * 100.0 / 3600 / boards.cal["capacity_ah"]
    assert max_before - boards.fw.soc_max == pytest.approx(bled_soc, rel=0.01)


def test_the_blocks_spread_survives_a_reset(make_boards):
    """After a supply cut the SOC comes back from NVM, not off the OCV (the pack is loaded, say): its spread too."""
    boards = _spread_pack(make_boards, {2: 0.3})
    soc_min = boards.fw.soc_min
    boards.run_for(1.0)
    boards.ce.setpoint_v[:] = boards.ocv_at(0.5)   # what an OCV read would now take for an even pack
    supply = boards.host.supply
    supply.answer(b"VOLT 0", boards.t_s)
    boards.run_for(0.1)
    assert not boards.fw.powered
    supply.answer(b"VOLT 12", boards.t_s)
    boards.standby()
    assert boards.fw.soc_min == pytest.approx(soc_min, abs=1e-6), boards.describe()


# SOH: the capacity between two OCV readings -------------------------------------------------------------------

def _faded(make_boards, end_soc: float = 0.4, capacity_fraction: float = 0.8):
    """A pack at `capacity_fraction` of its rated capacity, from 0.9 down to `end_soc` between two rests."""
    boards = make_boards(f"dut.calibration.soc_rest_s={REST_S}", soc0=0.9)
    boards.discharge_between_rests(end_soc, capacity_fraction, REST_S + 2 * MAIN_TASK_S)
    return boards


def test_soh_is_the_capacity_counted_between_two_ocv_readings(make_boards):
    boards = _faded(make_boards)
    assert boards.fw.soh == pytest.approx(0.8, abs=2e-3), boards.describe()
    assert boards.fw.soc == pytest.approx(0.4, abs=1e-3), "the SOC read off the second rest's OCV"
    boards.run_for(0.2)
    assert boards.monitor.values["BMS_SOH"] == pytest.approx(80.0, abs=0.3), "reported on CAN"
    drop = _coulomb_soc_drop(boards, 10.0, 36.0)
    assert drop == pytest.approx(10.0 * 36.0 / 3600 / (0.8 * boards.cal["capacity_ah"]), rel=3e-3), (
        "the SOC is counted by the capacity measured, not the rated one")


def test_ocv_readings_too_close_in_soc_leave_the_soh(make_boards):
    close = _faded(make_boards, end_soc=0.9 - 0.5 * 0.3)   # half of soh_min_delta_soc apart
    assert close.fw.soh == 1.0, close.describe()


def test_an_implausible_capacity_is_a_sensor_fault_not_an_soh(make_boards):
    """A dead current sensor counts nothing between two rests far apart: 0 % SOH would divide the counting by
    zero. The estimate is dropped, the SOH kept."""
    boards = _faded(make_boards, capacity_fraction=0.0)
    assert boards.fw.soh == 1.0 and boards.fw.soc == pytest.approx(0.4, abs=1e-3), boards.describe()


def test_soh_survives_a_reset(make_boards):
    """The estimate takes a deep discharge and two rests to make: a key cycle must not lose it."""
    boards = _faded(make_boards)
    supply = boards.host.supply
    supply.answer(b"VOLT 0", boards.t_s)
    boards.run_for(0.1)
    assert not boards.fw.powered
    supply.answer(b"VOLT 12", boards.t_s)
    boards.run_until(lambda: boards.fw.powered, 1.0, "booted again")
    assert boards.fw.soh == pytest.approx(0.8, abs=2e-3), boards.describe()


# SOP limits -------------------------------------------------------------------------------------------------

def _slow_limits(boards, slow_tasks: int) -> list[float]:
    seen = []
    for _ in range(slow_tasks):
        boards.step_slow()
        seen.append(boards.fw.discharge_limit_a)
    return seen


def test_limits_are_announced_at_once_while_the_contactors_are_open(boards):
    boards.standby()
    boards.step_slow()
    assert boards.fw.discharge_limit_a == pytest.approx(boards.cal["max_discharge_current_a"])
    assert boards.fw.charge_limit_a == pytest.approx(boards.cal["max_charge_current_a"])
    boards.run_for(0.2)  # one BMS_Limits cycle
    assert boards.monitor.values["BMS_DischargeCurrentLimit"] == pytest.approx(boards.fw.discharge_limit_a, abs=0.05)


@pytest.mark.parametrize("temperature_c,factor", [(45.0, 1.0), (52.5, 0.5), (58.5, 0.1)])
def test_limits_derate_linearly_above_the_derating_temperature(make_boards, temperature_c, factor):
    boards = make_boards(NO_VOLTAGE_LIMIT)
    boards.standby()
    boards.step_slow()
    boards.ce.setpoint_c[:] = temperature_c
    boards.step_slow()  # a limit falls at once
    cal = boards.cal
    assert boards.fw.discharge_limit_a == pytest.approx(factor * cal["max_discharge_current_a"])
    assert boards.fw.charge_limit_a == pytest.approx(factor * cal["max_charge_current_a"])


@pytest.mark.parametrize("where,fraction", [(0.5, 0.5), (0.0, 0.0), (-1.0, 0.0), (1.0, 1.0)])
def test_charge_limit_derates_towards_the_cold_charge_limit(boards, where, fraction):
    """Halfway from charge_cold_zero_c to charge_cold_full_c, half the charge current; none at zero_c and below
    (charging a cold cell plates lithium), though still far above the under-temperature threshold."""
    zero_c, full_c = boards.cal["charge_cold_zero_c"], boards.cal["charge_cold_full_c"]
    boards.ce.setpoint_c[:] = zero_c + where * (full_c - zero_c)
    boards.step_slow()
    boards.step()
    assert boards.fw.charge_limit_a == pytest.approx(fraction * boards.cal["max_charge_current_a"])
    assert not boards.fw.faults, boards.describe()


@pytest.mark.parametrize("soc,discharge_factor,charge_factor", [(0.06, 0.5, 1.0), (0.5, 1.0, 1.0),
                                                                (0.94, 1.0, 0.5), (0.99, 1.0, 0.1)])
def test_limits_taper_at_the_ends_of_soc(make_boards, soc, discharge_factor, charge_factor):
    """Near full the charge limit keeps a tenth: the fullest cell's voltage headroom ends the charge (the CV phase),
    so closely matched blocks still reach the top."""
    boards = make_boards(NO_VOLTAGE_LIMIT, soc0=soc)
    boards.standby()
    boards.step_slow()
    assert boards.fw.soc == pytest.approx(soc, abs=1e-3)
    cal = boards.cal
    assert boards.fw.discharge_limit_a == pytest.approx(discharge_factor * cal["max_discharge_current_a"], rel=0.02)
    assert boards.fw.charge_limit_a == pytest.approx(charge_factor * cal["max_charge_current_a"], rel=0.02)


def test_weakest_cell_limit_falls_at_once_and_under_load_rises_at_a_bounded_rate(boards):
    boards.power_up()
    cal = boards.cal
    headroom_v = 0.1
    boards.ce.setpoint_v[7] = cal["cell_uv_v"] + cal["sop_margin_v"] + headroom_v
    boards.step_slow()
    weak_a = headroom_v / cal["cell_r_est_ohm"]
    assert boards.fw.discharge_limit_a == pytest.approx(weak_a, rel=1e-3)
    boards.ce.setpoint_v[7] = boards.ocv_at(0.5)
    limits = _slow_limits(boards, 4)
    rise_a = cal["limit_rise_a_per_s"] * SLOW_TASK_S
    assert limits == pytest.approx([weak_a + k * rise_a for k in range(1, 5)], rel=1e-3)


def test_a_loaded_weak_cell_gets_the_current_that_brings_it_to_the_margin(boards):
    boards.standby()
    boards.step_slow()
    cal = boards.cal
    boards.ce.current_a = 8.0
    boards.ce.setpoint_v[7] = cal["cell_uv_v"] + cal["sop_margin_v"] + 0.05
    boards.step_slow()
    assert boards.fw.discharge_limit_a == pytest.approx(8.0 + 0.05 / cal["cell_r_est_ohm"], rel=1e-3)


# Balancing -------------------------------------------------------------------------------------------------

def _spread(boards, cells, above_mv):
    for cell in cells:
        boards.ce.setpoint_v[cell] = boards.ocv_at(0.5) + above_mv / 1000


def test_cells_above_the_threshold_bleed_and_the_mask_goes_out_on_can(boards):
    threshold_mv = boards.cal["balance_threshold_mv"]
    _spread(boards, [0, 7], threshold_mv + 5)
    _spread(boards, [3], threshold_mv - 5)
    boards.standby()
    boards.step_slow()
    assert list(boards.fw.balancing.nonzero()[0]) == [0, 7]
    boards.run_for(1.0)  # one BMS_BalancingMask cycle
    assert boards.monitor.values["BMS_Balancing_Cells01to48"] == 0b1000_0001
    assert boards.monitor.values["BMS_Balancing"] == 1


def test_no_balancing_under_discharge_current(boards):
    _spread(boards, [0], boards.cal["balance_threshold_mv"] + 5)
    boards.power_up()
    boards.ce.current_a = 1.0
    boards.step_slow()
    boards.step()
    assert not boards.fw.balancing.any()


def test_no_balancing_when_disabled(make_boards):
    boards = make_boards("dut.calibration.balancing_enabled=false")
    _spread(boards, [0], boards.cal["balance_threshold_mv"] + 5)
    boards.standby()
    boards.step_slow()
    boards.step()
    assert not boards.fw.balancing.any()


def test_a_bleeding_cell_is_not_switched_off_by_its_own_ir_drop(make_boards):
    """The front end reads a bled cell lower by its bleed current through its resistance: a cell just above the
    threshold keeps bleeding, instead of switching its bleed on and off every slow task."""
    boards = make_boards()
    cal = boards.cal
    ir_drop_v = cal["balance_current_a"] * cal["cell_r_est_ohm"]
    unloaded_v = boards.ce.setpoint_v.copy()
    unloaded_v[3] += cal["balance_threshold_mv"] / 1000 + ir_drop_v / 2   # above the threshold; bled, below it
    boards.standby()
    switches = 0
    for _ in range(50):
        bleeding = bool(boards.fw.balancing[3])
        boards.ce.setpoint_v[:] = unloaded_v - boards.fw.balancing * ir_drop_v
        boards.step_slow()
        switches += bool(boards.fw.balancing[3]) != bleeding
    assert boards.fw.balancing[3] and switches == 1, f"the bleed switched {switches} times in 5 s"


def test_balancing_stops_in_fault(boards):
    _spread(boards, [0], boards.cal["balance_threshold_mv"] + 5)
    boards.power_up()
    boards.step_slow()
    assert boards.fw.balancing.any()
    boards.ce.setpoint_c[2] = boards.cal["cell_ot_c"] + 1
    boards.run_until(lambda: boards.fw.state == BmsState.FAULT, 2.0, "FAULT")
    boards.step_slow()
    assert not boards.fw.balancing.any()


# Self-discharge -------------------------------------------------------------------------------------------

WINDOW_S = 1.0
SETTLE_S = 0.5   # the cells' relaxation time (soc_rest_s) the check waits out first: the board's setpoints do not relax


@pytest.mark.parametrize("leak_mv_per_window,flagged", [(0.0, False), (0.3, False), (1.0, True)])
def test_a_cell_that_sags_faster_than_the_others_at_rest_is_flagged(make_boards, leak_mv_per_window, flagged):
    boards = make_boards(f"dut.calibration.self_discharge_window_s={WINDOW_S}",
                         f"dut.calibration.soc_rest_s={SETTLE_S}")
    boards.standby()
    start_v = boards.ce.setpoint_v[9]
    tasks_per_window = round(WINDOW_S / MAIN_TASK_S)
    for task in range(4 * tasks_per_window):
        boards.ce.setpoint_v[9] = start_v - leak_mv_per_window / 1000 * task / tasks_per_window
        boards.step()
    assert boards.warning("self_discharge") == flagged, boards.describe()
    assert not boards.fw.faults
    if flagged:
        boards.step(5)
        assert boards.monitor.values["BMS_WarningBits"] >> FAULT_BITS["self_discharge"] & 1


def test_a_cell_is_judged_only_once_its_bleed_has_settled(make_boards):
    """A bleed switched on sags its cell by its polarisation over the next minutes (here seconds): the check
    waits the relaxation time (soc_rest_s) before it compares that cell again, instead of taking the sag for a
    leak."""
    settle_s = 5.0
    boards = make_boards(f"dut.calibration.self_discharge_window_s={WINDOW_S}",
                         f"dut.calibration.soc_rest_s={settle_s}")
    boards.standby()
    boards.run_for(settle_s + 3 * WINDOW_S)   # every cell settled and compared: nothing to flag
    raised_v = boards.ce.setpoint_v[5] + (boards.cal["balance_threshold_mv"] + 10) / 1000
    tau_s, sag_v = settle_s / 5, 0.004
    for task in range(round((settle_s + 4 * WINDOW_S) / MAIN_TASK_S)):
        boards.ce.setpoint_v[5] = raised_v - sag_v * (1 - math.exp(-task * MAIN_TASK_S / tau_s))
        boards.step()
    assert boards.fw.balancing[5], "the raised cell bleeds"
    assert not boards.warning("self_discharge"), boards.describe()
