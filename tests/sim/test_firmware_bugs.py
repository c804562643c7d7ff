"""Each seeded bug changes the firmware's behaviour the way its BUGS description says, and only when on.

Every test runs one scenario on the clean firmware and on the firmware with the bug, and asserts both.
"""
import itertools
import math
import sys

import numpy as np
import pytest

from hil.can import e2e
from hil.protocol import (DTC_LATCHED_STATUS, DTC_TEST_FAILED, DTCS, SNAPSHOT_FIRST, SNAPSHOT_LATEST, BmsState,
                          ModeRequest, reference_security_key)
from hil.model.cell import GAS_CONSTANT_J_PER_MOL_K
from hil.sim.bms_firmware import BUGGY_RESET_V, BUGS, PEAK_LIMIT_FACTOR, SWITCHING_CHECK_S
from hil.sim.uds_server import S3_SERVER_S

from .test_firmware_protections import _cell, _restore_cell


def _both(make_boards, bug, *overrides, **kwargs):
    return make_boards(*overrides, **kwargs), make_boards(*overrides, bugs=[bug], **kwargs)


def _over_ov(boards, channel):
    boards.power_up()
    boards.ce.setpoint_v[channel] = boards.cal["cell_ov_v"] + 0.01
    boards.run_for(2 * boards.cal["ov_debounce_ms"] / 1000)


def test_bug_ov_off_by_one(make_boards):
    clean, buggy = _both(make_boards, "ov_off_by_one")
    for boards in (clean, buggy):
        _over_ov(boards, boards.n_cells - 1)
    assert clean.fault("cell_ov") and not buggy.fault("cell_ov"), "the bug ignores the last cell"
    other = make_boards(bugs=["ov_off_by_one"])
    _over_ov(other, other.n_cells - 2)
    assert other.fault("cell_ov"), "every other cell is still checked"


def _excursions(boards, debounce_key: str, out, back) -> None:
    """From NORMAL, three excursions (`out(boards)`), each half the debounce `debounce_key` long, each followed by
    as long back (`back(boards)`): a counter that resets rides through them, one that never does adds them up."""
    boards.power_up()
    half_s = boards.cal[debounce_key] / 2000
    for _ in range(3):
        out(boards)
        boards.run_for(half_s)
        back(boards)
        boards.run_for(half_s)


def test_bug_ov_debounce_no_reset(make_boards):
    clean, buggy = _both(make_boards, "ov_debounce_no_reset")
    for boards in (clean, buggy):
        _excursions(boards, "ov_debounce_ms", _cell(2, 0.01, "cell_ov_v"), _restore_cell(2))
    assert not clean.fault("cell_ov"), clean.describe()
    assert buggy.fault("cell_ov"), "short spikes add up when the counter never resets"


def test_bug_uv_debounce_no_reset(make_boards):
    """Three dips below the UV trip, each half the debounce, under a 20 A load: the clean firmware rides through,
    the bug's adds them up."""
    clean, buggy = _both(make_boards, "uv_debounce_no_reset")
    for boards in (clean, buggy):
        boards.ce.current_a = 20.0
        _excursions(boards, "uv_debounce_ms", _cell(2, -0.05, "cell_uv_v"), _restore_cell(2))
    assert not clean.fault("cell_uv") and clean.closed, clean.describe()
    assert buggy.fault("cell_uv") and not buggy.closed, "short dips add up when the counter never resets"


def test_bug_oc_discharge_ignored(make_boards):
    clean, buggy = _both(make_boards, "oc_discharge_ignored")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = boards.cal["discharge_oc_a"] + 5
        boards.run_for(2 * boards.cal["oc_debounce_ms"] / 1000)
    assert clean.fault("discharge_oc") and not buggy.fault("discharge_oc")
    assert buggy.fw.state == BmsState.NORMAL and buggy.closed


def test_bug_short_circuit_debounced_as_oc(make_boards):
    """A short held for half the over-current debounce: cut by the clean firmware, not yet by the bug's."""
    clean, buggy = _both(make_boards, "short_circuit_debounced_as_oc")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = boards.cal["short_circuit_a"] + 5
        boards.run_for(boards.cal["oc_debounce_ms"] / 2000)
    assert clean.fault("short_circuit") and clean.fw.state == BmsState.FAULT, clean.describe()
    assert not buggy.fw.faults and buggy.fw.state == BmsState.NORMAL, buggy.describe()


def _between_oc_levels_a(cal) -> float:
    """A discharge current above the long-delay level and below the peak one."""
    return (cal["sustained_oc_a"] + cal["discharge_oc_a"]) / 2


def test_bug_sustained_oc_no_reset(make_boards):
    """Three bursts between the two over-current levels, each half the long delay, with rests between: the clean
    firmware rides through, the bug's adds them up."""
    clean, buggy = _both(make_boards, "sustained_oc_no_reset")
    for boards in (clean, buggy):
        _excursions(boards, "sustained_oc_debounce_ms",
                    lambda b: setattr(b.ce, "current_a", _between_oc_levels_a(b.cal)),
                    lambda b: setattr(b.ce, "current_a", 5.0))
    assert not clean.fw.faults and clean.closed, clean.describe()
    assert buggy.fault("discharge_oc") and not buggy.closed, "bursts add up when the counter never resets"


def test_bug_oc_warning_at_peak_level_only(make_boards):
    """A current just above the long-delay level: the clean firmware warns at once, the bug's not before the cut."""
    clean, buggy = _both(make_boards, "oc_warning_at_peak_level_only")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = boards.cal["sustained_oc_a"] + 0.5
        boards.step()
    assert clean.warning("discharge_oc") and not clean.fw.faults, clean.describe()
    assert not buggy.warning("discharge_oc"), buggy.describe()
    buggy.run_for(buggy.cal["sustained_oc_debounce_ms"] / 1000)
    assert buggy.fault("discharge_oc") and not buggy.warning("discharge_oc"), "cut with no warning first"


def test_bug_sustained_oc_in_slow_task(make_boards):
    """A current between the two levels held twice the long delay: cut by the clean firmware, not by the bug's."""
    clean, buggy = _both(make_boards, "sustained_oc_in_slow_task")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = _between_oc_levels_a(boards.cal)
        boards.run_for(2 * boards.cal["sustained_oc_debounce_ms"] / 1000)
    assert clean.fault("discharge_oc") and not clean.closed, clean.describe()
    assert not buggy.fw.faults and buggy.closed, buggy.describe()


def test_bug_soc_wrong_sign(make_boards):
    clean, buggy = _both(make_boards, "soc_wrong_sign")
    for boards in (clean, buggy):
        boards.standby()
        boards.ce.current_a = 10.0
        boards.run_for(10.0)
    assert clean.fw.soc < 0.5 < buggy.fw.soc, (clean.fw.soc, buggy.fw.soc)


def test_bug_soc_spread_ignored(make_boards):
    """One block near empty, the rest mid SOC: the clean firmware reports that block's SOC as the lowest and
    tapers its discharge limit by it; the bug reports the mean and allows full current."""
    clean, buggy = _both(make_boards, "soc_spread_ignored", "dut.calibration.cell_r_est_ohm=0.0001")  # no SOP
    for boards in (clean, buggy):
        boards.ce.setpoint_v[5] = boards.ocv_at(0.06)
        boards.standby()
        boards.run_for(0.2)
    full_a = clean.cal["max_discharge_current_a"]
    assert clean.monitor.values["BMS_SOC_Min"] == pytest.approx(6.0, abs=0.5), clean.describe()
    assert clean.fw.discharge_limit_a == pytest.approx(0.5 * full_a, rel=0.03)
    assert buggy.monitor.values["BMS_SOC_Min"] == pytest.approx(buggy.monitor.values["BMS_SOC"], abs=0.5)
    assert buggy.fw.discharge_limit_a == pytest.approx(full_a), "the bug tapers by the mean, far from empty"


def test_bug_fault_not_latched(make_boards):
    clean, buggy = _both(make_boards, "fault_not_latched")
    for boards in (clean, buggy):
        _over_ov(boards, 3)
        assert boards.fw.state == BmsState.FAULT
        boards.ce.setpoint_v[3] = boards.ocv_at(0.5)
        boards.request("standby")
        boards.run_for(0.5)
    assert clean.fw.state == BmsState.FAULT and clean.fault("cell_ov")
    assert buggy.fw.state == BmsState.STANDBY and buggy.fw.faults == 0, "the bug leaves FAULT without a clear"


def _silent_host_in(boards, mode):
    boards.power_up(mode)
    boards.host_silent()
    boards.run_for(3 * boards.cal["heartbeat_timeout_ms"] / 1000)


def test_bug_heartbeat_ignored_charge(make_boards):
    clean, buggy = _both(make_boards, "heartbeat_ignored_charge")
    for boards in (clean, buggy):
        _silent_host_in(boards, "charge")
    assert clean.fault("heartbeat") and not clean.closed
    assert not buggy.fault("heartbeat") and buggy.closed, "the bug keeps the contactors closed in charge mode"
    discharging = make_boards(bugs=["heartbeat_ignored_charge"])
    _silent_host_in(discharging, "discharge")
    assert discharging.fault("heartbeat"), "discharge mode is still checked"


def test_bug_uv_threshold_mv_typo(make_boards):
    clean, buggy = _both(make_boards, "uv_threshold_mv_typo")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.setpoint_v[4] = boards.cal["cell_uv_v"] - 0.2
        boards.run_for(2 * boards.cal["uv_debounce_ms"] / 1000)
    assert clean.fault("cell_uv") and not buggy.fault("cell_uv"), "2.7 mV: no real cell ever reads below it"


def test_bug_ot_ignores_last_sensor(make_boards):
    clean, buggy = _both(make_boards, "ot_ignores_last_sensor")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.setpoint_c[boards.n_cells - 1] = boards.cal["cell_ot_c"] + 5
        boards.run_for(2 * boards.cal["ot_debounce_ms"] / 1000)
    assert clean.fault("cell_ot") and not buggy.fault("cell_ot")


def test_bug_stale_crc(make_boards):
    clean, buggy = _both(make_boards, "stale_crc")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = 3.0  # status content changes (contactors, warnings) keep the CRC stale
        boards.run_for(1.0)
    assert clean.monitor.stats["BMS_Status"].bad_crc == 0
    assert buggy.monitor.stats["BMS_Status"].bad_crc > 0, "the CRC of the previous frame does not match"
    assert buggy.monitor.stats["BMS_PackData"].bad_crc == 0, "only BMS_Status carries the bug"


def test_bug_status_counter_stuck(make_boards):
    clean, buggy = _both(make_boards, "status_counter_stuck")
    for boards in (clean, buggy):
        boards.run_for(1.0)
    assert clean.monitor.stats["BMS_Status"].bad_counter == 0
    assert buggy.monitor.stats["BMS_Status"].bad_counter > 10
    assert buggy.monitor.values["BMS_Status_Counter"] == 0


def test_bug_contactor_stays_closed(make_boards):
    clean, buggy = _both(make_boards, "contactor_stays_closed")
    for boards in (clean, buggy):
        _over_ov(boards, 3)
    assert clean.fw.state == buggy.fw.state == BmsState.FAULT
    assert not clean.closed
    assert buggy.closed, "the bug leaves the main contactors closed in FAULT"
    never_closed = make_boards(bugs=["contactor_stays_closed"])
    never_closed.standby()
    never_closed.ce.setpoint_v[3] = never_closed.cal["cell_ov_v"] + 0.01
    never_closed.run_for(0.5)
    assert not any(never_closed.fw.contactor_cmd.values()), "contactors that were open stay open"


def test_bug_balancing_during_fault(make_boards):
    clean, buggy = _both(make_boards, "balancing_during_fault")
    for boards in (clean, buggy):
        boards.ce.setpoint_v[0] += (boards.cal["balance_threshold_mv"] + 10) / 1000
        boards.power_up()
        boards.ce.setpoint_c[2] = boards.cal["cell_ot_c"] + 1
        boards.run_until(lambda b=boards: b.fw.state == BmsState.FAULT, 2.0, "FAULT")
        boards.step_slow(2)
    assert not clean.fw.balancing.any()
    assert buggy.fw.balancing[0], "the bug keeps bleeding in FAULT"


def test_bug_self_discharge_paused_by_balancing(make_boards):
    """The others sit above the balancing threshold and bleed towards the leaking cell for as long as it leaks:
    the clean firmware takes the bleed out and sees the leak; the bug skips every window with a bleed on."""
    clean, buggy = _both(make_boards, "self_discharge_paused_by_balancing",
                         "dut.calibration.self_discharge_window_s=1.0", "dut.calibration.soc_rest_s=0.5")
    for boards in (clean, buggy):
        boards.ce.setpoint_v[1:] += (boards.cal["balance_threshold_mv"] + 10) / 1000
        boards.standby()
        start_v = boards.ce.setpoint_v[0]
        for task in range(400):  # four 1 s windows, the leaking cell 1 mV lower each
            boards.ce.setpoint_v[0] = start_v - task / 100 / 1000
            boards.step()
        assert boards.fw.balancing[1:].all() and not boards.fw.balancing[0]
    assert clean.warning("self_discharge") and not buggy.warning("self_discharge")


def test_bug_mv_sum_overflow(make_boards):
    clean, buggy = _both(make_boards, "mv_sum_overflow", soc0=0.9)
    for boards in (clean, buggy):
        boards.run_for(0.5)
    true_v = float(np.sum(clean.ce.setpoint_v))
    assert true_v > 32.767
    assert clean.monitor.values["BMS_PackVoltage"] == pytest.approx(true_v, abs=0.01)
    assert buggy.monitor.values["BMS_PackVoltage"] < true_v - 30, "the 16-bit mV sum wrapped"
    low = make_boards(bugs=["mv_sum_overflow"])
    low.ce.setpoint_v[: low.n_cells // 2] = 0.0  # the rest of the pack under 32.767 V: no wrap
    low.ce.setpoint_v[low.n_cells // 2:] = 3.7
    low.run_for(0.5)
    assert low.monitor.values["BMS_PackVoltage"] == pytest.approx(3.7 * (low.n_cells - low.n_cells // 2), abs=0.01)


def _reported_cells_v(boards) -> np.ndarray:
    return np.array([boards.monitor.values[f"BMS_Cell{c + 1:02d}_Voltage"] for c in range(boards.n_cells)])


def test_bug_cell_report_swapped(make_boards):
    clean, buggy = _both(make_boards, "cell_report_swapped")
    for boards in (clean, buggy):
        boards.ce.setpoint_v[:] = np.round(np.linspace(3.5, 3.8, boards.n_cells), 3)  # a staircase: every cell distinct
        boards.standby()
        boards.step_slow(2)  # at least one full BMS_CellVoltages cycle after the new setpoints
    applied_v = clean.ce.setpoint_v.copy()
    np.testing.assert_array_equal(clean.fw.cell_v, buggy.fw.cell_v)  # the firmware itself measures the right cells
    np.testing.assert_allclose(clean.fw.cell_v, applied_v, atol=1e-4)
    np.testing.assert_allclose(_reported_cells_v(clean), applied_v, atol=0.001)
    swapped_v = applied_v[[0, 2, 1, *range(3, buggy.n_cells)]]
    np.testing.assert_allclose(_reported_cells_v(buggy), swapped_v, atol=0.001,
                               err_msg="cells 2 and 3 trade slots in BMS_CellVoltages, and only they")
    for boards in (clean, buggy):  # BMS_CellStats is built from the right cells
        assert boards.monitor.values["BMS_MinCellIndex"] == 0
        assert boards.monitor.values["BMS_MaxCellIndex"] == boards.n_cells - 1
    _over_ov(buggy, 1)
    assert buggy.fault("cell_ov"), "the protection still reads cell 2 as cell 2"


def test_bug_shunt_gain_uncalibrated(make_boards):
    clean, buggy = _both(make_boards, "shunt_gain_uncalibrated")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = 10.0
        boards.run_for(1.0)
    assert clean.fw.current_a == pytest.approx(10.0)
    assert buggy.fw.current_a == pytest.approx(10.3), "every reading 3 % high"
    assert clean.monitor.values["BMS_PackCurrent"] == pytest.approx(10.0, abs=0.001)
    assert buggy.monitor.values["BMS_PackCurrent"] == pytest.approx(10.3, abs=0.001)
    assert buggy.fw.soc < clean.fw.soc, "coulomb counting integrates the high reading too"
    np.testing.assert_array_equal(clean.fw.cell_v, buggy.fw.cell_v)  # only the current channel is off
    assert clean.fw.state == buggy.fw.state == BmsState.NORMAL and clean.fw.faults == buggy.fw.faults == 0
    for boards in (clean, buggy):
        boards.ce.current_a = -5.0
        boards.run_for(0.1)
    assert clean.fw.current_a == pytest.approx(-5.0) and buggy.fw.current_a == pytest.approx(-5.15), "a gain, both ways"
    for boards in (clean, buggy):
        boards.ce.current_a = 0.0
        boards.run_for(0.1)
    assert clean.fw.current_a == buggy.fw.current_a == 0.0, "a gain error, not an offset: zero still reads zero"


def _cold_sensor_in(boards, mode):
    boards.power_up(mode)
    boards.ce.setpoint_c[2] = boards.cal["cell_ut_c"] - 5
    boards.run_for(2 * boards.cal["ot_debounce_ms"] / 1000)


def test_bug_ut_ignored_in_charge(make_boards):
    clean, buggy = _both(make_boards, "ut_ignored_in_charge")
    for boards in (clean, buggy):
        _cold_sensor_in(boards, "charge")
    assert clean.fault("cell_ut") and not clean.closed
    assert not buggy.fault("cell_ut") and buggy.closed, "the bug keeps charging a cold pack"
    discharging = make_boards(bugs=["ut_ignored_in_charge"])
    _cold_sensor_in(discharging, "discharge")
    assert discharging.fault("cell_ut"), "discharge mode is still checked"


def _contactor_feedback_through_power_up(boards) -> list[dict]:
    """Each distinct feedback of the three contactors, from the discharge request until NORMAL has settled."""
    boards.standby()
    boards.request("discharge")
    seen = []
    for _ in range(40):   # 0.4 s: the request, precharge (~0.1 s) and two contactor delays
        boards.step()
        if not seen or seen[-1] != boards.fw.contactor_fb:
            seen.append(dict(boards.fw.contactor_fb))
    return seen


def test_bug_main_with_precharge(make_boards):
    clean, buggy = _both(make_boards, "main_with_precharge")
    clean_seen, buggy_seen = (_contactor_feedback_through_power_up(b) for b in (clean, buggy))
    precharging = {"pos": False, "neg": True, "pre": True}
    assert precharging in clean_seen and clean_seen[-1] == {"pos": True, "neg": True, "pre": False}, clean_seen
    assert precharging not in buggy_seen, "the bug closes main with precharge"
    assert {"pos": True, "neg": True, "pre": True} in buggy_seen and buggy.fw.state == BmsState.NORMAL


def test_bug_precharge_left_closed(make_boards):
    clean, buggy = _both(make_boards, "precharge_left_closed")
    clean_seen, buggy_seen = (_contactor_feedback_through_power_up(b) for b in (clean, buggy))
    assert clean_seen[-1] == {"pos": True, "neg": True, "pre": False}, clean_seen
    assert buggy_seen[-1] == {"pos": True, "neg": True, "pre": True}, "the bug leaves precharge closed"
    assert {"pos": False, "neg": True, "pre": True} in buggy_seen, "it still precharges first"
    buggy.request("standby")
    buggy.run_until(lambda: not any(buggy.fw.contactor_fb.values()), 0.3, "a standby request opens all three")


def test_bug_sop_resistance_at_25c(make_boards):
    """A whole pack at 0 degC, its cells at 3.3 V (0.4 V of headroom above UV and the SOP margin): the clean
    firmware sizes its discharge limit by the cells' resistance there, the Arrhenius factor (about 2.1) above the
    warm figure; the bug by the warm figure, allowing as much more current."""
    clean, buggy = _both(make_boards, "sop_resistance_at_25c")
    for boards in (clean, buggy):
        boards.ce.setpoint_c[:] = 0.0
        boards.ce.setpoint_v[:] = 3.3
        boards.power_up()
        boards.run_for(10.0)   # the limit rises at its bounded rate
    cal = clean.cal
    factor = math.exp(cal["cell_r_activation_j_per_mol"] / GAS_CONSTANT_J_PER_MOL_K * (1 / 273.15 - 1 / 298.15))
    headroom_v = 3.3 - cal["cell_uv_v"] - cal["sop_margin_v"]
    assert clean.fw.discharge_limit_a == pytest.approx(headroom_v / (cal["cell_r_est_ohm"] * factor), rel=0.05)
    assert buggy.fw.discharge_limit_a == pytest.approx(headroom_v / cal["cell_r_est_ohm"], rel=0.05)


def test_bug_afe_errors_ignored(make_boards):
    """The link to the front end broken in NORMAL, then a cell charged past OV behind it: the clean firmware faults
    on the failed reads; the bug keeps judging the last values it read, and sees neither."""
    clean, buggy = _both(make_boards, "afe_errors_ignored")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.afe_link_open = True
        boards.ce.setpoint_v[0] = boards.cal["cell_ov_v"] + 0.05
        boards.run_for(2 * boards.cal["afe_timeout_ms"] / 1000 + 2 * boards.cal["ov_debounce_ms"] / 1000)
    assert clean.fault("afe") and not clean.closed, clean.describe()
    assert not buggy.fw.faults and buggy.closed and buggy.fw.cell_v[0] < buggy.cal["cell_ov_v"], buggy.describe()
    buggy.ce.afe_link_open = False
    buggy.run_for(2 * buggy.cal["ov_debounce_ms"] / 1000)
    assert buggy.fault("cell_ov"), "with the link back, the bug reads the cell again"


def test_bug_fault_clear_skips_precharge(make_boards):
    """An OV trip in NORMAL, cleared by the host with its discharge request standing: the clean firmware closes
    again through STANDBY and the precharge; the bug closes both main contactors at once."""
    clean, buggy = _both(make_boards, "fault_clear_skips_precharge")
    for boards in (clean, buggy):
        normal_v = boards.ce.setpoint_v[0]
        _over_ov(boards, 0)
        boards.run_until(lambda b=boards: b.fw.state == BmsState.FAULT and not b.closed, 1.0, "the OV trip")
        boards.ce.setpoint_v[0] = normal_v
        boards.run_for(0.1)
        boards.clear_faults()
    seen = {}
    for name, boards in (("clean", clean), ("buggy", buggy)):
        seen[name] = []
        for _ in range(40):
            boards.step()
            if not seen[name] or seen[name][-1] != boards.fw.contactor_cmd:
                seen[name].append(dict(boards.fw.contactor_cmd))
    assert {"pos": False, "neg": True, "pre": True} in seen["clean"] and clean.closed, seen["clean"]
    assert seen["buggy"][0] == {"pos": True, "neg": True, "pre": False} and not any(
        c["pre"] for c in seen["buggy"]) and buggy.fw.state == BmsState.NORMAL, seen["buggy"]


def test_bug_precharge_without_timeout(make_boards):
    clean, buggy = _both(make_boards, "precharge_without_timeout")
    for boards in (clean, buggy):
        boards.standby()
        boards.ce.dc_link_shorted = True
        boards.request("discharge")
        boards.run_for(2 * boards.cal["precharge_timeout_ms"] / 1000)
    assert clean.fault("precharge") and not any(clean.fw.contactor_fb.values()), clean.describe()
    assert buggy.fw.state == BmsState.PRECHARGE and not buggy.fw.faults, buggy.describe()
    assert buggy.fw.contactor_fb == {"pos": False, "neg": True, "pre": True}, "the bug keeps precharging the short"
    healthy = make_boards(bugs=["precharge_without_timeout"])
    healthy.power_up()   # a link that charges still completes the precharge


def test_bug_charge_limit_by_soc_only(make_boards):
    clean, buggy = _both(make_boards, "charge_limit_by_soc_only", soc0=0.5)
    for boards in (clean, buggy):
        boards.power_up("charge")
        # One cell above the level the charge SOP holds the fullest cell at; the pack mid SOC (no SOC taper).
        boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] - boards.cal["charge_sop_margin_v"] + 0.01
        boards.run_for(0.5)
    assert clean.fw.charge_limit_a == 0.0, "the fullest cell is past its CV level: no more charge"
    assert buggy.fw.charge_limit_a == pytest.approx(buggy.cal["max_charge_current_a"]), "the bug reads SOC only"
    assert clean.fw.discharge_limit_a > 0, "discharging that pack is still allowed"


def test_bug_cold_charge_from_ut(make_boards):
    """One cell at -5 degC: below charge_cold_zero_c, so no charging; the bug's line (0 at -20 degC) allows most
    of the charge current. A cell at -20 degC stops both."""
    clean, buggy = _both(make_boards, "cold_charge_from_ut")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.setpoint_c[0] = -5.0
        boards.run_for(0.5)
    full_a = clean.cal["max_charge_current_a"]
    assert clean.fw.charge_limit_a == 0.0, clean.describe()
    assert buggy.fw.charge_limit_a == pytest.approx(0.75 * full_a, rel=0.02), buggy.describe()
    for boards in (clean, buggy):
        boards.ce.setpoint_c[0] = boards.cal["cell_ut_c"]
        boards.run_for(0.5)
    assert clean.fw.charge_limit_a == buggy.fw.charge_limit_a == 0.0


def test_bug_cold_discharge_not_derated(make_boards):
    """One cell halfway along the cold discharge line: half the discharge current in the clean firmware, all of it
    in the bug's."""
    clean, buggy = _both(make_boards, "cold_discharge_not_derated")
    for boards in (clean, buggy):
        boards.power_up()
        boards.run_for(5.0)   # the discharge limit ramps up after power-up
        cal = boards.cal
        boards.ce.setpoint_c[0] = (cal["discharge_cold_zero_c"] + cal["discharge_cold_full_c"]) / 2
        boards.run_for(0.5)
    full_a = clean.cal["max_discharge_current_a"]
    assert clean.fw.discharge_limit_a == pytest.approx(full_a / 2, rel=0.02), clean.describe()
    assert buggy.fw.discharge_limit_a == pytest.approx(full_a, rel=0.02), buggy.describe()


def test_bug_peak_limit_published(make_boards):
    """A warm, half-full pack at rest: the clean firmware publishes its continuous discharge limit, below the
    long-delay over-current level; the bug its 10 s peak figure, above it."""
    clean, buggy = _both(make_boards, "peak_limit_published")
    for boards in (clean, buggy):
        boards.power_up()
        boards.run_for(10.0)   # the limit rises at its bounded rate
    cal = clean.cal
    assert clean.fw.discharge_limit_a == pytest.approx(cal["max_discharge_current_a"]), clean.describe()
    assert clean.fw.discharge_limit_a < cal["sustained_oc_a"]
    assert buggy.fw.discharge_limit_a == pytest.approx(PEAK_LIMIT_FACTOR * cal["max_discharge_current_a"])
    assert buggy.fw.discharge_limit_a > cal["sustained_oc_a"], buggy.describe()


def test_bug_faded_block_counted(make_boards):
    """Near empty at 1 C, one block's voltage (a block of less capacity) at what 2 % SOC reads under that load, the
    others at 12 %'s: the clean firmware's emptiest-block SOC follows that block down by its loaded voltage, the
    bug's stays with the count."""
    clean, buggy = _both(make_boards, "faded_block_counted", soc0=0.12)
    for boards in (clean, buggy):
        boards.power_up()
        current_a = boards.cal["capacity_ah"]
        drop_v = current_a * boards.cal["cell_r_est_ohm"]
        boards.ce.current_a = current_a
        boards.ce.setpoint_v[:] = boards.ocv_at(0.12) - drop_v
        boards.ce.setpoint_v[3] = boards.ocv_at(0.02) - drop_v
        boards.run_for(1.0)
    assert clean.fw.soc_min == pytest.approx(0.02, abs=0.01), clean.describe()
    assert buggy.fw.soc_min > 0.1, buggy.describe()


def test_bug_no_discharge_in_charge_mode(make_boards):
    """Closed for discharge, then asked to charge: the clean firmware keeps its discharge limit (a grid loss may come
    at any moment), the bug's falls to 0."""
    clean, buggy = _both(make_boards, "no_discharge_in_charge_mode")
    for boards in (clean, buggy):
        boards.power_up()
        boards.run_for(10.0)   # the limit rises at its bounded rate
        boards.request("charge")
        boards.run_for(0.5)
    assert clean.fw.discharge_limit_a == pytest.approx(clean.cal["max_discharge_current_a"]), clean.describe()
    assert buggy.fw.discharge_limit_a == 0.0, buggy.describe()
    assert buggy.closed and buggy.fw.state == BmsState.NORMAL, buggy.describe()


def test_bug_mode_change_reopens(make_boards):
    """Closed to charge, then asked to discharge: the clean firmware stays closed in NORMAL through the change, the
    bug's opens and goes through the precharge again."""
    clean, buggy = _both(make_boards, "mode_change_reopens")
    for boards in (clean, buggy):
        boards.power_up("charge")
        boards.request("discharge")
        boards.seen = set()
        for _ in range(50):   # half a second of main tasks
            boards.step()
            boards.seen.add((boards.fw.state, boards.closed))
    assert clean.seen == {(BmsState.NORMAL, True)}, clean.seen
    assert (BmsState.PRECHARGE, False) in buggy.seen and (BmsState.NORMAL, True) in buggy.seen, buggy.seen


def _charging_at_a_limit_of_zero(boards, charge_a: float, duration_s: float) -> None:
    """Charging at `charge_a` (below charge_oc_a) for `duration_s` after one cell went below charge_cold_zero_c."""
    boards.power_up("charge")
    boards.ce.current_a = -charge_a
    boards.ce.setpoint_c[0] = boards.cal["charge_cold_zero_c"] - 5.0
    boards.run_for(duration_s)


def test_bug_charge_limit_not_enforced(make_boards):
    """A charger ignoring a limit of 0, at half the charge over-current level: cut off by the clean firmware once
    charge_limit_debounce_ms has passed, never by the bug's."""
    clean, buggy = _both(make_boards, "charge_limit_not_enforced")
    for boards in (clean, buggy):
        _charging_at_a_limit_of_zero(boards, boards.cal["charge_oc_a"] / 2,
                                     boards.cal["charge_limit_debounce_ms"] / 1000 + 0.5)
        assert boards.fw.charge_limit_a == 0.0, boards.describe()
    assert clean.fault("charge_oc") and clean.fw.state == BmsState.FAULT, clean.describe()
    assert not buggy.fw.faults and buggy.fw.state == BmsState.NORMAL, buggy.describe()


def test_bug_charge_limit_enforced_at_once(make_boards):
    """A charger still at the full limit 0.5 s after the limit fell to 0 (the clean firmware gives it
    charge_limit_debounce_ms); within charge_limit_margin_a of the limit it may charge on in both."""
    clean, buggy = _both(make_boards, "charge_limit_enforced_at_once")
    for boards in (clean, buggy):
        _charging_at_a_limit_of_zero(boards, boards.cal["max_charge_current_a"], 0.5)
    assert not clean.fw.faults and clean.fw.state == BmsState.NORMAL, clean.describe()
    assert buggy.fault("charge_oc") and buggy.fw.state == BmsState.FAULT, buggy.describe()
    within = make_boards(bugs=["charge_limit_enforced_at_once"])
    _charging_at_a_limit_of_zero(within, within.cal["charge_limit_margin_a"] / 2, 5.0)
    assert not within.fw.faults, within.describe()


def test_bug_derating_from_mean_temperature(make_boards):
    clean, buggy = _both(make_boards, "derating_from_mean_temperature")
    for boards in (clean, buggy):
        boards.power_up()
        # One cell half-way along the derating line (derate_start_c to cell_ot_c), the rest at 25 degC.
        boards.ce.setpoint_c[5] = (boards.cal["derate_start_c"] + boards.cal["cell_ot_c"]) / 2
        boards.run_for(0.5)
    full_a = clean.cal["max_discharge_current_a"]
    assert clean.fw.discharge_limit_a == pytest.approx(full_a / 2, rel=0.02), "derated from the hottest cell"
    assert buggy.fw.discharge_limit_a == pytest.approx(full_a), "the mean (26.6 degC) is below derate_start_c"
    for boards in (clean, buggy):   # all cells hot: the mean is the hottest, and the bug derates too
        boards.ce.setpoint_c[:] = boards.ce.setpoint_c[5]
        boards.run_for(0.5)
    assert buggy.fw.discharge_limit_a == pytest.approx(clean.fw.discharge_limit_a)


def test_bug_derating_held_at_peak(make_boards):
    clean, buggy = _both(make_boards, "derating_held_at_peak")
    full_a = clean.cal["max_discharge_current_a"]
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.setpoint_c[5] = (boards.cal["derate_start_c"] + boards.cal["cell_ot_c"]) / 2
        boards.run_for(0.5)
        assert boards.fw.discharge_limit_a == pytest.approx(full_a / 2, rel=0.02), "both derate while it is hot"
        boards.ce.setpoint_c[5] = 25.0
        boards.run_for(full_a / boards.cal["limit_rise_a_per_s"] + 0.5)   # the limit's ramp back, with margin
    assert clean.fw.discharge_limit_a == pytest.approx(full_a), "cooled: the clean firmware recovers"
    assert buggy.fw.discharge_limit_a == pytest.approx(full_a / 2, rel=0.02), "the bug holds the peak"


def test_bug_insulation_checked_at_startup_only(make_boards):
    clean, buggy = _both(make_boards, "insulation_checked_at_startup_only")
    for boards in (clean, buggy):
        boards.power_up()
        # 50 ohm/V of the pack's voltage: half the error level.
        boards.ce.insulation_fault_ohm = 0.5 * boards.cal["insulation_fault_ohm_per_v"] * boards.fw.pack_v
        boards.run_for(3.0)   # a measurement cycle and the debounce, with margin
    assert clean.fault("insulation") and not clean.closed
    assert not buggy.fault("insulation") and buggy.closed, "the bug never reads the monitor with HV connected"
    standby = make_boards(bugs=["insulation_checked_at_startup_only"])
    standby.standby()
    standby.ce.insulation_fault_ohm = 0.5 * standby.cal["insulation_fault_ohm_per_v"] * standby.fw.pack_v
    standby.run_for(3.0)
    assert standby.fault("insulation"), "with the contactors open it still reads the monitor"


def test_bug_insulation_report_not_refreshed(make_boards):
    clean, buggy = _both(make_boards, "insulation_report_not_refreshed")
    for boards in (clean, buggy):
        boards.power_up()
        boards.run_for(1.5)   # the first reading (no fault: at or above the report's top)
        assert boards.monitor.values["BMS_InsulationResistance"] == 65535, boards.describe()
        boards.ce.insulation_fault_ohm = 0.5 * boards.cal["insulation_fault_ohm_per_v"] * boards.fw.pack_v
        boards.run_for(3.0)   # a measurement cycle, the debounce and a report, with margin
    applied_kohm = clean.ce.insulation_fault_ohm / 1000
    assert clean.monitor.values["BMS_InsulationResistance"] == round(applied_kohm), clean.describe()
    assert buggy.monitor.values["BMS_InsulationResistance"] == 65535, "the bug reports the first reading only"
    assert clean.fault("insulation") and buggy.fault("insulation"), "the protection reads the monitor either way"


def test_bug_insulation_symmetric_bridge(make_boards):
    """A fault at half the error level: seen at either pole by both; halfway up the stack, by the clean firmware
    only (chassis does not move)."""
    clean, buggy = _both(make_boards, "insulation_symmetric_bridge")
    n = clean.ce.n_channels
    for depth in (0, n):
        boards = make_boards(bugs=["insulation_symmetric_bridge"])
        boards.power_up()
        boards.ce.insulation_fault_ohm = 0.5 * boards.cal["insulation_fault_ohm_per_v"] * boards.fw.pack_v
        boards.ce.insulation_fault_depth = depth
        boards.run_for(3 * boards.cal["insulation_period_ms"] / 1000)
        assert boards.fault("insulation") and not boards.closed, f"a fault {depth} cells below the top: at a pole"
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.insulation_fault_ohm = 0.5 * boards.cal["insulation_fault_ohm_per_v"] * boards.fw.pack_v
        boards.ce.insulation_fault_depth = n // 2
        boards.run_for(3 * boards.cal["insulation_period_ms"] / 1000)
    assert clean.fault("insulation") and not clean.closed, clean.describe()
    assert not buggy.fw.faults and buggy.closed and buggy.fw.insulation_ohm == float("inf"), buggy.describe()


def test_bug_precharge_feedback_unchecked(make_boards):
    """The precharge contactor welded in operation: the clean firmware faults on its feedback and opens the main
    contactors; the bug runs on, and after a standby request leaves the link live through the precharge resistor."""
    clean, buggy = _both(make_boards, "precharge_feedback_unchecked")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.welded_contactors = frozenset({"pre"})
        boards.run_for(2 * boards.cal["contactor_feedback_ms"] / 1000)
    assert clean.fault("contactor") and clean.fw.state == BmsState.FAULT and not clean.closed, clean.describe()
    assert not buggy.fw.faults and buggy.fw.state == BmsState.NORMAL, buggy.describe()
    buggy.request("standby")
    buggy.run_for(0.5)
    assert buggy.fw.contactor_fb["pre"] and not buggy.fw.faults, buggy.describe()


def test_bug_thermal_rate_absolute(make_boards):
    """The whole pack heating at 2 degC/s (a hard load's heat): each cell's own rise is taken for a runaway."""
    clean, buggy = _both(make_boards, "thermal_rate_absolute")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ramp_temperatures(slice(None), 2.0, boards.cal["thermal_runaway_hold_ms"] / 1000 + 2.0)
    assert not clean.fw.faults and clean.closed, clean.describe()
    assert buggy.fault("thermal_runaway") and buggy.fw.state == BmsState.FAULT, buggy.describe()


def test_bug_contactor_feedback_positive_only(make_boards):
    clean, buggy = _both(make_boards, "contactor_feedback_positive_only")
    for pole in ("pos", "neg"):
        for boards in (clean, buggy):
            boards.power_up()
            boards.ce.welded_contactors = frozenset({pole})
            boards.request("standby")   # the host asks to open
            boards.run_for(0.5)   # the contactors' delay and the feedback's 200 ms, with margin
        assert clean.fault("contactor") and clean.fw.contactor_fb[pole], f"{pole}: {clean.fw.faults:#x}"
        assert buggy.fault("contactor") == (pole == "pos"), f"{pole}: the bug checks only the positive pole"
        for boards in (clean, buggy):
            boards.ce.welded_contactors = frozenset()
            boards.run_for(0.1)
            boards.clear_faults()
            boards.run_for(0.1)
            assert not boards.fw.faults, f"{pole}: the fault did not clear once the weld was released"


def test_bug_contactor_checked_while_open_only(make_boards):
    clean, buggy = _both(make_boards, "contactor_checked_while_open_only")
    for pole in ("pos", "neg"):
        for boards in (clean, buggy):
            boards.standby()
            boards.ce.stuck_open_contactors = frozenset({pole})
            boards.request("discharge")
            boards.run_for(1.0)   # precharge, the contactors' delay and the feedback's 200 ms, with margin
        assert clean.fault("contactor") and not any(clean.fw.contactor_cmd.values()), (
            f"{pole}: {clean.fw.faults:#x} {clean.fw.contactor_cmd}")
        assert not buggy.fault("contactor") and not buggy.closed, (
            f"{pole}: the bug never compares a closed command; {buggy.describe()}")
        if pole == "pos":
            assert buggy.fw.state == BmsState.NORMAL and buggy.fw.contactor_cmd["pos"], buggy.describe()
        else:   # no path to charge the link through: the precharge times out, the wrong part blamed
            assert buggy.fault("precharge"), buggy.describe()
        for boards in (clean, buggy):
            boards.ce.stuck_open_contactors = frozenset()
            boards.request("standby")
            boards.run_for(0.1)
            boards.clear_faults()
            boards.run_for(0.1)
            assert not boards.fw.faults, f"{pole}: the fault did not clear once the coil was restored"
    weld = make_boards(bugs=["contactor_checked_while_open_only"])
    weld.power_up()
    weld.ce.welded_contactors = frozenset({"neg"})
    weld.request("standby")
    weld.run_for(0.5)
    assert weld.fault("contactor"), "a weld (feedback closed, commanded open) is still caught"


def test_bug_contactor_checked_at_switching_only(make_boards):
    """The negative contactor dropping out in NORMAL, seconds after it closed: the clean firmware faults and opens
    the rest; the bug reports NORMAL with no path for current. A contactor that fails to close is still caught."""
    clean, buggy = _both(make_boards, "contactor_checked_at_switching_only")
    for boards in (clean, buggy):
        boards.power_up()
        boards.run_for(2 * SWITCHING_CHECK_S)
        boards.ce.stuck_open_contactors = frozenset({"neg"})
        boards.run_for(1.0)
    assert clean.fault("contactor") and not any(clean.fw.contactor_cmd.values()), clean.describe()
    assert (not buggy.fw.faults and buggy.fw.state == BmsState.NORMAL and buggy.fw.contactor_cmd["neg"]
            and not buggy.closed), buggy.describe()
    stuck = make_boards(bugs=["contactor_checked_at_switching_only"])
    stuck.standby()
    stuck.ce.stuck_open_contactors = frozenset({"pos"})
    stuck.request("discharge")
    stuck.run_for(1.0)
    assert stuck.fault("contactor"), f"a contactor that fails to close is caught as it is switched: {stuck.describe()}"


def _supply_to(boards, voltage_v: float) -> None:
    """The emulated lab supply on the BMS's low-voltage input to `voltage_v`, as its SCPI would set it."""
    boards.host.supply.answer(f"VOLT {voltage_v}".encode(), boards.t_s)


def test_bug_soc_saved_periodically_only(make_boards):
    clean, buggy = _both(make_boards, "soc_saved_periodically_only")
    for boards in (clean, buggy):
        boards.standby()
        boards.step_slow()   # the first periodic record, once the SOC is known
        boards.fw.soc -= 0.05   # as if counted down since
        _supply_to(boards, 0.0)
        boards.step()
    assert clean.fw.nvm["soc"] == clean.fw.soc, "the power-fail interrupt writes the SOC"
    assert buggy.fw.nvm["soc"] == buggy.fw.soc + 0.05, "the bug keeps only the periodic record"


def test_bug_soc_saved_during_init(make_boards):
    clean, buggy = _both(make_boards, "soc_saved_during_init")
    for boards in (clean, buggy):
        boards.standby()
        saved = boards.fw.soc = 0.73   # as if counted down to it, and saved on a power fail
        boards.fw.nvm["soc"] = saved
        _supply_to(boards, 0.0)
        boards.step()
        _supply_to(boards, 12.0)
        boards.run_until(lambda b=boards: b.fw.powered, 1.0, "booted")
        assert boards.fw.state == BmsState.INIT, boards.describe()
        _supply_to(boards, 0.0)   # gone again while it initialises
        boards.step()
        _supply_to(boards, 12.0)
        boards.run_until(lambda b=boards: b.fw.powered and b.fw.state == BmsState.STANDBY, 1.0, "STANDBY")
    assert clean.fw.nvm["soc"] == clean.fw.soc == 0.73, clean.describe()
    assert buggy.fw.nvm["soc"] == buggy.fw.soc == 0.5, "the bug saved RAM's default over the record"


def test_bug_faults_forgotten_on_reset(make_boards):
    """An over-current latched, its cause gone, then a supply cut: the clean firmware boots into FAULT (and a
    clear then takes it to STANDBY), the bug's into STANDBY."""
    clean, buggy = _both(make_boards, "faults_forgotten_on_reset")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = boards.cal["discharge_oc_a"] + 5
        boards.run_until(lambda b=boards: b.fault("discharge_oc"), 1.0, "discharge_oc latched")
        boards.ce.current_a = 0.0
        _supply_to(boards, 0.0)
        boards.step()
        _supply_to(boards, 12.0)
        boards.run_until(lambda b=boards: b.fw.powered and b.fw.state != BmsState.INIT, 1.0, "booted, out of INIT")
    assert clean.fw.state == BmsState.FAULT and clean.fault("discharge_oc"), clean.describe()
    assert buggy.fw.state == BmsState.STANDBY and not buggy.fw.faults, buggy.describe()
    clean.clear_faults()
    clean.run_until(lambda: clean.fw.state == BmsState.STANDBY, 0.5, "STANDBY once the host cleared the fault")
    assert clean.fw.nvm["faults"] == 0, "the fault memory cleared with the fault"


def _stored_trip_then_cleared(boards) -> None:
    """An over-current latched (its DTC stored), its cause gone and the fault cleared by the host."""
    boards.power_up()
    boards.ce.current_a = boards.cal["discharge_oc_a"] + 5
    boards.run_until(lambda: boards.fault("discharge_oc"), 1.0, "discharge_oc latched")
    assert boards.fw.dtcs == {DTCS["discharge_oc"]: DTC_LATCHED_STATUS}, boards.fw.dtcs
    boards.ce.current_a = 0.0
    boards.clear_faults()
    boards.run_until(lambda: not boards.fw.faults, 0.5, "the fault cleared")


def test_bug_dtc_kept_in_ram(make_boards):
    """A stored over-current DTC, then a supply cut: the clean firmware boots with it stored, the bug's without."""
    clean, buggy = _both(make_boards, "dtc_kept_in_ram")
    for boards in (clean, buggy):
        _stored_trip_then_cleared(boards)
        _supply_to(boards, 0.0)
        boards.step()
        _supply_to(boards, 12.0)
        boards.run_until(lambda b=boards: b.fw.powered and b.fw.state != BmsState.INIT, 1.0, "booted, out of INIT")
    # a new operation cycle: no longer failed this cycle (0x02), still pending (failed in the last one)
    assert clean.fw.dtcs == {DTCS["discharge_oc"]: DTC_LATCHED_STATUS & ~DTC_TEST_FAILED & ~0x02}, clean.fw.dtcs
    assert buggy.fw.dtcs == {}, buggy.fw.dtcs


def test_bug_dtc_cycle_bits_kept(make_boards):
    """A stored over-current DTC, its fault cleared, then two supply cuts: the clean firmware's status loses
    testFailedThisOperationCycle at the first boot and pendingDTC at the second; the bug's keeps both."""
    clean, buggy = _both(make_boards, "dtc_cycle_bits_kept")
    code, cleared = DTCS["discharge_oc"], DTC_LATCHED_STATUS & ~DTC_TEST_FAILED   # 0x2E
    statuses = {}
    for boards in (clean, buggy):
        _stored_trip_then_cleared(boards)
        for _ in range(2):
            _supply_to(boards, 0.0)
            boards.step()
            _supply_to(boards, 12.0)
            boards.run_until(lambda b=boards: b.fw.powered and b.fw.state != BmsState.INIT, 1.0, "booted")
            statuses.setdefault(boards, []).append(boards.fw.dtcs[code])
    assert statuses[clean] == [0x2C, 0x28] and statuses[buggy] == [cleared, cleared], statuses


def test_bug_dtc_clear_ignored(make_boards):
    clean, buggy = _both(make_boards, "dtc_clear_ignored")
    for boards in (clean, buggy):
        _stored_trip_then_cleared(boards)
        boards.fw.clear_dtcs()   # what the diagnostic server's ClearDiagnosticInformation calls
        boards.step()
    assert clean.fw.dtcs == {} and buggy.fw.dtcs == {DTCS["discharge_oc"]: DTC_LATCHED_STATUS & ~DTC_TEST_FAILED}


def test_bug_dtc_table_short(make_boards):
    """An open interlock loop latches hvil in both; only the clean firmware stores its DTC. An over-voltage's is
    stored by both."""
    clean, buggy = _both(make_boards, "dtc_table_short")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.hvil_open = True
        boards.ce.setpoint_v[0] = boards.cal["cell_ov_v"] + 0.01
        boards.run_until(lambda b=boards: b.fault("hvil") and b.fault("cell_ov"), 1.0, "hvil and cell_ov latched")
    assert clean.fw.dtcs == {DTCS["hvil"]: DTC_LATCHED_STATUS, DTCS["cell_ov"]: DTC_LATCHED_STATUS}, clean.fw.dtcs
    assert buggy.fw.dtcs == {DTCS["cell_ov"]: DTC_LATCHED_STATUS}, buggy.fw.dtcs


def test_bug_snapshot_points_at_live_data(make_boards):
    """An over-current trip at 1.5 times the threshold, the current then gone (the fault still latched): the
    clean firmware's snapshots keep the trip's current, the bug's show none."""
    clean, buggy = _both(make_boards, "snapshot_points_at_live_data")
    trip_a = clean.cal["discharge_oc_a"] * 1.5
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = trip_a
        boards.run_until(lambda b=boards: b.fault("discharge_oc"), 1.0, "discharge_oc latched")
        boards.ce.current_a = 0.0
        boards.run_for(0.1)
    for boards, expected_a in ((clean, trip_a), (buggy, 0.0)):
        records = boards.fw.snapshot_records(DTCS["discharge_oc"])
        assert sorted(records) == [SNAPSHOT_FIRST, SNAPSHOT_LATEST]
        assert all(values["pack_current_a"] == pytest.approx(expected_a, abs=0.5) for values in records.values()), \
            records


def test_bug_occurrence_reset_by_fault_clear(make_boards):
    """Two over-current trips, each cleared by the host: the clean firmware counts two occurrences; the bug's count
    went with the host's last clear."""
    clean, buggy = _both(make_boards, "occurrence_reset_by_fault_clear")
    for boards in (clean, buggy):
        boards.power_up()
        for _ in range(2):
            boards.ce.current_a = boards.cal["discharge_oc_a"] + 5
            boards.run_until(lambda b=boards: b.fault("discharge_oc"), 1.0, "discharge_oc latched")
            boards.ce.current_a = 0.0
            boards.clear_faults()
            boards.run_until(lambda b=boards: not b.fw.faults, 0.5, "the fault cleared")
    code = DTCS["discharge_oc"]
    assert clean.fw.dtc_occurrences == {code: 2} and buggy.fw.dtc_occurrences == {}, \
        (clean.fw.dtc_occurrences, buggy.fw.dtc_occurrences)


def _standby_under_load(make_boards, bug: str, waits: float):
    """Both firmwares asked for STANDBY with 20 A flowing, run on `waits` times open_wait_ms."""
    clean, buggy = _both(make_boards, bug)
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = 20.0
        boards.request("standby")
        boards.run_for(waits * boards.cal["open_wait_ms"] / 1000)
    return clean, buggy


def test_bug_opens_under_load(make_boards):
    """A fifth of the wait: the clean firmware holds its contactors closed for the current to fall, the bug's opened."""
    clean, buggy = _standby_under_load(make_boards, "opens_under_load", 0.2)
    assert clean.fw.state == BmsState.NORMAL and buggy.fw.state == BmsState.STANDBY, \
        (clean.describe(), buggy.describe())


def test_bug_open_waits_for_zero_current(make_boards):
    """The current flowing on: the clean firmware opens once open_wait_ms has passed, the bug's never."""
    clean, buggy = _standby_under_load(make_boards, "open_waits_for_zero_current", 3)
    assert clean.fw.state == BmsState.STANDBY and buggy.fw.state == BmsState.NORMAL, \
        (clean.describe(), buggy.describe())


def _unsound_host_frames(make_boards, bug, fault):
    """The host's frames sent unsound for three heartbeat timeouts, a charge request among them: the clean
    firmware loses the host and opens; the bug's keeps the contactors closed and follows the request."""
    clean, buggy = _both(make_boards, bug)
    for boards in (clean, buggy):
        boards.power_up()
        for name in ("VCU_Heartbeat", "VCU_Request"):
            boards.sender.inject(name, fault)
        boards.request("charge")
        boards.run_for(3 * boards.cal["heartbeat_timeout_ms"] / 1000)
    assert clean.fault("heartbeat") and clean.fw.state == BmsState.FAULT, clean.describe()
    assert buggy.fw.state == BmsState.NORMAL and buggy.closed and not buggy.fw.faults, buggy.describe()
    assert clean.fw.mode == ModeRequest.DISCHARGE and buggy.fw.mode == ModeRequest.CHARGE


def test_bug_rx_crc_unchecked(make_boards):
    _unsound_host_frames(make_boards, "rx_crc_unchecked", "bad_crc")


def test_bug_rx_counter_unchecked(make_boards):
    _unsound_host_frames(make_boards, "rx_counter_unchecked", "frozen_counter")


def test_bug_rx_counter_no_resync(make_boards):
    """One frame of each host message lost, then three heartbeat timeouts of sound frames: the clean firmware takes
    the frames after the gap and stays closed; the bug's drops every later one as out of sequence, and opens."""
    clean, buggy = _both(make_boards, "rx_counter_no_resync")
    for boards in (clean, buggy):
        boards.power_up()
        for name in ("VCU_Heartbeat", "VCU_Request"):
            boards.sender.inject(name, "lost_frame")
        boards.run_for(3 * boards.cal["heartbeat_timeout_ms"] / 1000)
    assert clean.fw.state == BmsState.NORMAL and clean.closed and not clean.fw.faults, clean.describe()
    assert buggy.fault("heartbeat") and buggy.fw.state == BmsState.FAULT and not buggy.closed, buggy.describe()


def test_bug_rx_resync_waits_for_sequence(make_boards):
    """Three frames of each host message lost in a row (a 400 ms gap against a 500 ms timeout): the clean firmware
    takes the next frame and stays closed; the bug's drops it and the one after, and opens. A single loss both
    take."""
    clean, buggy = _both(make_boards, "rx_resync_waits_for_sequence")
    for boards in (clean, buggy):
        boards.power_up()
        for name in ("VCU_Heartbeat", "VCU_Request"):
            boards.sender.inject(name, "lost_frame")
        boards.run_for(boards.cal["heartbeat_timeout_ms"] / 1000)
        assert boards.closed and not boards.fw.faults, boards.describe()
        for name in ("VCU_Heartbeat", "VCU_Request"):
            boards.sender.inject(name, "lost_frame", frames=3)
        boards.run_for(2 * boards.cal["heartbeat_timeout_ms"] / 1000)
    assert clean.fw.state == BmsState.NORMAL and clean.closed and not clean.fw.faults, clean.describe()
    assert buggy.fault("heartbeat") and not buggy.closed, buggy.describe()


def test_bug_sleep_timer_from_close_request(make_boards):
    """Asked for STANDBY and kept there, the host talking all along, for twice sleep_after_s: the clean firmware stays
    awake; the bug's falls asleep, silent until the host's next frame wakes it a boot later."""
    clean, buggy = _both(make_boards, "sleep_timer_from_close_request")
    for boards in (clean, buggy):
        boards.power_up()
        boards.request("standby")
    clean.run_for(2 * clean.cal["sleep_after_s"])
    assert not clean.fw.asleep and clean.fw.state == BmsState.STANDBY, clean.describe()
    buggy.run_until(lambda: buggy.fw.asleep, 2 * buggy.cal["sleep_after_s"], "the bug's BMS asleep, the host talking")


def test_bug_sleeps_in_standby_only(make_boards):
    """An over-voltage trip, the cell back in range, then the host silent: the clean firmware sleeps in FAULT, the
    bug's stays awake; both sleep from STANDBY."""
    clean, buggy = _both(make_boards, "sleeps_in_standby_only")
    for boards in (clean, buggy):
        _over_ov(boards, 0)
        boards.ce.setpoint_v[0] = boards.ocv_at(0.5)
        boards.host_silent()
        boards.run_for(boards.cal["sleep_after_s"] + 1.0)
    assert clean.fw.asleep and clean.fault("cell_ov"), clean.describe()
    assert not buggy.fw.asleep and buggy.fw.state == BmsState.FAULT, buggy.describe()
    other = make_boards(bugs=["sleeps_in_standby_only"])
    other.standby()
    other.host_silent()
    other.run_until(lambda: other.fw.asleep, other.cal["sleep_after_s"] + 1.0, "asleep from STANDBY")


def test_bug_parked_cells_unchecked(make_boards):
    """Asleep, a cell drops below UV: the clean firmware's wake-up timer boots it within a check period and it
    latches cell_uv; the bug's sleeps on."""
    clean, buggy = _both(make_boards, "parked_cells_unchecked")
    for boards in (clean, buggy):
        boards.park()
        boards.ce.setpoint_v[3] = boards.cal["cell_uv_v"] - 0.1
        boards.run_for(boards.cal["sleep_check_s"] + 2 * boards.cal["uv_debounce_ms"] / 1000 + 0.5)
    assert not clean.fw.asleep and clean.fault("cell_uv"), clean.describe()
    assert buggy.fw.asleep and not buggy.fw.faults, buggy.describe()


def test_bug_parked_check_voltages_only(make_boards):
    """Asleep, a thermistor reads past OT: the clean firmware's wake-up timer boots it and it latches cell_ot; the
    bug's check reads the cells only, and it sleeps on."""
    clean, buggy = _both(make_boards, "parked_check_voltages_only")
    for boards in (clean, buggy):
        boards.park()
        boards.ce.setpoint_c[15] = boards.cal["cell_ot_c"] + 5.0
        boards.run_for(boards.cal["sleep_check_s"] + 2 * boards.cal["ot_debounce_ms"] / 1000 + 0.5)
    assert not clean.fw.asleep and clean.fault("cell_ot"), clean.describe()
    assert buggy.fw.asleep and not buggy.fw.faults, buggy.describe()


def test_bug_parked_check_boots(make_boards):
    """Asleep with healthy cells, past a check: the clean firmware is still asleep, the bug's booted."""
    clean, buggy = _both(make_boards, "parked_check_boots")
    for boards in (clean, buggy):
        boards.park()
        boards.run_for(boards.cal["sleep_check_s"] + 0.5)
    assert clean.fw.asleep, clean.describe()
    assert not buggy.fw.asleep and buggy.fw.state == BmsState.STANDBY, buggy.describe()


def test_bug_front_end_left_on_in_sleep(make_boards):
    """Both asleep, the host silent in STANDBY: the bug's board draws its front end's current besides the quiescent."""
    clean, buggy = _both(make_boards, "front_end_left_on_in_sleep")
    for boards in (clean, buggy):
        boards.power_up()
        boards.request("standby")
        boards.run_for(0.5)
        boards.host_silent()
        boards.run_for(boards.cal["sleep_after_s"] + 0.5)
    assert clean.fw.asleep and buggy.fw.asleep
    assert clean.fw.supply_current_a() < 0.001 < 0.01 < buggy.fw.supply_current_a()


def test_bug_uv_ir_compensated(make_boards):
    """A cell 50 mV below the UV level with 20 A flowing: the clean firmware trips; the bug's adds 20 A times the
    resistance estimate (0.4 V on the sim rig) to the reading and does not."""
    clean, buggy = _both(make_boards, "uv_ir_compensated")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = 20.0
        boards.ce.setpoint_v[2] = boards.cal["cell_uv_v"] - 0.05
        boards.run_for(3 * boards.cal["uv_debounce_ms"] / 1000)
    assert clean.fault("cell_uv") and not clean.closed, clean.describe()
    assert not buggy.fault("cell_uv") and buggy.closed, buggy.describe()


def test_bug_ov_warning_at_fault_level(make_boards):
    """A cell halfway between the warning level and the OV threshold: warned of by the clean firmware only."""
    clean, buggy = _both(make_boards, "ov_warning_at_fault_level")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] - boards.cal["warning_margin_v"] / 2
        boards.run_for(0.1)
    assert clean.warning("cell_ov") and not buggy.warning("cell_ov"), (clean.describe(), buggy.describe())
    assert not clean.fw.faults and not buggy.fw.faults


def test_bug_warnings_latched(make_boards):
    """An over-current warning, then the current gone: cleared by the clean firmware, kept by the bug's."""
    clean, buggy = _both(make_boards, "warnings_latched")
    for boards in (clean, buggy):
        boards.power_up()
        boards.ce.current_a = boards.cal["discharge_oc_a"] - boards.cal["warning_margin_a"] / 2
        boards.run_for(0.05)
        assert boards.warning("discharge_oc") and not boards.fw.faults, boards.describe()
        boards.ce.current_a = 0.0
        boards.run_for(0.1)
    assert not clean.warning("discharge_oc") and buggy.warning("discharge_oc")


def test_bug_hvil_checked_in_normal_only(make_boards):
    clean, buggy = _both(make_boards, "hvil_checked_in_normal_only")
    seen = {}
    for boards in (clean, buggy):
        boards.standby()
        boards.ce.hvil_open = True
        boards.request("discharge")
        seen[boards] = set()
        for _ in range(round(1.0 / 0.01)):
            boards.step()
            seen[boards] |= {name for name, closed in boards.fw.contactor_fb.items() if closed}
    assert not seen[clean] and clean.fault("hvil"), clean.describe()
    assert seen[buggy] == {"pos", "neg", "pre"}, f"the bug precharges and closes onto the open loop: {seen[buggy]}"
    assert buggy.fault("hvil") and not any(buggy.fw.contactor_cmd.values()), "then NORMAL's check opens them"


def test_bug_hvil_not_debounced(make_boards):
    clean, buggy = _both(make_boards, "hvil_not_debounced")
    for boards in (clean, buggy):
        boards.power_up()
        for _ in range(10):   # a connector chattering: open for one task's reading, closed for four
            boards.ce.hvil_open = True
            boards.step()
            boards.ce.hvil_open = False
            boards.step(4)
    assert clean.closed and not clean.fw.faults, clean.describe()
    assert buggy.fault("hvil") and not buggy.closed, buggy.describe()


def test_bug_current_frozen_unchecked(make_boards):
    """The bug still catches a sensor whose reading drops under load, but not a load step a frozen one misses."""
    on = "dut.calibration.current_plausibility_enabled=true"
    missed, dropped = {}, {}
    for bug in ((), ("current_frozen_unchecked",)):
        boards = make_boards(on, bugs=bug)
        drop_v = 10.0 * boards.cal["cell_r_est_ohm"]   # a 10 A step's drop
        boards.power_up()
        boards.run_for(0.5)
        boards.ce.setpoint_v[:] -= drop_v   # the cells carry 10 A; the frozen sensor reads 0
        boards.run_for(0.5)
        missed[bug] = boards.fault("current_sensor")
        boards = make_boards(on, bugs=bug)
        boards.power_up()
        boards.ce.current_a = 10.0
        boards.ce.setpoint_v[:] -= drop_v
        boards.run_for(0.5)
        boards.ce.current_a = 0.0   # dead under load
        boards.run_for(0.5)
        dropped[bug] = boards.fault("current_sensor")
    assert missed == {(): True, ("current_frozen_unchecked",): False}, missed
    assert dropped == {(): True, ("current_frozen_unchecked",): True}, dropped


def test_bug_current_offset_positive_only(make_boards):
    """The bug still catches a sensor that reads discharge with every contactor open, not one that reads charge."""
    caught = {}
    for bug in ((), ("current_offset_positive_only",)):
        for offset_a in (1.0, -1.0):
            boards = make_boards("dut.calibration.current_offset_enabled=true", bugs=bug)
            boards.standby()
            boards.ce.current_a = offset_a
            boards.run_for(0.5)
            caught[bug, offset_a] = boards.fault("current_sensor")
    assert caught == {((), 1.0): True, ((), -1.0): True, (("current_offset_positive_only",), 1.0): True,
                      (("current_offset_positive_only",), -1.0): False}, caught


def test_bug_resistance_block_off_by_one(make_boards):
    """The bug names the block below the flagged one on CAN, and a flagged first block not at all."""
    from .test_firmware_resistance import _estimate_steps, _load_steps
    reported = {}
    for bug in ((), ("resistance_block_off_by_one",)):
        for block in (0, 5):
            boards = make_boards(bugs=bug)
            boards.power_up()
            _load_steps(boards, 2 * _estimate_steps(boards), {block: 1.5})
            boards.run_for(1.1)   # a BMS_Diagnosis cycle
            assert boards.fw.high_resistance_block == block, "the diagnosis itself is sound"
            reported[bug, block] = boards.monitor.values["BMS_HighResistanceBlock"]
    assert reported == {((), 0): 1, ((), 5): 6, (("resistance_block_off_by_one",), 0): 0,
                        (("resistance_block_off_by_one",), 5): 5}, reported


def test_bug_current_zero_added(make_boards):
    """Both learn the same zero at rest; the bug adds it to each reading, so an idle pack reads twice the offset."""
    reading = {}
    for bug in ((), ("current_zero_added",)):
        boards = make_boards("dut.calibration.current_zero_enabled=true", bugs=bug)
        boards.standby()
        boards.ce.current_a = 0.3
        boards.run_for(1.5)
        boards.power_up()
        boards.step(2)
        assert boards.fw.current_zero_a == pytest.approx(0.3), boards.describe()
        reading[bug] = round(boards.fw.current_a, 6)
    assert reading == {(): 0.0, ("current_zero_added",): 0.6}, reading


def test_bug_soh_from_counted_soc(make_boards):
    clean, buggy = _both(make_boards, "soh_from_counted_soc", "dut.calibration.soc_rest_s=2.0", soc0=0.9)
    for boards in (clean, buggy):
        boards.discharge_between_rests(0.4, 0.8, 2.5)
    assert clean.fw.soh == pytest.approx(0.8, abs=2e-3), clean.describe()
    assert buggy.fw.soh == pytest.approx(1.0), "the bug's estimate is the rated capacity it counted by"


def test_bug_brownout_reset_at_9v(make_boards):
    clean, buggy = _both(make_boards, "brownout_reset_at_9v")
    for boards in (clean, buggy):
        boards.power_up()
        _supply_to(boards, (BUGGY_RESET_V + 6.0) / 2)   # a crank the BMS is rated to ride through
        boards.step()
    assert clean.fw.powered and clean.closed
    assert not buggy.fw.powered and not any(buggy.fw.contactor_fb.values())


def test_bug_supply_ovlo_at_18v(make_boards):
    clean, buggy = _both(make_boards, "supply_ovlo_at_18v")
    for boards in (clean, buggy):
        boards.power_up()
        _supply_to(boards, 24.0)   # ISO 16750-2's jump start of a 12 V system
        boards.step()
    assert clean.fw.powered and clean.closed
    assert not buggy.fw.powered and not any(buggy.fw.contactor_fb.values())
    clean.fw.supply(32.5, clean.t_s)   # above the regulator's rating (beyond the 30 V lab supply): it locks out
    assert not clean.fw.powered, clean.describe()
    _supply_to(buggy, 12.0)
    buggy.run_until(lambda: buggy.fw.powered, 1.0, "the MCU booted once the supply is back at 12 V")


def _seed(boards) -> bytes:
    """SecurityAccess requestSeed (level 1) in the extended session: the seed."""
    boards.ask_uds(0x10, 0x03)
    answer = boards.ask_uds(0x27, 0x01)
    assert answer and answer[0][1:3] == bytes([0x67, 0x01]), answer
    return answer[0][3:7]


def _wrong_keys(boards, count: int) -> list[int]:
    """`count` wrong keys, each on a fresh seed: each answer's code (0x35 invalidKey, 0x36 exceeded...)."""
    return [boards.ask_uds(0x27, 0x02, *(byte ^ 0xFF for byte in reference_security_key(_seed(boards), 1)))[0][3]
            for _ in range(count)]


def _write_ov_trip(boards, value_mv: int | None = None) -> bytes:
    """WriteDataByIdentifier of the OV trip, at its own value unless `value_mv`: the answer's first frame."""
    value_mv = round(boards.fw.cal["cell_ov_v"] * 1000) if value_mv is None else value_mv
    return boards.ask_uds(0x2E, 0x4B, 0x01, *value_mv.to_bytes(2, "big"))[0]


def test_bug_security_attempts_unlimited(make_boards):
    """Three wrong keys: the clean firmware answers the third exceededNumberOfAttempts and refuses the next seed
    (requiredTimeDelayNotExpired); the bug's answers every one invalidKey and gives seeds on."""
    clean, buggy = _both(make_boards, "security_attempts_unlimited")
    assert _wrong_keys(clean, 3) == [0x35, 0x35, 0x36]
    assert clean.ask_uds(0x27, 0x01)[0][1:4] == bytes([0x7F, 0x27, 0x37])
    assert _wrong_keys(buggy, 10) == [0x35] * 10
    assert any(_seed(buggy))


def test_bug_security_seed_constant(make_boards):
    clean, buggy = _both(make_boards, "security_seed_constant")
    assert _seed(clean) != _seed(clean)
    assert _seed(buggy) == _seed(buggy) != bytes(4)


def test_bug_security_lockout_in_ram(make_boards):
    """Locked out, then the supply cut and back: the clean firmware still refuses seeds, the bug's gives one."""
    clean, buggy = _both(make_boards, "security_lockout_in_ram")
    for boards in (clean, buggy):
        boards.standby()
        _wrong_keys(boards, 3)
        _supply_to(boards, 0.0)
        boards.step()
        _supply_to(boards, 13.5)
        boards.run_until(lambda b=boards: b.fw.powered and b.fw.state == BmsState.STANDBY, 2.0, "booted again")
        boards.ask_uds(0x10, 0x03)
    assert clean.ask_uds(0x27, 0x01)[0][1:4] == bytes([0x7F, 0x27, 0x37])
    assert any(_seed(buggy))


def test_bug_write_checks_session_only(make_boards):
    """In the extended session, locked: the clean firmware refuses the OV trip's write (securityAccessDenied), the
    bug's takes it. Neither takes it in the default session."""
    clean, buggy = _both(make_boards, "write_checks_session_only")
    for boards in (clean, buggy):
        assert _write_ov_trip(boards)[1:4] == bytes([0x7F, 0x2E, 0x7F])
        boards.ask_uds(0x10, 0x03)
    assert _write_ov_trip(clean)[1:4] == bytes([0x7F, 0x2E, 0x33])
    assert _write_ov_trip(buggy)[1:4] == bytes([0x6E, 0x4B, 0x01])


def test_bug_session_timeout_ignored(make_boards):
    """Unlocked, then silent past S3: the clean firmware is back in the default session (the write refused), the
    bug's still unlocked (the write taken)."""
    clean, buggy = _both(make_boards, "session_timeout_ignored")
    for boards in (clean, buggy):
        seed = _seed(boards)
        assert boards.ask_uds(0x27, 0x02, *reference_security_key(seed, 1))[0][1:3] == bytes([0x67, 0x02])
        boards.run_for(S3_SERVER_S + 0.1)
    assert _write_ov_trip(clean)[1:4] == bytes([0x7F, 0x2E, 0x7F])
    assert _write_ov_trip(buggy)[1:4] == bytes([0x6E, 0x4B, 0x01])


def test_bug_tester_present_suppressed_ignored(make_boards):
    """Unlocked, then TesterPresent 0x3E 0x80 every 2 s past S3: the clean firmware's session stays open (the write
    taken), the bug's ends (refused). Neither answers the suppressed requests."""
    clean, buggy = _both(make_boards, "tester_present_suppressed_ignored")
    for boards in (clean, buggy):
        seed = _seed(boards)
        assert boards.ask_uds(0x27, 0x02, *reference_security_key(seed, 1))[0][1:3] == bytes([0x67, 0x02])
        for _ in range(math.ceil(S3_SERVER_S / 2) + 1):
            assert boards.ask_uds(0x3E, 0x80) == []
            boards.run_for(2.0)
    assert _write_ov_trip(clean)[1:4] == bytes([0x6E, 0x4B, 0x01])
    assert _write_ov_trip(buggy)[1:4] == bytes([0x7F, 0x2E, 0x7F])


def test_bug_functional_requests_ignored(make_boards):
    """TesterPresent to every ECU (0x7DF): the clean firmware answers it on 0x7E8, the bug's never hears it."""
    clean, buggy = _both(make_boards, "functional_requests_ignored")
    assert clean.ask_uds(0x3E, 0x00, message="UDS_FunctionalRequest")[0][:3] == bytes([0x02, 0x7E, 0x00])
    assert buggy.ask_uds(0x3E, 0x00, message="UDS_FunctionalRequest") == []
    assert buggy.ask_uds(0x3E, 0x00)[0][:3] == bytes([0x02, 0x7E, 0x00]), "physical requests still answered"


def test_bug_ov_trip_write_unbounded(make_boards):
    """Unlocked, the OV trip written 1 mV above the board's calibration: the clean firmware refuses it
    (requestOutOfRange) and keeps its trip; the bug's takes even 65.535 V."""
    clean, buggy = _both(make_boards, "ov_trip_write_unbounded")
    for boards in (clean, buggy):
        seed = _seed(boards)
        assert boards.ask_uds(0x27, 0x02, *reference_security_key(seed, 1))[0][1:3] == bytes([0x67, 0x02])
    factory_mv = round(clean.fw.cal["cell_ov_v"] * 1000)
    assert _write_ov_trip(clean, factory_mv + 1)[1:4] == bytes([0x7F, 0x2E, 0x31])
    assert round(clean.fw.cal["cell_ov_v"] * 1000) == factory_mv
    assert _write_ov_trip(clean, factory_mv - 50)[1:4] == bytes([0x6E, 0x4B, 0x01]), "lowering it is allowed"
    assert _write_ov_trip(buggy, 0xFFFF)[1:4] == bytes([0x6E, 0x4B, 0x01])
    assert buggy.fw.cal["cell_ov_v"] == 65.535
    assert _write_ov_trip(buggy, round(buggy.fw.cal["cell_uv_v"] * 1000))[1:4] == bytes([0x7F, 0x2E, 0x31]), \
        "the lower bound still holds"


def test_every_seeded_bug_has_its_test():
    tested = {name.removeprefix("test_bug_") for name in dir(sys.modules[__name__]) if name.startswith("test_bug_")}
    assert tested == set(BUGS), f"untested: {sorted(set(BUGS) - tested)}; stale: {sorted(tested - set(BUGS))}"


def test_stale_crc_is_the_crc_of_the_previous_payload(make_boards):
    """How the stale-CRC bug is built: byte 7 of each BMS_Status frame seals the frame before it."""
    buggy = make_boards(bugs=["stale_crc"])
    frames = []
    buggy.host.sender.on_send = lambda msg: frames.append(bytes(msg.data)) if msg.arbitration_id == 0x100 else None
    buggy.run_for(0.2)
    assert len(frames) >= 9, f"{len(frames)} BMS_Status frames in 0.2 s at a 20 ms cycle"
    assert all(later[7] == e2e.crc8_j1850(earlier[:7]) for earlier, later in itertools.pairwise(frames))
    assert any(frame[7] != e2e.crc8_j1850(frame[:7]) for frame in frames), "every frame sealed itself: no bug"


def test_contactor_stays_closed_is_only_a_fault_path_defect(make_boards):
    buggy = make_boards(bugs=["contactor_stays_closed"])
    buggy.power_up()
    buggy.request("standby")
    buggy.run_until(lambda: not buggy.closed, 0.2, "contactors open on a standby request")
