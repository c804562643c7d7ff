"""The reference firmware's calibration: every key, its default and its meaning.

Rig files list the whole table under `[dut.calibration]`, so an engineer sees it in one place. Defaults
follow foxBMS 2's timing (10 ms diagnosis task; voltage debounce 0.2-0.7 s, over-current about 0.1 s,
temperature about 1 s) and an NMC cell's 2.5-4.2 V window (DESIGN.md, "Reference numbers").
"""
from __future__ import annotations

from hil.datafile import Between
from hil.errors import ConfigError, did_you_mean

# key: (default, unit/meaning)
CALIBRATION = {
    "cell_ov_v": (4.25, "V, cell over-voltage error threshold"),
    "cell_uv_v": (2.70, "V, cell under-voltage error threshold"),
    "charge_oc_a": (10.0, "A, charge over-current error threshold"),
    "discharge_oc_a": (25.0, "A, discharge over-current error threshold"),
    "short_circuit_a": (60.0, "A, discharge current that is a short circuit: an error after sc_debounce_ms, not the "
                              "over-current debounce"),
    "sustained_oc_a": (21.5, "A, discharge over-current error threshold after the long delay: the pack's continuous "
                             "rating, above the published discharge limit by a host's control error"),
    "cell_ot_c": (60.0, "degC, cell over-temperature error threshold"),
    "cell_ut_c": (-20.0, "degC, cell under-temperature error threshold"),
    "ov_debounce_ms": (200, "ms the OV condition must hold before the error"),
    "uv_debounce_ms": (500, "ms the UV condition must hold before the error"),
    "oc_debounce_ms": (100, "ms an over-current must hold before the error"),
    "sustained_oc_debounce_ms": (3000, "ms a discharge current above sustained_oc_a must hold before the error: "
                                       "longer than a punch-out or a load step, shorter than the wiring takes to "
                                       "overheat"),
    "sc_debounce_ms": (0, "ms a short-circuit current must hold before the error (0: the first task that sees it; "
                          "an AFE's own short-circuit delay is a few hundred microseconds)"),
    "ot_debounce_ms": (1000, "ms an OT/UT condition must hold before the error"),
    "charge_limit_margin_a": (1.0, "A a charge current may exceed the published charge limit by (a charger's control "
                                   "error) before it counts as ignoring the limit"),
    "charge_limit_debounce_ms": (3000, "ms a charge current above the published charge limit (by more than "
                                       "charge_limit_margin_a) must hold before a charge_oc error: the time a charger "
                                       "gets to follow a falling limit"),
    "warning_margin_v": (0.05, "V inside the OV/UV thresholds where the warning tier starts"),
    "warning_margin_a": (2.0, "A inside the OC thresholds where the warning tier starts"),
    "warning_margin_c": (5.0, "degC inside the OT/UT thresholds where the warning tier starts"),
    "heartbeat_timeout_ms": (500, "ms without a VCU heartbeat before contactors open"),
    "precharge_timeout_ms": (500, "ms allowed for precharge before a precharge fault"),
    "precharge_match_pct": (95.0, "% of pack voltage the DC link must reach to close the main contactor"),
    "precharge_tau_ms": (30.0, "ms RC time constant of the emulated DC-link precharge"),
    "contactor_delay_ms": (30, "ms from the command until a contactor's feedback changes (20-50 ms real)"),
    "contactor_feedback_ms": (200, "ms a main contactor's feedback may disagree with its command before a contactor "
                                   "fault (welded, or failing to close)"),
    "soc_current_gain": (1.0, "gain error of the current sensor as the SOC estimator sees it"),
    "soc_current_offset_a": (0.0, "A offset error of the current sensor as the SOC estimator sees it"),
    "soc_rest_s": (180.0, "s at rest (|I| < rest current) before the OCV correction of SOC (~5 RC time constants)"),
    "soc_rest_current_a": (0.25, "A below which the pack counts as resting"),
    "soh_min_delta_soc": (0.3, "SOC (0-1) two OCV readings must lie apart for a capacity (SOH) estimate from the "
                               "charge counted between them (closer, the OCV curve's error dominates)"),
    "capacity_ah": (5.0, "Ah, the firmware's cell capacity for coulomb counting"),
    "afe_noise_v": (0.0015, "V, peak noise of the analog front end (LTC6813 class, +-1.5 mV)"),
    "balancing_enabled": (True, "passive balancing on or off"),
    "balance_threshold_mv": (20.0, "mV above the lowest cell at which a cell bleeds"),
    "balance_current_a": (0.1, "A bleed current of a balancing resistor"),
    "max_discharge_current_a": (20.0, "A, discharge current limit before derating"),
    "max_charge_current_a": (5.0, "A, charge current limit before derating"),
    "sop_margin_v": (0.2, "V above cell_uv_v the weakest cell may be loaded to (discharge SOP limit)"),
    "charge_sop_margin_v": (0.05, "V below cell_ov_v the highest cell may be charged to (charge SOP limit: the CV "
                                  "phase)"),
    "cell_r_est_ohm": (0.02, "ohm, the firmware's estimate of a cell's 10 s resistance, for the SOP limits"),
    "cell_r_activation_j_per_mol": (20000.0, "J/mol, the activation energy by which the SOP scales cell_r_est_ohm "
                                             "(stated at 25 degC) to the pack's median temperature; 0: no scaling"),
    "limit_rise_a_per_s": (5.0, "A/s, fastest rise of the discharge and charge current limits"),
    "open_current_max_a": (2.0, "A, largest current the contactors open at on a STANDBY request: above it the "
                                "limits go to 0 first and the BMS waits for the current to fall"),
    "open_wait_ms": (1000, "ms a STANDBY request under load waits for the current to fall before the contactors open "
                           "anyway (a host that keeps drawing)"),
    "self_discharge_window_s": (60.0, "s of rest over which each cell's mean voltage is compared with the last"),
    "self_discharge_mv": (0.5, "mV more drop than the median cell, window to window, flags self-discharge"),
    "derate_start_c": (45.0, "degC above which current limits derate linearly to 0 at cell_ot_c"),
    "charge_cold_zero_c": (0.0, "degC of the coldest cell at and below which the charge limit is 0 (charging a "
                                "cold cell plates lithium; LG INR21700-M50: charge 0-45 degC)"),
    "charge_cold_full_c": (10.0, "degC of the coldest cell from which the charge limit is full again, rising "
                                 "linearly from charge_cold_zero_c"),
    "discharge_cold_zero_c": (-20.0, "degC of the coldest cell at and below which the discharge limit is 0 (LG "
                                     "INR21700-M50: discharge -20-60 degC)"),
    "discharge_cold_full_c": (0.0, "degC of the coldest cell from which the discharge limit is full again, rising "
                                   "linearly from discharge_cold_zero_c (a cold cell's resistance sags it toward UV)"),
    "thermal_runaway_rate_c_per_s": (1.0, "degC/s a cell's temperature may rise faster than the pack's median cell's "
                                          "(each over the last second) before a thermal runaway is suspected"),
    "thermal_runaway_hold_ms": (3000, "ms the faster rise must last before the thermal-runaway error (GB 38031-2020 "
                                      "Annex C: dT/dt >= 1 degC/s lasting 3 s)"),
    "insulation_fault_ohm_per_v": (100.0, "ohm per volt of pack voltage below which the insulation to chassis is "
                                          "an error (100 ohm/V for DC: UN ECE R100, IEC 61557-8)"),
    "insulation_warning_ohm_per_v": (500.0, "ohm per volt below which the insulation is a warning"),
    "insulation_period_ms": (1000, "ms between the insulation monitor's readings (real monitors take seconds)"),
    "insulation_debounce_ms": (1000, "ms a reading must stay below the error level before the error"),
    "hvil_debounce_ms": (30, "ms the high-voltage interlock loop must read open before the hvil error (rides through "
                             "a connector's micro-interruptions under vibration)"),
    "afe_timeout_ms": (100, "ms of front-end reads failing their PEC (the isoSPI link broken) before the afe error; "
                            "the cells and thermistors are unknown meanwhile"),
    "current_plausibility_enabled": (True, "compare each current step the sensor reports with the step the cells' "
                                           "voltages make (a dead, frozen or reversed sensor leaves the over-current "
                                           "protection blind)"),
    "current_plausibility_mv": (30.0, "mV the median cell moves, or the reported current step times cell_r_est_ohm "
                                      "says it should, over the window, above which the two must agree"),
    "current_plausibility_window_ms": (200, "ms over which the current and the median cell's voltage steps are "
                                            "taken (short against the cells' RC relaxation)"),
    "current_plausibility_debounce_ms": (100, "ms the current and the cells must disagree before the current_sensor "
                                              "error (longer than the skew between the two readings)"),
    "current_offset_enabled": (True, "with every contactor open (nothing can flow), a current sensor reading more "
                                     "than current_offset_max_a either way is off by an offset: a current_sensor "
                                     "error (the coulomb count would take it for charge or discharge)"),
    "current_offset_max_a": (0.5, "A the current sensor may read, either way, with every contactor open"),
    "current_offset_debounce_ms": (200, "ms the reading must stay beyond current_offset_max_a before the "
                                        "current_sensor error (longer than a load takes to stop once they open)"),
    "resistance_check_enabled": (True, "estimate each block's resistance from the load steps and flag one that stands "
                                       "out from the median block's (a lost cell of a parallel block, a loosening "
                                       "busbar), derating the current limits by its ratio"),
    "resistance_step_min_a": (5.0, "A a load step must change the current by (steady before and after) to count for "
                                   "the resistance estimate: its voltage step must stand well above the front end's "
                                   "noise"),
    "resistance_steps": (20, "load steps per resistance estimate: the front end's noise averages out over them"),
    "resistance_ratio_max": (1.2, "a block's resistance over the median block's above which it is flagged (in two "
                                  "estimates in a row): 4 sigma of a 5 % spread of single cells; a block of six "
                                  "averages their spread, and one lost cell of six raises its resistance by 6/5"),
    "current_zero_enabled": (True, "auto-zero: the current sensor's mean reading while nothing can flow (every "
                                   "contactor open, within current_offset_max_a) is its zero, taken off every "
                                   "reading after (kept in NVM)"),
    "current_zero_window_ms": (1000, "ms of readings the zero is the mean of: long against the front end's noise"),
    "status_cycle_ms": (20, "ms between BMS_Status frames"),
    "sense_wire_v": (0.5, "V below which a cell reading means an open sense wire"),
    "supply_reset_v": (4.5, "V on the low-voltage input (KL30) below which the MCU's brown-out detector holds it in "
                            "reset"),
    "supply_ovlo_v": (32.0, "V on the low-voltage input above which the regulator's over-voltage lockout holds the "
                            "MCU in reset (above ISO 16750-2's 24 V jump start of a 12 V system)"),
    "boot_ms": (150, "ms from the supply's return until the firmware's first task (bootloader and start-up)"),
    "sleep_after_s": (5.0, "s without a host or tester frame, every contactor open (STANDBY or FAULT), before the "
                           "BMS sleeps until the next one (0: it never sleeps)"),
    "sleep_check_s": (5.0, "s between the wake-up timer's checks while asleep: the front end reads the cells once, "
                            "and one outside its trip levels wakes the BMS (0: never; production boards: hours)"),
    "nvm_save_period_s": (300.0, "s between the SOC's periodic writes to NVM (flash wear: rarely), besides the write "
                                 "on power fail"),
}


# What each value may be, beyond its type. A zero capacity or cycle divides by zero in the firmware; a negative
# time or current means nothing. Voltages span any lithium chemistry.
_POSITIVE = Between(0.0, low_open=True)
_NON_NEGATIVE = Between(0.0)
RANGES = {
    **dict.fromkeys(("cell_ov_v", "cell_uv_v", "sense_wire_v"), Between(0.0, 6.0)),
    **dict.fromkeys(("cell_ot_c", "cell_ut_c", "derate_start_c", "charge_cold_zero_c", "charge_cold_full_c",
                     "discharge_cold_zero_c", "discharge_cold_full_c"), Between(-60.0, 150.0)),
    **dict.fromkeys(("capacity_ah", "status_cycle_ms", "precharge_tau_ms", "heartbeat_timeout_ms",
                     "precharge_timeout_ms", "cell_r_est_ohm", "soc_current_gain", "limit_rise_a_per_s",
                     "self_discharge_window_s", "soc_rest_s", "balance_current_a", "max_discharge_current_a",
                     "charge_oc_a", "discharge_oc_a", "sustained_oc_a", "short_circuit_a", "insulation_period_ms",
                     "contactor_feedback_ms", "supply_reset_v", "supply_ovlo_v", "nvm_save_period_s",
                     "thermal_runaway_rate_c_per_s", "thermal_runaway_hold_ms", "current_plausibility_mv",
                     "current_plausibility_window_ms", "current_offset_max_a", "resistance_step_min_a",
                     "resistance_steps", "current_zero_window_ms", "open_current_max_a", "open_wait_ms"), _POSITIVE),
    **dict.fromkeys(("ov_debounce_ms", "uv_debounce_ms", "oc_debounce_ms", "ot_debounce_ms", "sc_debounce_ms",
                     "contactor_delay_ms", "warning_margin_v", "warning_margin_a", "warning_margin_c",
                     "soc_rest_current_a", "afe_noise_v", "sustained_oc_debounce_ms",
                     "balance_threshold_mv", "sop_margin_v", "charge_sop_margin_v", "self_discharge_mv",
                     "max_charge_current_a", "insulation_fault_ohm_per_v", "insulation_warning_ohm_per_v",
                     "insulation_debounce_ms", "boot_ms", "charge_limit_margin_a", "charge_limit_debounce_ms",
                     "hvil_debounce_ms", "afe_timeout_ms", "cell_r_activation_j_per_mol",
                     "current_plausibility_debounce_ms", "current_offset_debounce_ms", "sleep_after_s",
                     "sleep_check_s"), _NON_NEGATIVE),
    "precharge_match_pct": Between(0.0, 100.0, low_open=True),
    "soh_min_delta_soc": Between(0.0, 1.0, low_open=True),
    "resistance_ratio_max": Between(1.0, low_open=True),   # at or below 1, half the blocks stand out
}
# (lower key, upper key): thresholds that must not cross
ORDERED = (("cell_uv_v", "cell_ov_v"), ("cell_ut_c", "cell_ot_c"), ("derate_start_c", "cell_ot_c"),
           ("discharge_oc_a", "short_circuit_a"),   # else every over-current would be cut as a short
           # else a host that draws all the BMS allows is cut after the long delay, or the long delay never matters
           ("max_discharge_current_a", "sustained_oc_a"), ("sustained_oc_a", "discharge_oc_a"),
           ("oc_debounce_ms", "sustained_oc_debounce_ms"),
           ("charge_cold_zero_c", "charge_cold_full_c"), ("discharge_cold_zero_c", "discharge_cold_full_c"),
           ("insulation_fault_ohm_per_v", "insulation_warning_ohm_per_v"),
           ("contactor_delay_ms", "contactor_feedback_ms"),   # else every switching would be a contactor fault
           ("supply_reset_v", "supply_ovlo_v"))   # else no supply voltage would run the MCU


def calibration_from(table: dict, where: str) -> dict:
    """Defaults overlaid with `table` (the rig's `[dut.calibration]`), checked key by key."""
    unknown = sorted(set(table) - set(CALIBRATION))
    if unknown:
        hint = did_you_mean(unknown[0], CALIBRATION) if len(unknown) == 1 else ""
        raise ConfigError(f"{where}: unknown calibration key(s) {unknown}{hint}; known keys: {sorted(CALIBRATION)}")
    result = {key: default for key, (default, _) in CALIBRATION.items()}
    for key, value in table.items():
        default = CALIBRATION[key][0]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise ConfigError(f"{where}: calibration key '{key}' = {value!r}, expected {type(default).__name__}")
        if key in RANGES and value not in RANGES[key]:
            raise ConfigError(f"{where}: calibration key '{key}' = {value!r}, expected {RANGES[key]} "
                              f"({CALIBRATION[key][1]})")
        result[key] = value
    for low_key, high_key in ORDERED:
        if result[low_key] >= result[high_key]:
            raise ConfigError(f"{where}: calibration key '{low_key}' = {result[low_key]!r} is not below "
                              f"'{high_key}' = {result[high_key]!r}")
    return result
