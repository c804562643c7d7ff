"""The suite's power, measured from outside: a seeded bug is caught, and so is a calibration off spec."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SUITE_PASSED_ENV

ROOT = Path(__file__).resolve().parent.parent


def _hil(*args, timeout_s=600):
    return subprocess.run([sys.executable, "-m", "hil", *args], capture_output=True, text=True,
                          timeout=timeout_s, cwd=ROOT)


def _all_killed(bugs: list[str], selection: str) -> dict:
    """`hil mutants` with `bugs` on the tests `selection` (-k) picks: it must pass the clean firmware and catch
    every bug. Returns its JSON summary. Once the whole suite has passed on this rig (HIL_SUITE_PASSED: CI's `hil
    run`), the clean firmware's run is not repeated for each selection (--skip-clean)."""
    skip_clean = bool(os.environ.get(SUITE_PASSED_ENV))
    result = _hil("mutants", *(arg for bug in bugs for arg in ("--bug", bug)), "-k", selection, "-n", "1", "--json",
                  *(["--skip-clean"] if skip_clean else []))
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary["kill_rate"] == 1.0 and summary["clean_passed"] is (None if skip_clean else True), summary
    return summary


@pytest.mark.slow
def test_mutants_kills_a_seeded_bug_and_passes_the_clean_firmware():
    summary = _all_killed(["ov_off_by_one", "oc_discharge_ignored"], "overvoltage_opens or overcurrent_opens")
    assert summary["bugs"] == 2
    assert "test_cell_overvoltage_opens_contactors" in " ".join(summary["caught_by"]["ov_off_by_one"])


def test_measurement_defects_are_caught_by_the_accuracy_tests():
    """A swapped cell report and a 3 % current gain error pass every protection; the staircase and the
    current points of tests/bms/test_measurement.py catch them."""
    summary = _all_killed(["cell_report_swapped", "shunt_gain_uncalibrated"], "test_measurement")
    assert "test_cell_voltages_are_reported_within_accuracy" in " ".join(summary["caught_by"]["cell_report_swapped"])
    assert "test_pack_current_is_reported_within_accuracy" in " ".join(summary["caught_by"]["shunt_gain_uncalibrated"])


def test_calibration_off_spec_is_caught(tmp_path):
    """OV threshold 50 mV above the spec's tolerance band: the OV test must fail."""
    result = _hil("run", "--report", str(tmp_path), "--set", "dut.calibration.cell_ov_v=4.31",
                  "-k", "test_cell_overvoltage_opens_contactors", "-q")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "test_cell_overvoltage_opens_contactors" in result.stdout


def test_mutants_refuses_a_rig_without_seeded_bugs(tmp_path):
    rig = tmp_path / "plain.toml"
    text = (ROOT / "rigs" / "sim.toml").read_text().replace('"seeded_bugs"', '"plain"')
    rig.write_text(text.replace('"../', f'"{ROOT}/'))
    result = _hil("mutants", "--rig", str(rig))
    assert result.returncode == 2 and "seeded_bugs" in result.stderr and "Traceback" not in result.stderr


def test_mutants_refuses_a_misspelt_bug_before_any_run():
    """A bug the firmware does not have would run a suite whose failures count as a kill."""
    result = _hil("mutants", "--bug", "ov_of_by_one", "--json", timeout_s=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hil mutants --bug: unknown firmware bug(s) ['ov_of_by_one'] (did you mean 'ov_off_by_one'" in result.stderr
    assert "kill rate" not in result.stdout


@pytest.mark.parametrize("clean", ["run", "skipped"])
def test_mutants_refuses_a_selection_with_no_tests(clean):
    result = _hil("mutants", "--bug", "ov_off_by_one", "-k", "no_such_test_anywhere", "-n", "1",
                  *(["--skip-clean"] if clean == "skipped" else []), timeout_s=120)
    assert result.returncode == 2 and "no test of tests/bms matches -k 'no_such_test_anywhere'" in result.stderr
    assert "SURVIVED" not in result.stdout


def test_mutants_stops_when_the_clean_firmware_fails_the_suite():
    """An OV threshold off spec fails the OV test on the clean firmware: every bug would look caught."""
    result = _hil("mutants", "--set", "dut.calibration.cell_ov_v=4.31", "--bug", "soc_wrong_sign", "-k",
                  "test_cell_overvoltage_opens_contactors", "-n", "1", "--json", timeout_s=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED on clean firmware: test_protections::test_cell_overvoltage_opens_contactors" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["clean_passed"] is False and summary["bugs"] == 0 and "soc_wrong_sign" not in result.stdout


def test_contactor_sequence_defects_are_caught_by_the_precharge_test():
    """Main closed with precharge, and precharge left closed: both power up to NORMAL and pass every protection;
    tests/bms/test_precharge.py catches them from the BMS's contactor reports."""
    summary = _all_killed(["main_with_precharge", "precharge_left_closed", "precharge_without_timeout"],
                          "test_precharge")
    for bug in ("main_with_precharge", "precharge_left_closed"):
        assert "test_precharge_precedes_the_main_contactor" in " ".join(summary["caught_by"][bug])
    # A precharge that never times out completes on a healthy link; only the shorted one shows it.
    assert summary["caught_by"]["precharge_without_timeout"] == [
        "test_precharge::test_precharge_into_a_shorted_link_is_aborted"], summary


def test_a_charge_limit_that_ignores_the_fullest_cell_is_caught():
    """Tapering the charge limit by SOC alone passes every protection test; charging a spread pack near full
    at that limit drives its fullest cell into OV, which the charge ride-through test catches."""
    _all_killed(["charge_limit_by_soc_only"], "test_charging_a_spread_pack")


def test_derating_from_the_mean_temperature_is_caught():
    """Derating from the thermistors' mean passes the over-temperature test (its trip uses the hottest); one hot
    cell in the derating test shows the limits barely move."""
    _all_killed(["derating_from_mean_temperature"], "test_derating")


def test_derating_held_at_the_peak_temperature_is_caught():
    """Holding the hottest temperature seen passes the rising steps of the derating test (the peak is the
    present reading there); the limits' recovery once the cell cools catches it."""
    _all_killed(["derating_held_at_peak"], "test_derating")


def test_insulation_monitor_defects_are_caught():
    """Reading the insulation monitor only with the contactors open passes every other test; an insulation fault
    that appears in operation is caught by the insulation protection test. A report that keeps the first reading
    passes the protection test (the protection reads afresh); the accuracy test catches it."""
    summary = _all_killed(["insulation_checked_at_startup_only", "insulation_report_not_refreshed"],
                          "test_insulation")
    assert summary["caught_by"]["insulation_checked_at_startup_only"] == [
        "test_protections::test_insulation_fault_opens_contactors[positive]"], summary
    assert summary["caught_by"]["insulation_report_not_refreshed"] == [
        "test_measurement::test_insulation_resistance_is_reported_within_accuracy"], summary


def test_contactor_feedback_checks_of_one_pole_or_one_direction_are_caught():
    """Checking only the positive contactor's feedback passes every other test (no contactor welds unless the
    bench welds it); the weld test's negative case catches it, and its positive case does not. Checking the
    feedback only while a contactor is commanded open passes the weld tests; a contactor stuck open catches it.
    Not checking the precharge contactor's feedback passes the main contactors' weld tests; its own catches it."""
    summary = _all_killed(["contactor_feedback_positive_only", "contactor_checked_while_open_only",
                           "precharge_feedback_unchecked"], "test_welded or test_contactor_stuck_open")
    assert summary["caught_by"] == {
        "contactor_feedback_positive_only": ["test_protections::test_welded_contactor_is_detected[neg]"],
        "contactor_checked_while_open_only": ["test_protections::test_contactor_stuck_open_is_detected[pos]"],
        "precharge_feedback_unchecked": ["test_protections::test_welded_precharge_contactor_is_detected"]}, summary


def test_low_voltage_supply_defects_are_caught_each_by_its_own_case():
    """A brown-out level above the rated crank fails the crank case; an over-voltage lockout below the jump start,
    the jump start; a SOC saved only periodically, the first loss case (and every one); a SOC saved over its
    record while the BMS starts up, the bounce alone; faults kept in RAM only, the latched fault's cut."""
    summary = _all_killed(["brownout_reset_at_9v", "supply_ovlo_at_18v", "soc_saved_periodically_only",
                           "soc_saved_during_init", "faults_forgotten_on_reset"], "test_lv_supply")
    assert summary["caught_by"] == {
        "brownout_reset_at_9v": ["test_lv_supply::test_cold_crank_ride_through"],
        "supply_ovlo_at_18v": ["test_lv_supply::test_jump_start_ride_through"],
        "soc_saved_periodically_only": ["test_lv_supply::test_supply_loss_keeps_soc[cut]"],
        "soc_saved_during_init": ["test_lv_supply::test_supply_loss_keeps_soc[bounce]"],
        "faults_forgotten_on_reset": ["test_lv_supply::test_latched_fault_survives_a_supply_cut"]}, summary


def test_diagnostic_memory_defects_are_caught_by_the_dtc_test_and_the_audit():
    """DTCs kept in RAM survive no supply cut; a clear that clears nothing leaves the trip's DTC stored; a boot that
    starts no new operation cycle leaves it failed this cycle: the DTC test catches all three. A DTC table without
    the interlock's entry: the audit after the test that ends with the interlock open (hil/pytest_plugin.py,
    [diagnostics] stores_dtcs)."""
    summary = _all_killed(["dtc_kept_in_ram", "dtc_clear_ignored", "dtc_table_short", "dtc_cycle_bits_kept"],
                          "test_diagnostics or nothing_closes_onto")
    trip = "test_diagnostics::test_a_trip_is_stored_as_a_confirmed_dtc_until_a_tester_clears_it"
    assert summary["caught_by"] == {
        "dtc_kept_in_ram": [trip], "dtc_clear_ignored": [trip], "dtc_cycle_bits_kept": [trip],
        "dtc_table_short": ["test_protections::test_nothing_closes_onto_an_open_interlock"]}, summary


def test_dtc_record_defects_are_caught_by_the_snapshot_and_occurrence_tests():
    """A snapshot that points at the live measurements shows an idle pack after an over-current trip (the run
    stops at the first test that catches a bug); an occurrence counter that the host's fault clear zeroes reads
    none after two trips."""
    summary = _all_killed(["snapshot_points_at_live_data", "occurrence_reset_by_fault_clear"], "test_diagnostics")
    snapshot = "test_diagnostics::test_a_dtc_snapshot_holds_the_pack_as_it_tripped"
    occurrences = "test_diagnostics::test_each_occurrence_is_counted_and_the_first_snapshot_kept"
    assert summary["caught_by"] == {"snapshot_points_at_live_data": [snapshot],
                                    "occurrence_reset_by_fault_clear": [occurrences]}, summary


def test_host_frame_checks_are_caught_by_the_stale_and_corrupted_frame_tests():
    """A BMS that does not check the host's CRCs, or its alive counters, keeps its contactors closed on frames a
    hung or disturbed host sends: each is caught by its own case (the heartbeat-loss tests, which stop the frames,
    pass and run first). One whose counter check never resynchronises trips on the first frame lost on its way:
    only the lost-frame test sees it (the others end with the host gone anyway). One that resynchronises only after
    frames in sequence takes a single loss, and trips on a burst: only the burst test sees it."""
    summary = _all_killed(["rx_crc_unchecked", "rx_counter_unchecked", "rx_counter_no_resync",
                           "rx_resync_waits_for_sequence"],
                          "stale_or_corrupted or heartbeat_loss or lost_now_and_then or lost_host_frames")
    test = "test_protections::test_stale_or_corrupted_host_frames_are_a_lost_heartbeat"
    assert summary["caught_by"] == {
        "rx_crc_unchecked": [f"{test}[bad_crc]"], "rx_counter_unchecked": [f"{test}[frozen_counter]"],
        "rx_counter_no_resync": ["test_protections::test_a_host_frame_lost_now_and_then_is_not_a_lost_heartbeat"],
        "rx_resync_waits_for_sequence": [
            "test_protections::test_a_burst_of_lost_host_frames_inside_the_timeout_is_not_a_lost_heartbeat"]}, \
        summary


def test_shutdown_defects_are_caught_by_the_shutdown_tests():
    """A BMS that opens under load at a STANDBY request, and one that waits for the current to fall forever."""
    summary = _all_killed(["opens_under_load", "open_waits_for_zero_current"], "standby_request or keeps_drawing")
    test = "test_precharge::test_a_{}"
    assert summary["caught_by"] == {
        "opens_under_load": [test.format("standby_request_under_load_opens_once_the_host_has_stopped_drawing")],
        "open_waits_for_zero_current": [test.format("host_that_keeps_drawing_cannot_hold_the_contactors_closed")],
    }, summary


def test_interlock_defects_are_caught_by_the_interlock_tests():
    """An interlock checked only in NORMAL passes every other test (no other test opens the loop), and so does
    one read without a debounce; the open-loop test catches both: the first closes again after a clear with the
    loop still open, the second trips on the connector's chatter. The key-on test catches the first on its own."""
    summary = _all_killed(["hvil_checked_in_normal_only", "hvil_not_debounced"], "interlock")
    assert summary["caught_by"] == {
        "hvil_checked_in_normal_only": ["test_protections::test_open_interlock_opens_contactors_until_cleared"],
        "hvil_not_debounced": ["test_protections::test_open_interlock_opens_contactors_until_cleared"]}, summary
    alone = _all_killed(["hvil_checked_in_normal_only"], "nothing_closes_onto")   # the key-on case catches it too
    assert alone["caught_by"] == {
        "hvil_checked_in_normal_only": ["test_protections::test_nothing_closes_onto_an_open_interlock"]}, alone


def test_current_sensor_checks_blind_to_a_frozen_sensor_or_a_charge_offset_are_caught():
    """A plausibility check that judges only the steps the sensor reports still catches a dead sensor; the frozen
    sensor's load step catches it. A zero-current check of the signed reading still catches an offset that reads
    discharge; the one that reads charge catches it."""
    summary = _all_killed(["current_frozen_unchecked", "current_offset_positive_only"], "current_sensor")
    assert summary["caught_by"] == {
        "current_frozen_unchecked": [
            "test_protections::test_a_current_sensor_that_stops_measuring_is_detected[frozen]"],
        "current_offset_positive_only": [
            "test_protections::test_a_current_sensor_offset_is_seen_while_nothing_flows[reads_charge]"],
    }, summary


@pytest.mark.slow
def test_a_capacity_estimate_that_never_moves_is_caught():
    """An SOH estimate that divides by the SOC its own counting moved stays at 100 % as the cells fade; no test but
    the faded pack's sees it."""
    summary = _all_killed(["soh_from_counted_soc"], "soh_follows")
    assert summary["caught_by"] == {"soh_from_counted_soc": ["test_soc::test_soh_follows_a_faded_pack"]}, summary


def test_a_self_discharge_check_blinded_by_balancing_is_caught():
    """The leaking cell of a spread pack is the one every other cell bleeds towards: a check that waits for
    balancing to stop never looks."""
    summary = _all_killed(["self_discharge_paused_by_balancing"], "self_discharging")
    assert summary["caught_by"] == {"self_discharge_paused_by_balancing": [
        "test_pack_health::test_self_discharging_cell_is_flagged"]}, summary


def test_a_short_circuit_cut_after_the_overcurrent_debounce_is_caught():
    """A short-circuit check that waits out the over-current debounce still cuts the short, and names it: only
    the reaction time shows it, and the short-circuit test measures it."""
    summary = _all_killed(["short_circuit_debounced_as_oc"], "short_circuit")
    assert summary["caught_by"] == {"short_circuit_debounced_as_oc": [
        "test_protections::test_short_circuit_opens_contactors_before_the_overcurrent_debounce"]}, summary


def test_sustained_overload_defects_are_caught_by_the_long_delay_and_warning_tests():
    """A long-delay counter that adds bursts up, and one ten times too slow: both pass the peak level's tests (the
    selection runs them too); only the sustained overload's bursts and its reaction time catch them. A warning left
    at the peak level passes every trip: the warning's staircase finds it above its band."""
    summary = _all_killed(["sustained_oc_no_reset", "sustained_oc_in_slow_task", "oc_warning_at_peak_level_only"],
                          "overcurrent or discharge_oc")
    sustained = "test_protections::test_a_sustained_overload_below_the_overcurrent_level_is_cut_after_its_long_delay"
    assert summary["caught_by"] == {
        "sustained_oc_no_reset": [sustained], "sustained_oc_in_slow_task": [sustained],
        "oc_warning_at_peak_level_only": ["test_trip_points::test_warning_is_raised_within_its_band[discharge_oc]"]}, \
        summary


def test_a_peak_limit_published_as_the_continuous_one_is_caught():
    """A discharge limit above the long-delay level passes every protection and ride-through test that caps its load
    at the limit in bursts (the drone's punch-outs too); only a host drawing the limit past the long delay is cut."""
    summary = _all_killed(["peak_limit_published"], "drawing_all or punch_out or sustained_overload")
    assert summary["caught_by"] == {"peak_limit_published": [
        "test_protections::test_a_host_drawing_all_the_bms_allows_is_never_cut_by_the_long_delay"]}, summary
    # and the requirement that caught it, as the catching test names it
    assert summary["caught_by_requirement"] == {"peak_limit_published": ["protections.discharge_oc_sustained"]}


def test_a_pack_that_will_not_discharge_while_asked_to_charge_is_caught():
    """A discharge limit of 0 in charge mode, and contactors that reopen when the request changes, pass every other
    ride-through test, which asks for discharge from the start: a grid loss during a recharge catches both."""
    summary = _all_killed(["no_discharge_in_charge_mode", "mode_change_reopens"], "ride_through or grid_loss")
    flicker = ["test_ride_through::test_a_grid_loss_while_the_pack_recharges_is_carried_at_once"]
    assert summary["caught_by"] == {"no_discharge_in_charge_mode": flicker, "mode_change_reopens": flicker}, summary


def test_a_faded_block_read_by_the_count_alone_is_caught():
    """An emptiest-block SOC counted from the spread seen at rest passes a spread pack's end of discharge (and every
    other test: a whole run with it fails this one alone); a block of less capacity parts from the count under load,
    and the faded-block discharge sees it. Only that test runs here: the spread one adds 40 s for nothing new."""
    summary = _all_killed(["faded_block_counted"], "faded_block and to_empty")
    assert summary["caught_by"] == {"faded_block_counted": [
        "test_ride_through::test_discharging_a_pack_with_a_faded_block_to_empty_follows_the_limit_without_a_trip"]}, \
        summary


def test_charging_a_cold_pack_is_caught():
    """A charge limit that derates toward the under-temperature threshold lets a cell at 5 degC charge at full
    current: the cold-charge steps of the derating suite catch it."""
    summary = _all_killed(["cold_charge_from_ut"], "coldest")
    assert summary["caught_by"] == {"cold_charge_from_ut": [
        "test_derating::test_charge_limit_falls_to_zero_with_the_coldest_cell"]}, summary


def test_discharging_a_cold_pack_at_full_current_is_caught():
    """A discharge limit blind to the cold passes every protection test (no test draws current from a cold cell);
    the cold discharge steps of the derating suite catch it."""
    summary = _all_killed(["cold_discharge_not_derated"], "coldest")
    assert summary["caught_by"] == {"cold_discharge_not_derated": [
        "test_derating::test_discharge_limit_derates_with_the_coldest_cell"]}, summary


def test_warning_tier_defects_are_caught_by_the_warning_tests():
    """A warning that comes with the trip, and warnings that latch, pass every protection test (the protections
    are right); the warning tests catch the first at its over-voltage case, the second at its first case."""
    summary = _all_killed(["ov_warning_at_fault_level", "warnings_latched"], "test_warning_comes")
    assert summary["caught_by"] == {
        "ov_warning_at_fault_level": ["test_warnings::test_warning_comes_before_the_trip_and_clears[cell_ov]"],
        "warnings_latched": ["test_warnings::test_warning_comes_before_the_trip_and_clears[cell_ov]"]}, summary
    # The insulation case on its own catches a latch too, and an insulation monitor read only while the
    # contactors are open (its warning never comes in operation).
    insulation = _all_killed(["warnings_latched", "insulation_checked_at_startup_only"],
                             "test_warning_comes and insulation")
    case = ["test_warnings::test_warning_comes_before_the_trip_and_clears[insulation]"]
    assert insulation["caught_by"] == {"warnings_latched": case, "insulation_checked_at_startup_only": case}, insulation


def test_a_runaway_check_on_each_cells_own_rise_is_caught():
    """A thermal-runaway check on each cell's own rise catches a runaway too; the even heating that opens the
    runaway test (a hard load's) trips it."""
    summary = _all_killed(["thermal_rate_absolute"], "test_thermal_runaway")
    assert summary["caught_by"] == {
        "thermal_rate_absolute": ["test_protections::test_thermal_runaway_is_flagged_before_overtemperature"]}, summary


def test_a_charger_ignoring_the_charge_limit_is_caught_both_ways():
    """Holding a charger to the fixed over-current level only lets it charge a cold pack below that level; cutting
    it off the moment the limit falls trips one that is still following. The charge-limit test catches each: the
    first by its last step, the second by its ride-through."""
    summary = _all_killed(["charge_limit_not_enforced", "charge_limit_enforced_at_once"], "ignoring_the_charge_limit")
    assert summary["caught_by"] == dict.fromkeys(
        ("charge_limit_not_enforced", "charge_limit_enforced_at_once"),
        ["test_derating::test_charger_ignoring_the_charge_limit_is_cut_off"]), summary


def test_a_diagnosis_that_names_the_wrong_block_is_caught():
    """The flag is raised and the limits fall as they should; only the block named on CAN is one off, which the test
    that weakened a known block sees."""
    summary = _all_killed(["resistance_block_off_by_one"], "resistance_rose")
    assert summary["caught_by"] == {"resistance_block_off_by_one": [
        "test_pack_health::test_a_block_whose_resistance_rose_is_flagged_and_derated[busbar]"]}, summary


def test_this_benchs_newer_fault_insertions_are_each_caught_by_their_own_test():
    """A contactor checked only as it switches, a passive insulation bridge, a recovery without precharge, front-end
    reads whose failures are ignored and an SOP sized warm: each passes every test but its own."""
    summary = _all_killed(["contactor_checked_at_switching_only", "insulation_symmetric_bridge",
                           "fault_clear_skips_precharge", "afe_errors_ignored", "sop_resistance_at_25c"],
                          "drops_out or insulation_fault_opens or cleared_fault or front_end_link or corners")
    assert summary["caught_by"] == {
        "contactor_checked_at_switching_only": [
            "test_protections::test_a_contactor_that_drops_out_under_load_is_detected[pos]"],
        "insulation_symmetric_bridge": ["test_protections::test_insulation_fault_opens_contactors[middle]"],
        "fault_clear_skips_precharge": ["test_precharge::test_a_cleared_fault_closes_again_through_the_precharge"],
        "afe_errors_ignored": ["test_protections::test_a_lost_front_end_link_opens_the_contactors"],
        "sop_resistance_at_25c": [
            "test_ride_through::test_the_discharge_limit_holds_the_cells_up_at_the_corners[low_soc]"]}, summary


def test_sleep_defects_are_caught_by_the_sleep_tests():
    """A BMS that falls asleep while its host still talks (its timer from the last close request), one that leaves
    its front end awake asleep, one that never sleeps in FAULT, one that never checks its cells asleep, one whose
    every check is a boot, and one whose check reads the cells but not the thermistors: the talking-host test sees
    the first's gap, the quiescent current the second, the test in FAULT the third, the parked test the last three
    (the last only where a cell heats)."""
    summary = _all_killed(["sleep_timer_from_close_request", "front_end_left_on_in_sleep", "sleeps_in_standby_only",
                           "parked_cells_unchecked", "parked_check_boots", "parked_check_voltages_only"],
                          "test_sleep")
    parked = "test_sleep::test_a_parked_bms_wakes_by_itself_for_a_cell_out_of_range_and_for_nothing_else"
    assert summary["caught_by"] == {
        "sleep_timer_from_close_request": ["test_sleep::test_a_host_that_keeps_talking_keeps_the_bms_awake"],
        "front_end_left_on_in_sleep": [
            "test_sleep::test_an_idle_bms_sleeps_at_its_quiescent_current_and_wakes_on_the_hosts_next_frame"],
        "sleeps_in_standby_only": ["test_sleep::test_a_bms_left_in_fault_sleeps_too_and_wakes_with_its_fault"],
        "parked_cells_unchecked": [f"{parked}[cell_uv]"], "parked_check_boots": [f"{parked}[cell_uv]"],
        "parked_check_voltages_only": [f"{parked}[cell_ot]"]}, summary


def test_under_voltage_defects_under_load_are_caught_each_by_its_own_test():
    """A cut-off judged on the reading plus the load's drop through the cells passes at idle: only the case under
    load catches it. A debounce that adds up dips passes every steady test: only the repeated dips catch it."""
    summary = _all_killed(["uv_ir_compensated", "uv_debounce_no_reset"], "undervoltage")
    assert summary["caught_by"] == {
        "uv_ir_compensated": ["test_protections::test_cell_undervoltage_opens_contactors[under_load]"],
        "uv_debounce_no_reset": [
            "test_protections::test_undervoltage_dips_under_load_shorter_than_debounce_do_not_trip"]}, summary


def test_security_access_defects_are_caught_each_by_its_own_test():
    """Eight ways to weaken the guard on a protected write, or the session it needs, each with a security test of
    its own: the key not asked for, the value's range not checked, no lockout, the same seed, a lockout a reset
    clears (the sim rig has `lv_supply`), no session timeout, a keep-alive the session does not see, one sent to
    every ECU that the BMS does not hear."""
    summary = _all_killed(["write_checks_session_only", "ov_trip_write_unbounded", "security_attempts_unlimited",
                           "security_seed_constant", "security_lockout_in_ram", "session_timeout_ignored",
                           "tester_present_suppressed_ignored", "functional_requests_ignored"], "test_security_access")
    lockout = "test_security_access::test_wrong_keys_lock_the_tester_out_a_reset_included"
    assert summary["caught_by"] == {
        "write_checks_session_only": [
            "test_security_access::test_a_protected_write_needs_the_extended_session_and_the_key"],
        "ov_trip_write_unbounded": ["test_security_access::test_a_protected_write_out_of_range_is_refused"],
        "security_attempts_unlimited": [lockout], "security_seed_constant": [lockout],
        "security_lockout_in_ram": [lockout],
        "session_timeout_ignored": ["test_security_access::test_an_unlocked_session_ends_when_the_tester_goes_quiet"],
        "tester_present_suppressed_ignored": [
            "test_security_access::test_tester_present_keeps_an_unlocked_session_open[physical]"],
        "functional_requests_ignored": [
            "test_security_access::test_tester_present_keeps_an_unlocked_session_open[functional]"],
    }, summary
