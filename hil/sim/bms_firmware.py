"""Reference BMS firmware, emulated: what a production BMS does, driven only through CAN and its AFE.

- A 10 ms main task (measure, protect, state machine, SOC) and a 100 ms slow task (limits, balancing).
- The analog front end reads the cell-emulator board once per main task: +-`afe_noise_v` noise and
  16-bit quantisation at 100 uV/LSB (LTC6813 class).
- States INIT -> STANDBY -> PRECHARGE -> NORMAL -> FAULT (latched until the host clears it) and SAFE.
- Every protection has a threshold and a debounce time; the warning tier sits a margin inside it. The
  insulation to chassis is read from a monitor once per measurement cycle (seconds, as real ones take): an active
  one (it switches a known resistor onto a pole, or injects a signal), which reads a fault wherever along the stack.
- A cell whose temperature rises faster than the pack's median cell, by `thermal_runaway_rate_c_per_s` held for
  `thermal_runaway_hold_ms`, is a thermal runaway in its onset: an error, well before the cell reaches OT.
- Each contactor's auxiliary contact (its feedback) is compared with its command: one that stays closed after the
  BMS opened it is welded (a main or the precharge one), one that stays open after the BMS closed it has failed
  to close. Either way the BMS latches a contactor fault and opens everything; a weld's fault cannot be cleared
  while it lasts.
- The high-voltage interlock loop (HVIL: a low-current loop through every HV connector and cover, whose pins
  break before the power pins) is a digital input read each main task: open for `hvil_debounce_ms`, it is an
  error in any state, so the BMS neither stays closed nor closes onto an unplugged connector.
- The cells and thermistors are read through the front end (an AFE on an isoSPI daisy chain); reads that fail
  their PEC for `afe_timeout_ms` (the link broken) are an `afe` error: the last values read are no longer the pack.
- The discharge and charge limits (SOP) are the currents at which the weakest (fullest) cell would sit a margin
  inside UV (OV), through `cell_r_est_ohm` scaled to the pack's median temperature by its activation energy.
- The current sensor is checked against the cells: in NORMAL, each main task compares the current step it reports
  over the last `current_plausibility_window_ms` with the step the median cell's voltage made (through
  `cell_r_est_ohm`). Where either is above `current_plausibility_mv`, they must agree in sign and within a factor
  of ten, else, for `current_plausibility_debounce_ms`, it is a `current_sensor` error: a sensor that reads 0 A
  under load, repeats a frozen reading through a load step, or reads reversed leaves the over-current and
  short-circuit protection blind. With every contactor open (STANDBY, FAULT, SAFE), a reading beyond
  `current_offset_max_a` either way for `current_offset_debounce_ms` is an offset: a `current_sensor` error too;
  nothing closes while one reading is beyond it. A reading within it, held for `current_zero_window_ms`, is the
  sensor's zero (auto-zero): its mean is kept in NVM and taken off every reading after, so a pack that idles closed
  (a backup unit at float, for months) does not count the offset as charge or discharge.
- Each block's resistance is estimated from the load steps in NORMAL (a step of at least `resistance_step_min_a`,
  the current steady before and after it): over `resistance_steps` steps, the least-squares ratio of each block's
  voltage step to the current step. A block above `resistance_ratio_max` times the median block in two estimates
  in a row is flagged (BMS_Diagnosis, latched until the faults are cleared): a lost cell of a parallel block (its
  neighbours then carry its share) or a loosening busbar. The current limits are then derated by its ratio, so
  each of the block's remaining cells carries no more than it was rated for.
- The MCU runs from the low-voltage supply (KL30): below `supply_reset_v` its brown-out detector (above
  `supply_ovlo_v` its regulator's over-voltage lockout) holds it in reset (dark: contactors open, nothing
  sent); it boots `boot_ms` after the supply returns, with fresh RAM and the SOC it wrote to NVM (on the
  power-fail interrupt, and every `nvm_save_period_s`). Latched faults are written to NVM as they latch, so a
  reset does not clear them: it boots into FAULT until the host clears them.
- SOC by coulomb counting, read off the OCV after a rest; the charge counted between two such readings far enough
  apart (`soh_min_delta_soc`) is the capacity, whose ratio to `capacity_ah` is the SOH (kept in NVM, and the
  capacity the counting then divides by). Each block's SOC is the pack's plus its own spread, read off its OCV at
  the same rests (less what it has bled since) and kept in NVM: the emptiest and fullest blocks' SOCs are reported
  (`BMS_SOC_Min`, `BMS_SOC_Max`), and the discharge limit tapers by the emptiest, so a spread pack's emptiest
  block is not run past empty while the mean says some is left. Near empty, under a moderate discharge, the
  emptiest block's SOC is also read off its loaded voltage, and the lower taken: a block of less capacity empties
  faster than the count, where no rest shows it.
- Current limits: the discharge and charge limits derate with the hottest cell and with the coldest (to 0 at
  `discharge_cold_zero_c` and `charge_cold_zero_c`) and taper with SOC (the discharge limit with the emptiest
  block's; the charge limit with the pack's, to a tenth), and each
  also follows the voltage headroom of the weakest (discharge) or fullest (charge) cell. A charger that stays
  above the published charge limit (by `charge_limit_margin_a`, for `charge_limit_debounce_ms`) is cut off as a
  charge over-current.
- A diagnostic server (UDS over ISO-TP, `hil.sim.uds_server`) answers a tester from the main task: the build, and
  the DTC of each error that latched (`hil.protocol.DTCS`), kept in NVM until a tester clears it; behind security
  access, a write that lowers the OV trip (`set_cell_ov_trip`).
- Seeded bugs (`bugs`) are realistic firmware defects, switched on by name, to measure a suite's power:
  protection, state-machine, contactor-sequence, current-limit and CAN-integrity defects, and measurement
  defects (a cell reported in the wrong slot, an uncalibrated current gain) that only a comparison with
  what the bench applies catches.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
from cantools.database import Database

from hil.can import e2e
from hil.can.dbc import decode
from hil.can.periodic import PeriodicSender
from hil.errors import ConfigError, did_you_mean
from hil.protocol import (DTC_FAILED_THIS_CYCLE, DTC_LATCHED_STATUS, DTC_PENDING, DTC_TEST_FAILED, DTCS, FAULT_BITS,
                          SNAPSHOT_FIRST, SNAPSHOT_LATEST, UDS_FUNCTIONAL_ID, UDS_REQUEST_ID, BmsState, ModeRequest)
from hil.reductions import aall, aany, aclip, amax, greatest, least
from hil.model.cell import GAS_CONSTANT_J_PER_MOL_K, KELVIN_OFFSET
from hil.sim.cell_emulator_board import CellEmulatorBoard
from hil.sim.uds_server import UdsServer

MAIN_TASK_S = 0.010
SLOW_TASK_S = 0.100
AFE_LSB_V = 100e-6
VERSION = (1, 2, 0)   # major, minor, patch, as BMS_Version reports them (1.2: BMS_Version itself)
VERSION_TEXT = ".".join(map(str, VERSION))   # "1.2.0": the build as the harness reads it off BMS_Version
FIRMWARE_VERSION = "ref-bms " + VERSION_TEXT   # as the debug UART reports it
DTC_TABLE_SHORT_BITS = 16   # dtc_table_short: the DTC table as it was before BMS_FaultBits grew past 16 bits
# The least fraction of max_charge_current_a the SOC taper leaves near full (see _slow_task).
CHARGE_TAPER_FLOOR = 0.1
# Where the firmware itself keeps every contactor open, so that with their feedback open too, nothing flows.
ZERO_CURRENT_STATES = (BmsState.STANDBY, BmsState.FAULT, BmsState.SAFE)
# The self-discharge check compares a cell with the median of the cells that have settled; of fewer than
# this many, the median is no reference (two cells: one leaking would be half of it).
MIN_CELLS_TO_COMPARE = 3
FAULT_LOG_ENTRIES = 64  # a ring in the MCU's RAM: the oldest entry goes when it is full
PLAUSIBLE_C = (-50.0, 150.0)  # a thermistor reading outside this range (exclusive) is an open or shorted sensor
# A capacity estimate outside this fraction of the rated capacity is a current sensor's fault (dead, reversed),
# not the cells': the SOH keeps its last value (and the SOC counting never divides by a capacity near 0).
PLAUSIBLE_SOH = (0.3, 1.3)
# A cell's temperature rise is taken over this window, one reading per slow task: long enough that the sensors'
# 0.5 degC steps and a single reading's glitch are small against the 1 degC/s it is compared with.
RUNAWAY_WINDOW_S = 1.0
# How far the cells' voltage step and the current sensor's step (through cell_r_est_ohm) may disagree and still
# agree: the cells' may be a tenth to ten times it. The resistance rises four-fold from 25 to -20 degC (the LG M50
# file's Arrhenius term) and with age, and cell_r_est_ohm is a 10 s figure; a dead or frozen sensor shows no step
# at all, a reversed one the wrong sign.
CURRENT_AGREEMENT = 0.1
# A load step counts for the resistance estimate when the current read before it and after it is steady: two
# readings in a row within this fraction of resistance_step_min_a. Its "before" is the older of the last steady
# pair before the step: the cells' voltages reach the front end up to a task after the current (their frames are
# spread over the setpoint period), so the newer one may already hold part of the step. Its "after" must come
# within RESISTANCE_STEP_S, before the cells' RC branches relax far.
STEADY_FRACTION = 0.1
RESISTANCE_STEP_S = 0.05
RESISTANCE_CONFIRMATIONS = 2   # estimates in a row that must single out the same block
# The learned zero of the current sensor goes to NVM only when it has moved by more than this: a STANDBY learns it
# every second, and a data-flash write per second would wear the flash out in weeks.
ZERO_NVM_STEP_A = 0.01

# rx_resync_waits_for_sequence: AUTOSAR E2E's MaxDeltaCounter (a jump of one lost frame is fine) and SyncCounter
# (frames in sequence before one is taken again), as such a receiver may be configured.
MAX_DELTA_COUNTER = 2
RESYNC_FRAMES = 2

# The emptiest block's SOC is read off its loaded voltage below this counted SOC, at this C-rate at most
# (_update_loaded_soc_min).
LOADED_SOC_BELOW = 0.15
LOADED_SOC_MAX_C = 1.5

# name -> what the defect is. Each is checked where the firmware would have it.
# A 10 s peak discharge figure over the continuous one (seeded bug "peak_limit_published").
PEAK_LIMIT_FACTOR = 1.2
BUGS = {
    "ov_off_by_one": "OV check skips the last cell (loop bound off by one)",
    "ov_debounce_no_reset": "OV debounce counter never resets when the condition clears",
    "uv_debounce_no_reset": "the UV debounce counter never resets when the cell recovers (a copy of the OV check's "
                            "old defect): each of a drone's punch-outs at low charge sags the emptiest cell below the "
                            "cut-off for a moment, and the moments add up to a trip mid-flight",
    "oc_discharge_ignored": "discharge over-current compares against the charge threshold sign",
    "soc_wrong_sign": "coulomb counting adds discharge current instead of subtracting it",
    "soc_spread_ignored": "the SOC is one number, the blocks' mean: the emptiest and fullest blocks' SOCs report it, "
                          "and the discharge limit tapers by it, so a spread pack's emptiest block runs past empty "
                          "while the host is told some is left",
    "fault_not_latched": "a fault clears itself once the condition goes away",
    "heartbeat_ignored_charge": "the heartbeat timeout is not checked in charge mode",
    "uv_threshold_mv_typo": "UV threshold compared in the wrong unit (2.7 mV instead of 2.7 V)",
    "ot_ignores_last_sensor": "the OT check ignores the last temperature sensor",
    "stale_crc": "BMS_Status CRC computed before the counter is updated (stale CRC)",
    "opens_under_load": "a STANDBY request opens the contactors at once, whatever current flows: every normal "
                        "shutdown under load breaks it, and contacts rated for a few such breaks weld",
    "open_waits_for_zero_current": "a STANDBY request under load waits for the current to fall with no time limit: "
                                   "a host that keeps drawing keeps the contactors closed",
    "rx_crc_unchecked": "the host's frames are acted on without their CRC checked: a corrupted frame refreshes the "
                        "heartbeat and its request is followed",
    "rx_counter_unchecked": "the host's alive counters are not checked: a hung host whose CAN controller keeps "
                            "re-sending its last frame keeps the contactors closed",
    "rx_resync_waits_for_sequence": "after a host frame's alive counter jumps by more than two (more than one frame "
                                    "lost), the E2E check drops frames until two have come in sequence (AUTOSAR's "
                                    "SyncCounter): after a burst of lost frames, a gateway's reboot, the heartbeat "
                                    "goes two cycles longer unrefreshed, past its timeout, and the contactors open "
                                    "under a healthy host",
    "rx_counter_no_resync": "a host frame is taken only with the alive counter of the last frame taken plus one: "
                            "one frame lost on its way (a gateway's full queue, a host task that overran) and every "
                            "later frame is out of sequence and dropped, so the heartbeat times out under a healthy "
                            "host and the contactors open (a rack dropped onto its backup, a drone's power cut)",
    "uv_ir_compensated": "the under-voltage check adds the discharge current times cell_r_est_ohm to each cell's "
                         "reading (an open-circuit voltage, meant to ride through a drone's sag) before comparing it "
                         "with cell_uv_v, a terminal-voltage limit: under load a cell below its cut-off is judged above "
                         "it and over-discharged",
    "status_counter_stuck": "the BMS_Status alive counter never increments",
    "security_attempts_unlimited": "wrong security keys are answered invalidKey for ever, never locked out: a "
                                   "tester on the bus may try key after key until one unlocks the protected writes",
    "security_seed_constant": "the security seed is the same at every request: a key sniffed once on the bus "
                              "unlocks the BMS for ever after (a replay)",
    "security_lockout_in_ram": "the failed security attempts are counted in RAM: a reset (a power cycle) clears a "
                               "lockout, so key after key can be tried, three between resets",
    "write_checks_session_only": "a protected write (the OV trip) checks the extended session but not security "
                                 "access: any tester that opens the session may change a protection threshold",
    "tester_present_suppressed_ignored": "a TesterPresent whose positive answer is suppressed (0x3E 0x80) is "
                                         "dropped with its answer, before the session layer sees it: a workshop "
                                         "tool's keep-alive, sent that way every 2 s, does not restart S3, and its "
                                         "unlocked session ends under it mid-job",
    "functional_requests_ignored": "the CAN acceptance filter passes the diagnostic server's physical request ID "
                                   "only, not the functional one (0x7DF): a workshop tool that keeps every ECU's "
                                   "session with one functional TesterPresent (as when flashing a vehicle) keeps all "
                                   "but the BMS's, whose unlocked session ends mid-job",
    "parked_cells_unchecked": "asleep, the BMS never wakes by itself (no wake-up timer): a parked pack's cell that "
                              "leaks to empty, or heats, goes unseen until the host's next frame, and no DTC records "
                              "it meanwhile",
    "parked_check_voltages_only": "the wake-up timer's check converts the cell voltages only, its thermistor "
                                  "channels skipped to save the front end's current: a parked pack's cell that heats "
                                  "goes unseen until the host wakes the BMS",
    "parked_check_boots": "each of the wake-up timer's checks is a full boot, frames and all, whatever the cells "
                          "read: a parked BMS wakes its bus, and the ECUs that sleep on it, every sleep_check_s",
    "ov_trip_write_unbounded": "a write of the OV trip is checked against the UV trip only, with no upper bound: an "
                               "unlocked tester (a service tool's typo, a stolen key) raises it past the cell's limit, "
                               "and the pack charges on into lithium plating and venting",
    "session_timeout_ignored": "the extended session never times out (no S3 timer): a tester that unlocked and "
                               "went away leaves the BMS open to protected writes from anybody on the bus",
    "sleep_timer_from_close_request": "the sleep timer runs from the host's last request to close, not from its last "
                                      "frame: a backup unit whose rack controller keeps it in STANDBY, talking to it "
                                      "and waiting for a grid loss, falls asleep, and must first wake up (a boot) "
                                      "when the grid goes",
    "sleeps_in_standby_only": "the BMS goes to sleep from STANDBY only: one left in FAULT by a host that went away "
                              "(a vehicle parked after a trip, a rack controller shut down) stays awake and drains "
                              "the 12 V battery while nobody is there to clear the fault",
    "front_end_left_on_in_sleep": "the cell front end is not put to sleep with the MCU: asleep, the board draws "
                                  "tens of mA from its 12 V supply, which drains a parked vehicle's battery in weeks",
    "contactor_stays_closed": "on a fault the main contactors are not opened once they were closed",
    "balancing_during_fault": "passive balancing keeps bleeding after the BMS has gone to FAULT",
    "self_discharge_paused_by_balancing": "the self-discharge check skips every window with balancing on: blind "
                                          "to a leaking cell that the others bleed towards",
    "mv_sum_overflow": "pack voltage summed in a signed 16-bit mV accumulator that wraps above 32.767 V",
    "cell_report_swapped": "BMS_CellVoltages reports cells 2 and 3 in each other's slots (a reporting table off by one)",
    "shunt_gain_uncalibrated": "the current sensor's gain calibration is not applied: every current reading 3 % high",
    "ut_ignored_in_charge": "the under-temperature check is skipped while charging is requested, so a cold pack "
                            "charges (lithium plating)",
    "main_with_precharge": "the main contactor is commanded together with the precharge contactor, closing onto "
                           "an empty DC link (inrush that welds contacts)",
    "precharge_without_timeout": "the precharge waits for the DC link with no timeout: into a shorted link the "
                                 "precharge contactor stays closed, its resistor carrying the short's current, and no "
                                 "fault is raised",
    "precharge_left_closed": "the precharge contactor is not opened when the main contactor closes (its resistor "
                             "then carries load current)",
    "charge_limit_by_soc_only": "the charge current limit tapers by SOC alone, not by the highest cell's voltage: a "
                                "charger that follows it drives the fullest cell of a spread pack into OV",
    "derating_from_mean_temperature": "the current limits derate from the mean of the thermistors instead of the "
                                      "hottest: one hot cell barely lowers them",
    "insulation_checked_at_startup_only": "the insulation monitor is read only while the contactors are open, so an "
                                          "insulation fault that appears in operation goes unseen",
    "derating_held_at_peak": "the current limits derate from the hottest temperature seen since power-up (a peak "
                             "hold meant for the service log), so they stay low after the pack has cooled",
    "contactor_feedback_positive_only": "only the positive contactor's feedback is compared with its command: a "
                                        "welded negative contactor goes unseen",
    "contactor_checked_while_open_only": "a main contactor's feedback is compared with its command only while it is "
                                         "commanded open: a weld is caught, but a contactor that fails to close goes "
                                         "unseen, and the BMS sits in NORMAL with no path for current and no fault",
    "precharge_feedback_unchecked": "the precharge contactor's feedback is not compared with its command: welded "
                                    "shut, it keeps the DC link live through its resistor once the main contactors "
                                    "open, and the BMS closes them again on the next request",
    "afe_errors_ignored": "a front-end read that fails its PEC keeps the last good values and raises nothing: with "
                          "the link broken the BMS judges a pack frozen at that moment, and a cell charged past OV "
                          "goes unseen",
    "sop_resistance_at_25c": "the SOP limits are sized by the cells' 25 degC resistance at any temperature: in a "
                             "cold pack, a host that follows the discharge limit drags the weakest cell into UV",
    "fault_clear_skips_precharge": "a fault cleared while the host still asks to close goes straight back to NORMAL, "
                                   "closing both main contactors at once onto a DC link the load has drained: no "
                                   "precharge, the inrush that welds them",
    "contactor_checked_at_switching_only": "a contactor's feedback is compared with its command only in the "
                                           "second after the firmware switches it: a weld or a contactor that fails "
                                           "to close is caught, but one that drops out in operation (its coil's "
                                           "supply lost) goes unseen, and the BMS reports NORMAL with no path for "
                                           "current",
    "insulation_symmetric_bridge": "the insulation is judged by how far chassis sits from the pack's midpoint "
                                   "(a passive bridge of equal resistors from each pole), as if every fault were at a "
                                   "pole: a fault halfway up the stack moves chassis nowhere, and goes unseen",
    "insulation_report_not_refreshed": "BMS_Insulation keeps the monitor's first reading after power-up (its "
                                       "protection uses every reading): the VCU and service tools see a healthy "
                                       "pack while its insulation degrades",
    "soc_saved_during_init": "the power-fail interrupt saves the SOC in every state, INIT too, before the SOC was "
                             "read back from NVM: a supply that drops again while the BMS starts up (a chattering "
                             "connector) overwrites the saved SOC with RAM's default",
    "brownout_reset_at_9v": "the MCU's brown-out reset is set to 9 V (a wrong option-byte level) instead of the "
                            "regulator's limit, so an engine crank that the BMS is rated to ride through reboots it "
                            "and drops its contactors",
    "thermal_rate_absolute": "the thermal-runaway check takes each cell's own temperature rise, not its rise above "
                             "the pack's median cell: a pack that a hard load heats evenly (a drone's punch-out, a "
                             "rack's sustained peak) trips as a runaway",
    "sustained_oc_no_reset": "the long-delay over-current counter never resets as the current falls back (a copy of "
                             "the UV check's counter): a drone's punch-outs or a rack's load steps, each short of "
                             "the delay, add up to a trip mid-flight",
    "peak_limit_published": "the discharge limit carries the 10 s peak figure (1.2 times the continuous one), as a "
                            "peak-power SOP mistaken for the continuous one: a host that draws what it is allowed "
                            "for longer than the long delay is cut",
    "faded_block_counted": "the emptiest block's SOC is the count alone, from the spread seen at the last rest, never "
                           "read off its loaded voltage: a block of less capacity than the rest reads charge left "
                           "when it has none (3.6 % at the end on the reference pack, with a block at 80 %)",
    "no_discharge_in_charge_mode": "the discharge limit is 0 while the host asks to charge (a vehicle's rule at a "
                                   "charger): a grid loss while a backup unit recharges drops the rack until the host "
                                   "has asked to discharge, and the limit has ramped back up",
    "mode_change_reopens": "a switch between the host's charge and discharge requests opens the contactors and closes "
                           "them again through the precharge (a state per mode): a host that asks to discharge once a "
                           "grid loss has come drops the rack for the precharge",
    "sustained_oc_in_slow_task": "the long-delay over-current check runs in the 100 ms task with its delay counted in "
                                 "the 10 ms task's ticks: a stalled motor or a soft short is cut ten times late",
    "oc_warning_at_peak_level_only": "the discharge warning comes at the peak over-current level less the margin "
                                     "only, as before the long-delay level was added: an overload between the two "
                                     "levels is cut after the delay with no notice to the host",
    "short_circuit_debounced_as_oc": "the short-circuit check waits out the over-current debounce (a copied line) "
                                     "instead of its own: a short is cut about 100 ms late, after the harness of a "
                                     "drone or a rack's busbar has carried it that long",
    "cold_charge_from_ut": "the charge limit derates toward the under-temperature threshold (full at cell_ut_c + 20 "
                           "degC, 0 at cell_ut_c), as the discharge side may, instead of being 0 below 0 degC: the "
                           "pack charges at half current at -10 degC and plates lithium",
    "charge_limit_not_enforced": "the charge current is checked against the fixed charge over-current level only, "
                                 "not against the charge limit the BMS publishes: a charger that ignores a limit of 0 "
                                 "(a cold cell) charges on below that level and plates lithium",
    "charge_limit_enforced_at_once": "a charge current above the published limit is an error in the first task "
                                     "that sees it, with no time for the charger to follow: each time the limit "
                                     "falls (a cell cools, the pack nears full) a charger still following it is cut "
                                     "off",
    "cold_discharge_not_derated": "the discharge limit derates with heat only, not with the coldest cell: a drone "
                                  "at -15 degC may draw its full current from cells whose resistance has risen "
                                  "several-fold, sagging them toward UV",
    "faults_forgotten_on_reset": "latched faults live in RAM only: a reset of the BMS's supply (a key cycle, a "
                                 "chattering KL30 connector) clears an over-current trip, and the next close "
                                 "request closes onto whatever caused it",
    "dtc_kept_in_ram": "the DTC memory lives in RAM only: a reset of the BMS's supply loses every stored DTC, and "
                       "a workshop reading it after a key cycle finds no record of a trip the host has cleared",
    "dtc_clear_ignored": "ClearDiagnosticInformation answers positively but clears nothing: a tester's clear "
                         "leaves every old DTC stored",
    "dtc_table_short": "the DTC table ends at bit 15: the errors added with the 24-bit BMS_FaultBits (hvil, "
                       "current_sensor) latch and open the contactors, but store no DTC",
    "dtc_cycle_bits_kept": "a boot does not start a new operation cycle for the DTCs: testFailedThisOperationCycle "
                           "and pendingDTC stay set for a fault cleared cycles ago, and a workshop takes it for one "
                           "that is still coming back",
    "snapshot_points_at_live_data": "a DTC's snapshot record keeps a pointer to the live measurements, not a copy: "
                                    "a tester reads the pack as it is now (contactors open, no current), not as it "
                                    "was when the error latched",
    "occurrence_reset_by_fault_clear": "the DTC occurrence counters live with the latched faults: the host's fault "
                                       "clear zeroes them, so a fault that keeps coming back reads as its first",
    "ov_warning_at_fault_level": "the over-voltage warning compares the cells with cell_ov_v itself (a copied line), "
                                 "not with cell_ov_v less warning_margin_v: the warning comes with the trip, and a "
                                 "charger gets no notice to taper",
    "warnings_latched": "warnings latch, as the self-discharge diagnosis rightly does (until a fault is cleared, or "
                        "a reset): a drone's punch-out that touched the over-current warning leaves its VCU derating "
                        "for the rest of the flight",
    "hvil_checked_in_normal_only": "the interlock loop is checked in the NORMAL state's handler only: with a "
                                   "connector unplugged, a close request precharges and closes the contactors onto its "
                                   "exposed pins before the check opens them again",
    "hvil_not_debounced": "the interlock loop's input is not debounced: one reading of an open loop is an error, so "
                          "a connector's micro-interruption under vibration (a drone's motors, a rack's fans) opens "
                          "the contactors mid-flight",
    "soh_from_counted_soc": "the capacity estimate divides the charge counted between two rests by the SOC change "
                            "the counting itself made (which the rated capacity set) instead of the change the two "
                            "OCV readings show: SOH stays at 100 % as the cells fade, and the SOC runs ahead of them",
    "current_frozen_unchecked": "the current plausibility check judges only the current steps the sensor reports: "
                                "one that drops to 0 A under load is caught, but a sensor frozen at its last reading "
                                "reports no step, and the load steps it misses (a short among them) go unjudged",
    "current_offset_positive_only": "the zero-current check compares the signed reading with the offset limit: a "
                                    "sensor that reads discharge with nothing flowing is caught, one that reads "
                                    "charge is not, and the coulomb count takes its offset for charge",
    "supply_ovlo_at_18v": "the supply regulator's over-voltage lockout is set to 18 V (ISO 16750-2's long-term "
                          "overvoltage) instead of above its 24 V jump start: jump-starting the vehicle resets the "
                          "BMS and drops its contactors",
    "resistance_block_off_by_one": "BMS_Diagnosis reports the high-resistance block counted from 0 in a field counted "
                                   "from 1: service replaces the block below the bad one, and a bad first block reads "
                                   "as none",
    "current_zero_added": "the sensor's zero, learned with every contactor open, is added to each reading instead of "
                          "taken off (a sign slip): the offset doubles, and an idle pack's SOC runs away twice as fast",
    "soc_saved_periodically_only": "the SOC is written to NVM every nvm_save_period_s only, not on the power-fail "
                                   "interrupt: a loss of the low-voltage supply loses the charge counted since",
}
CLOSE_REQUESTS = (ModeRequest.DISCHARGE, ModeRequest.CHARGE)   # the host's requests to close the contactors
# The contactors whose feedback (auxiliary contact) the firmware checks against its command: both main ones and
# the precharge one.
CHECKED_CONTACTORS = ("pos", "neg", "pre")
TX_MESSAGES = ("BMS_Status", "BMS_PackData", "BMS_Limits", "BMS_SOC", "BMS_CellStats", "BMS_CellVoltages",
               "BMS_CellTemps", "BMS_BalancingMask", "BMS_Insulation", "BMS_Diagnosis", "BMS_Version")
INSULATION_REPORT_MAX_KOHM = 65535   # BMS_InsulationResistance's top: no reading yet, or at or above it
# contactor_checked_at_switching_only: how long after switching a contactor the buggy firmware still compares its
# feedback; longer than precharge, delay and the feedback's debounce, so welds and failures to close are caught.
SWITCHING_CHECK_S = 1.0
SOP_REFERENCE_C = 25.0   # degC at which cell_r_est_ohm is stated
# insulation_symmetric_bridge: each of the bridge's resistors, from a pole to chassis.
SYMMETRIC_BRIDGE_OHM = 1.0e6
BUGGY_RESET_V = 9.0  # brownout_reset_at_9v
BUGGY_OVLO_V = 18.0  # supply_ovlo_at_18v
# Inside the brown-out (and over-voltage) level by this much before the MCU leaves reset, so a supply hovering at
# the level does not reset it again and again (a brown-out detector's hysteresis, ~0.1-0.2 V).
BROWNOUT_HYSTERESIS_V = 0.2
# What the board draws from its 12 V input: the electronics, and each closed contactor's coil (economised to a
# holding current once closed). For the lab supply's current read-back; no test depends on the values.
ECU_SUPPLY_A = 0.12
COIL_HOLD_A = 0.25
# Asleep, the board draws only its regulator's quiescent current and the CAN transceiver listening for a wake-up
# frame: the order of an automotive KL30 ECU's quiescent-current budget (0.1-1 mA), 0.3 mA here. Its front end left
# awake (front_end_left_on_in_sleep) adds an isoSPI bridge and measurement chip's active current, ~15 mA.
SLEEP_SUPPLY_A = 0.0003
FRONT_END_AWAKE_A = 0.015
SHUNT_GAIN_ERROR = 1.03  # shunt_gain_uncalibrated: the part's raw gain, which calibration would have trimmed to 1


def _middle(values: np.ndarray) -> float:
    """The median of an odd count, the upper of the two middle values of an even one: one partial sort, not
    np.median's sort and mean. One value far off (a cell forced or open, a weak block) moves it little."""
    n = values.size
    return float(np.partition(values, n // 2)[n // 2])


def _unit(fraction: float) -> float:
    """A fraction held to 0..1, as a SOC is reported."""
    return min(1.0, max(0.0, fraction))


def _fraction_along(temperature_c: float, zero_c: float, full_c: float) -> float:
    """A current limit's fraction of full on a line from 0 at zero_c to full at full_c, clamped to [0, 1]."""
    return _unit((temperature_c - zero_c) / (full_c - zero_c))


def _counter_step(message, counter: int, last: int) -> int:
    """How far a host frame's alive counter is on from the last one taken, modulo the counter's range: 1 in
    sequence, 2 after one lost frame."""
    return (counter - last) % (1 << message.get_signal_by_name(f"{message.name}_Counter").length)


class Debounce:
    """Condition must hold for `debounce_s` of consecutive task runs."""

    def __init__(self, debounce_s: float, reset: bool = True):
        self.limit = max(1, round(debounce_s / MAIN_TASK_S))
        self.count = 0
        self.reset = reset

    def update(self, condition: bool) -> bool:
        if condition:
            self.count += 1
        elif self.reset:
            self.count = 0
        return self.count >= self.limit


def check_bugs(bugs, where: str = "firmware") -> None:
    """A ConfigError naming `where` (a rig file's `[dut] bugs`) for a seeded bug this firmware does not have."""
    if isinstance(bugs, str) or not all(isinstance(bug, str) for bug in bugs):
        raise ConfigError(f"{where}: expected a list of bug names, e.g. [\"ov_off_by_one\"]; got {bugs!r}")
    unknown = sorted(set(bugs) - set(BUGS))
    if unknown:
        hint = did_you_mean(unknown[0], BUGS) if len(unknown) == 1 else ""
        raise ConfigError(f"{where}: unknown firmware bug(s) {unknown}{hint}; known: {sorted(BUGS)}")


def symmetric_bridge_reading_ohm(fault_ohm: float, position: float) -> float:
    """(insulation_symmetric_bridge) What a passive bridge (SYMMETRIC_BRIDGE_OHM from each pole to chassis) reads
    for `fault_ohm` connected at `position` (its share of the pack voltage above the negative pole). Chassis sits off
    the pack's midpoint by V * |position - 1/2| * g_f / (2 g_b + g_f), in conductances; the reading is the fault at a
    pole that would put it there: right at either pole, infinite at the midpoint."""
    if not math.isfinite(fault_ohm):
        return fault_ohm
    g_bridge, g_fault = 1.0 / SYMMETRIC_BRIDGE_OHM, 1.0 / max(fault_ohm, 1e-9)
    shift = abs(2.0 * position - 1.0) * g_fault / (2.0 * g_bridge + g_fault)   # 2 |offset| / V
    return math.inf if shift <= 0.0 else (1.0 - shift) / (2.0 * g_bridge * shift)


class BmsFirmware:
    def __init__(self, cal: dict, n_cells: int, ocv_soc, ocv_v, board: CellEmulatorBoard, db: Database,
                 sender: PeriodicSender, *, bugs=(), seed: int = 0, where: str = "firmware"):
        check_bugs(bugs, where)
        self.cal = dict(cal)   # its own: a tester may lower the OV trip (set_cell_ov_trip)
        self._factory_ov_v = cal["cell_ov_v"]
        self.bugs = frozenset(bugs)
        # The DTC table, fault bit -> DTC: what _update_dtcs stores and the diagnostic server knows.
        self.dtc_table = {bit: DTCS[name] for name, bit in FAULT_BITS.items()
                          if bit < DTC_TABLE_SHORT_BITS or "dtc_table_short" not in self.bugs}
        self.n_cells = n_cells
        self.board = board
        self._ocv_soc = np.asarray(ocv_soc)
        self._ocv_v = np.asarray(ocv_v)
        self._rng = np.random.default_rng(seed)
        unchecked = {name for name, bug in (("neg", "contactor_feedback_positive_only"),
                                            ("pre", "precharge_feedback_unchecked")) if bug in self.bugs}
        self._checked_contactors = tuple(name for name in CHECKED_CONTACTORS if name not in unchecked)
        self._unchecked_closed = "contactor_checked_while_open_only" in self.bugs
        # The low-voltage supply (KL30): the MCU runs while it is above the brown-out level; what it keeps across
        # a power cycle is in `nvm` (data flash), everything else is RAM and starts afresh at each boot.
        self.reset_v = BUGGY_RESET_V if "brownout_reset_at_9v" in self.bugs else cal["supply_reset_v"]
        self.ovlo_v = BUGGY_OVLO_V if "supply_ovlo_at_18v" in self.bugs else cal["supply_ovlo_v"]
        self.powered = True
        self.nvm: dict[str, float | int] = {}
        self._boot_s: float | None = None    # when a booting MCU runs its first task
        # Asleep: powered but stopped, every contactor open, silent on the bus, until a host or tester frame wakes
        # it (a partial-networking transceiver's selective wake-up, ISO 11898-2:2016: the cell emulator's traffic
        # on a shared bench bus neither keeps it awake nor wakes it). Waking is a boot, `boot_ms` long.
        self.asleep = False
        self._next_check_s = math.inf   # the wake-up timer's next cell check, while asleep
        self._init_ram(0.0)
        self._vcu = {m.frame_id: m for m in db.messages if m.name.startswith("VCU_")}
        # The CAN controller's acceptance filter for a tester's frames: the physical request ID and the functional.
        self._uds_ids = ((UDS_REQUEST_ID,) if "functional_requests_ignored" in self.bugs
                         else (UDS_REQUEST_ID, UDS_FUNCTIONAL_ID))
        self._add_tx(sender)
        self.uds = UdsServer(self, sender, VERSION_TEXT, seed)

    def _init_ram(self, now_s: float) -> None:
        """The firmware's RAM as it starts at `now_s`: at power-up, and again at each boot after a brown-out."""
        self.state = BmsState.INIT
        self._unpowered_s = now_s  # last task time the front end read no cell at all
        self.mode = ModeRequest.STANDBY
        self._closed_for = ModeRequest.STANDBY
        self._clear_request = False
        # Latched error bits: kept in NVM, written as each latches, so that a reset (a key cycle, a chattering
        # connector) cannot clear a fault whose cause may still be there.
        self.faults = 0 if "faults_forgotten_on_reset" in self.bugs else int(self.nvm.get("faults", 0))
        # The DTC memory, DTC -> its status byte (hil/sim/uds_server.py reads it out): in NVM, as the faults.
        self.dtcs: dict[int, int] = {} if "dtc_kept_in_ram" in self.bugs else dict(self.nvm.get("dtcs", {}))
        # With each DTC: its snapshot records (SNAPSHOT_FIRST and SNAPSHOT_LATEST -> hil.protocol.SNAPSHOT_DIDS'
        # names -> values) and how many times its error has latched since the last clear.
        self.dtc_snapshots: dict[int, dict[int, dict[str, float]]] = {
            code: dict(records) for code, records in self._dtc_nvm().get("snapshots", {}).items()}
        self.dtc_occurrences: dict[int, int] = dict(self._dtc_nvm().get("occurrences", {}))
        self._dtc_faults: int | None = None   # the latched faults the DTCs were last brought up to date with
        self.active = 0          # error conditions present now
        self.warnings = 0
        self.warnings_latched = 0  # slow diagnoses (self-discharge) that stay reported until cleared
        n_cells = self.n_cells
        self._leak_sum_v = np.zeros(n_cells)
        self._leak_samples = 0
        self._leak_previous_v = None
        self._leak_mask = np.zeros(n_cells, dtype=bool)   # each cell's bleed state, as last seen at rest
        self._leak_steady_since_s = np.zeros(n_cells)      # since when each cell has rested in that state
        self._leak_window_start_s = self._leak_previous_start_s = 0.0
        self.cell_v = np.zeros(n_cells)
        self.temp_c = np.full(n_cells, 25.0)
        self._afe_failed = False   # this task's front-end read failed its PEC (the link to it broken)
        self.current_a = 0.0
        self.raw_current_a = 0.0   # the sensor's reading before its zero is taken off
        # Auto-zero: the sensor's reading when nothing can flow, kept in NVM (written when it moves by ZERO_NVM_STEP_A).
        self.current_zero_a = float(self.nvm.get("current_zero_a", 0.0))
        self._zero_sum_a = 0.0
        self._zero_tasks = 0
        self.pack_v = 0.0
        self.link_v = 0.0
        self.soc = 0.5
        self._loaded_soc_min = math.inf   # no reading of the emptiest block's loaded voltage yet
        # Each block's SOC less the pack's, read off the OCV at rest (less its bleed since), kept in NVM with it.
        saved_spread = self.nvm.get("soc_spread")
        self._soc_spread = np.array(saved_spread if saved_spread and len(saved_spread) == n_cells else [0.0] * n_cells)
        # State of health: the capacity last measured between two OCV readings, over the rated capacity_ah. Kept
        # in NVM (written once per estimate); coulomb counting divides by the capacity it stands for.
        self.soh = float(self.nvm.get("soh", 1.0))
        self._counted_ah = 0.0          # charge counted out of the pack since boot (discharge positive)
        self._ocv_anchor: tuple[float, float] | None = None   # (SOC read off the OCV, _counted_ah then)
        self.balancing = np.zeros(n_cells, dtype=bool)
        self.discharge_limit_a = 0.0
        self.charge_limit_a = 0.0
        self._stop_requested_s: float | None = None   # a STANDBY request under load, holding the contactors since
        self.contactor_cmd = {"pos": False, "neg": False, "pre": False}
        self.contactor_fb = dict(self.contactor_cmd)
        self._contactor_change_s: dict[str, float | None] = {k: None for k in self.contactor_cmd}
        self._none_moving = dict(self._contactor_change_s)
        self._switched = (dict(self.contactor_cmd), now_s)   # contactor_checked_at_switching_only: last command, when
        self._state_entry_s = now_s
        self._rest_s = 0.0
        self._last_heartbeat_s: float | None = None
        # The sleep timer's start: the last host or tester frame (the buggy one's: the last request to close).
        self._idle_since_s = now_s
        # Task times are run * period, never accumulated, so no rounding drift; after a boot, from the next one.
        self._main_runs = math.ceil(now_s / MAIN_TASK_S - 1e-9)
        self._slow_runs = math.ceil(now_s / SLOW_TASK_S - 1e-9)
        self.rx_bad_crc = 0
        self.rx_repeated = 0
        self._rx_counters: dict[str, int] = {}   # each host message's last alive counter received
        self._rx_sync_left: dict[str, int] = {}   # (rx_resync_waits_for_sequence) frames in sequence still wanted
        # (uptime ms, FAULT_BITS name) each time a fault latches, oldest first; read over the debug UART.
        self.fault_log: deque[tuple[int, str]] = deque(maxlen=FAULT_LOG_ENTRIES)
        self._logged_faults = 0
        cal = self.cal
        deb = lambda key, **kw: Debounce(cal[key] / 1000.0, **kw)
        self._deb = {
            "cell_ov": deb("ov_debounce_ms", reset="ov_debounce_no_reset" not in self.bugs),
            "cell_uv": deb("uv_debounce_ms", reset="uv_debounce_no_reset" not in self.bugs),
            "charge_oc": deb("oc_debounce_ms"),
            "discharge_oc": deb("oc_debounce_ms"), "cell_ot": deb("ot_debounce_ms"),
            # The long-delay level (reported as discharge_oc too); sustained_oc_in_slow_task: ten times the delay.
            "sustained_oc": Debounce(cal["sustained_oc_debounce_ms"] / 1000.0
                                     * (SLOW_TASK_S / MAIN_TASK_S if "sustained_oc_in_slow_task" in self.bugs else 1),
                                     reset="sustained_oc_no_reset" not in self.bugs),
            "short_circuit": deb("oc_debounce_ms" if "short_circuit_debounced_as_oc" in self.bugs
                                 else "sc_debounce_ms"),
            "cell_ut": deb("ot_debounce_ms"), "sense_wire": Debounce(0.03), "thermistor": Debounce(0.1),
            "insulation": deb("insulation_debounce_ms"), "contactor": deb("contactor_feedback_ms"),
            "thermal_runaway": deb("thermal_runaway_hold_ms"),
            "hvil": Debounce(0.0) if "hvil_not_debounced" in self.bugs else deb("hvil_debounce_ms"),
            "afe": deb("afe_timeout_ms"),
            "current_sensor": deb("current_plausibility_debounce_ms"),
            "current_offset": deb("current_offset_debounce_ms"),   # reported as current_sensor too
            # A charger ignoring the published limit, below the charge over-current level; it gets the debounce
            # to follow a falling limit.
            "charge_limit": Debounce(0.0) if "charge_limit_enforced_at_once" in self.bugs
            else deb("charge_limit_debounce_ms"),
        }
        # (median cell voltage, current) of the last current_plausibility_window_ms of main tasks, oldest first.
        window_tasks = max(1, round(cal["current_plausibility_window_ms"] / 1000 / MAIN_TASK_S))
        self._iv_window: deque[tuple[float, float]] = deque(maxlen=window_tasks + 1)
        self._temp_history_c: np.ndarray | None = None   # the last RUNAWAY_WINDOW_S of readings, a ring by slow task
        self._runaway_suspected = False
        self._offset_seen = False   # this task's zero-current reading beyond current_offset_max_a (not debounced)
        # The resistance estimate: (cell_v, current, time) of the last task and of the last steady "before" reading;
        # per block the sums of voltage step x current step, and of current step squared, over this estimate's steps.
        self._r_last: tuple[np.ndarray, float, float] | None = None
        self._r_before: tuple[np.ndarray, float, float] | None = None
        self._r_sum_vi = np.zeros(n_cells)
        self._r_sum_ii = 0.0
        self._r_steps = 0
        self._r_suspect: tuple[int, int] | None = None   # (block, estimates in a row above the ratio)
        self.high_resistance_block: int | None = None   # flagged (0-based), latched
        self.block_resistance_ratio = 0.0
        self.insulation_ohm = math.inf   # the insulation monitor's latest reading, pack to chassis
        self.insulation_report_ohm: float | None = None   # what BMS_Insulation says of it; None: no reading yet
        self._insulation_next_s = now_s
        self._peak_c = -math.inf         # derating_held_at_peak: the hottest reading since power-up
        self._nvm_next_s = now_s              # the first periodic write once the SOC is known (after INIT)
        self._soc_from_nvm = "soc" in self.nvm  # a boot with a saved SOC starts from it, not from the OCV

    # CAN transmit ----------------------------------------------------------------------------------------
    def _add_tx(self, sender: PeriodicSender) -> None:
        self._sender = sender
        status_s = self.cal["status_cycle_ms"] / 1000.0
        sender.add("BMS_Status", provider=self._status_signals, cycle_s=status_s)
        # Each further message starts 1 ms after the one before, as a CAN stack's transmit schedule would,
        # so the 100 ms messages do not all land in one tick (that tick is the loop's worst case).
        self._tx_offsets_s = {name: i * 0.001 for i, name in enumerate(TX_MESSAGES)}   # kept to restart after a boot
        offset_s = self._tx_offsets_s
        sender.add("BMS_PackData", start_s=offset_s["BMS_PackData"], provider=lambda: {
            "BMS_PackVoltage": self.pack_v, "BMS_PackCurrent": self.current_a})
        sender.add("BMS_Limits", start_s=offset_s["BMS_Limits"], provider=lambda: {
            "BMS_DischargeCurrentLimit": self.discharge_limit_a, "BMS_ChargeCurrentLimit": self.charge_limit_a,
            "BMS_DischargeVoltageLimit": self.cal["cell_uv_v"] * self.n_cells,
            "BMS_ChargeVoltageLimit": (self.cal["cell_ov_v"] - self.cal["warning_margin_v"]) * self.n_cells})
        sender.add("BMS_SOC", start_s=offset_s["BMS_SOC"], provider=lambda: {
            "BMS_SOC": 100.0 * _unit(self.soc), "BMS_SOH": 100.0 * self.soh,
            "BMS_SOC_Min": 100.0 * _unit(self.soc_min), "BMS_SOC_Max": 100.0 * _unit(self.soc_max)})
        sender.add("BMS_CellStats", start_s=offset_s["BMS_CellStats"], provider=self._cell_stats)
        sender.add("BMS_CellVoltages", start_s=offset_s["BMS_CellVoltages"], provider=self._cell_voltage_frames)
        sender.add("BMS_CellTemps", start_s=offset_s["BMS_CellTemps"], provider=lambda: [
            {"BMS_CellTemps_Mux": m, **{f"BMS_Temp{c + 1:02d}": min(87.5, max(-40.0, self.temp_c[c]))
                                        for c in range(7 * m, min(7 * m + 7, self.n_cells))}}
            for m in range((self.n_cells + 6) // 7)])
        sender.add("BMS_BalancingMask", start_s=offset_s["BMS_BalancingMask"], provider=self._balancing_frames)
        sender.add("BMS_Insulation", start_s=offset_s["BMS_Insulation"], provider=lambda: {
            "BMS_InsulationResistance": self._insulation_report_kohm()})
        sender.add("BMS_Diagnosis", start_s=offset_s["BMS_Diagnosis"], provider=self._diagnosis_signals)
        sender.add("BMS_Version", dict(zip(("BMS_SwMajor", "BMS_SwMinor", "BMS_SwPatch"), VERSION)),
                   start_s=offset_s["BMS_Version"])
        if "stale_crc" in self.bugs:
            sender.set_crc_source("BMS_Status", self._stale_crc)
        self._status_job_counter = lambda: sender.reset_counter("BMS_Status")
        self._previous_status = None

    def _stale_crc(self, payload: bytes) -> int:
        """The bug: the CRC of the previous frame's bytes goes out with this frame."""
        previous, self._previous_status = self._previous_status, bytes(payload[:7])
        return e2e.crc8_j1850(previous if previous is not None else payload[:7])

    def _status_signals(self) -> dict:
        if "status_counter_stuck" in self.bugs:
            self._status_job_counter()
        return {"BMS_State": int(self.state), "BMS_ContactorPos": int(self.contactor_fb["pos"]),
                "BMS_ContactorNeg": int(self.contactor_fb["neg"]), "BMS_ContactorPre": int(self.contactor_fb["pre"]),
                "BMS_Balancing": int(aany(self.balancing)), "BMS_FaultBits": self.faults | self.active,
                "BMS_WarningBits": self.warnings}

    def _diagnosis_signals(self) -> dict:
        block = self.high_resistance_block
        if block is None:
            return {"BMS_HighResistanceBlock": 0, "BMS_BlockResistanceRatio": 0.0}
        reported = block if "resistance_block_off_by_one" in self.bugs else block + 1
        return {"BMS_HighResistanceBlock": reported, "BMS_BlockResistanceRatio": min(2.55, self.block_resistance_ratio)}

    def _cell_voltage_frames(self) -> list[dict]:
        v = self.cell_v
        if "cell_report_swapped" in self.bugs and self.n_cells >= 3:
            v = v.copy()  # only the report: the protections keep reading self.cell_v
            v[1], v[2] = v[2], v[1]
        return [{"BMS_CellVoltages_Mux": m, **{f"BMS_Cell{c + 1:02d}_Voltage": min(16.383, max(0.0, v[c]))
                                               for c in range(4 * m, min(4 * m + 4, self.n_cells))}}
                for m in range((self.n_cells + 3) // 4)]

    def _balancing_frames(self) -> list[dict]:
        bits = int(sum(1 << int(i) for i in np.flatnonzero(self.balancing)))
        return [{"BMS_BalancingMask_Mux": 0, "BMS_Balancing_Cells01to48": bits & (2**48 - 1)},
                {"BMS_BalancingMask_Mux": 1, "BMS_Balancing_Cells49to96": bits >> 48 & (2**48 - 1)}]

    def _cell_stats(self) -> dict:
        return {"BMS_MinCellVoltage": float(self.cell_v.min()), "BMS_MaxCellVoltage": float(self.cell_v.max()),
                "BMS_MinCellTemp": min(87.5, max(-40.0, float(self.temp_c.min()))),
                "BMS_MaxCellTemp": min(87.5, max(-40.0, float(self.temp_c.max()))),
                "BMS_MinCellIndex": int(self.cell_v.argmin()), "BMS_MaxCellIndex": int(self.cell_v.argmax())}

    # CAN receive ----------------------------------------------------------------------------------------
    def on_frame(self, msg, now_s: float) -> None:
        from_host = msg.arbitration_id in self._vcu or msg.arbitration_id in self._uds_ids   # or a tester
        if self.asleep:
            if from_host and not msg.is_error_frame and self._boot_s is None:   # the frame that wakes the MCU is lost
                self._boot_s = now_s + self.cal["boot_ms"] / 1000.0
            return
        if from_host and "sleep_timer_from_close_request" not in self.bugs:
            self._idle_since_s = now_s
        if msg.arbitration_id in self._uds_ids:   # a tester's ISO-TP frame: the diagnostic server's
            if self.powered and not msg.is_error_frame:
                self.uds.on_frame(msg)
            return
        message = self._vcu.get(msg.arbitration_id)
        if message is None or msg.is_error_frame or not self.powered:
            return
        if not e2e.crc_ok(bytes(msg.data)) and "rx_crc_unchecked" not in self.bugs:
            self.rx_bad_crc += 1   # E2E: a corrupted request is dropped, never acted on
            return
        sig = decode(message, msg.data)
        counter = sig.get(f"{message.name}_Counter")
        if counter is not None and "rx_counter_unchecked" not in self.bugs:
            last = self._rx_counters.get(message.name)
            if counter == last:
                self.rx_repeated += 1   # E2E: a repeated frame is stale data (a hung host re-sending its last)
                return
            if "rx_counter_no_resync" in self.bugs and last is not None and _counter_step(message, counter, last) != 1:
                return
            if "rx_resync_waits_for_sequence" in self.bugs and self._out_of_sync(message, counter, last):
                self._rx_counters[message.name] = counter
                return
            # A jump is frames lost on the way: the host is alive, and this frame is as fresh as any.
            self._rx_counters[message.name] = counter
        if message.name == "VCU_Heartbeat":
            self._last_heartbeat_s = now_s
        elif message.name == "VCU_Request":
            self._last_heartbeat_s = now_s
            try:
                self.mode = ModeRequest(sig["VCU_ModeRequest"])
            except ValueError:
                self.mode = ModeRequest.STANDBY  # an unknown request is treated as the safe one
            if "sleep_timer_from_close_request" in self.bugs and self.mode in CLOSE_REQUESTS:
                self._idle_since_s = now_s
            if sig["VCU_ClearFaults"]:
                self._clear_request = True

    def _out_of_sync(self, message, counter: int, last: int | None) -> bool:
        """(rx_resync_waits_for_sequence) Whether this host frame is dropped: the one after a counter jump of more
        than MAX_DELTA_COUNTER, and every one after it until RESYNC_FRAMES have come in sequence."""
        if last is None:
            return False
        delta = _counter_step(message, counter, last)
        left = self._rx_sync_left.get(message.name, 0)
        if delta > MAX_DELTA_COUNTER:
            left = RESYNC_FRAMES
        elif left:
            left = left - 1 if delta == 1 else RESYNC_FRAMES
        self._rx_sync_left[message.name] = left
        return left > 0

    def set_cell_ov_trip(self, cell_ov_v: float) -> bool:
        """A tester's write of the OV trip (hil/sim/uds_server.py checks its session and security): taken if it
        lies above the UV trip and at most the calibration the board was built with. Kept in data flash with the
        calibration (here: `cal`, which outlives a reset)."""
        ceiling_v = math.inf if "ov_trip_write_unbounded" in self.bugs else self._factory_ov_v
        if not self.cal["cell_uv_v"] < cell_ov_v <= ceiling_v:
            return False
        self.cal["cell_ov_v"] = cell_ov_v
        return True

    # Low-voltage supply ---------------------------------------------------------------------------------
    def supply(self, supply_v: float, now_s: float) -> None:
        """The low-voltage input at `now_s`. Below the brown-out level, or above the regulator's over-voltage
        lockout, the MCU stops at once (its power-fail interrupt saves the SOC first); back inside, the MCU boots
        and runs its first task `boot_ms` later. A supply that leaves again while it boots restarts the boot."""
        if self.powered:
            if supply_v < self.reset_v or supply_v > self.ovlo_v:
                self._power_fail()
        elif supply_v < self.reset_v + BROWNOUT_HYSTERESIS_V or supply_v > self.ovlo_v - BROWNOUT_HYSTERESIS_V:
            self._boot_s = None
        elif self._boot_s is None:
            self._boot_s = now_s + self.cal["boot_ms"] / 1000.0
        elif now_s + 1e-9 >= self._boot_s:
            self._boot(self._boot_s)

    def supply_current_a(self) -> float:
        """What the board draws from its low-voltage input now."""
        if not self.powered:
            return 0.0
        if self.asleep and self._boot_s is None:
            return SLEEP_SUPPLY_A + (FRONT_END_AWAKE_A if "front_end_left_on_in_sleep" in self.bugs else 0.0)
        return ECU_SUPPLY_A + COIL_HOLD_A * sum(self.contactor_fb.values())

    def _power_fail(self) -> None:
        self._go_dark()
        self.powered = False
        self.asleep = False

    def _go_dark(self) -> None:
        """The MCU stops (its supply lost, or going to sleep): the SOC saved, then no coil driven, no cell bled,
        nothing sent."""
        # On power fail, the hold-up capacitor's last milliseconds: enough to write one NVM record, if the firmware
        # does. Not in INIT: RAM holds no SOC yet (it is read back from NVM on leaving INIT).
        if ((self.state != BmsState.INIT or "soc_saved_during_init" in self.bugs)
                and "soc_saved_periodically_only" not in self.bugs):
            self.nvm["soc"] = self.soc
        self._boot_s = None
        self._coils_unpowered()
        self.balancing[:] = False
        for name in TX_MESSAGES:
            self._sender.stop(name)

    def _sleep_if_idle(self, now_s: float) -> None:
        """With every contactor open and no host or tester frame for `sleep_after_s` (0: never), save the SOC and
        sleep. Open by command and by feedback: a welded contactor keeps the pack's terminals live, and the BMS awake
        to report it. Faults and DTCs are in NVM already; a RAM-only diagnosis (self-discharge) is lost, as at a
        reset."""
        sleep_after_s = self.cal["sleep_after_s"]
        states = (BmsState.STANDBY,) if "sleeps_in_standby_only" in self.bugs else (BmsState.STANDBY, BmsState.FAULT)
        if (sleep_after_s <= 0 or self.state not in states
                or any(self.contactor_cmd.values()) or any(self.contactor_fb.values())
                or now_s - self._idle_since_s < sleep_after_s):
            return
        self._go_dark()
        self.asleep = True
        self._next_check_s = now_s + self.cal["sleep_check_s"]

    def _parked_check(self, now_s: float) -> None:
        """Asleep, the wake-up timer's check every `sleep_check_s`: the front end reads the cells and thermistors
        once, and one outside its trip levels (a cell leaking to empty through a soft short, a cell heating in a
        parked pack) wakes the BMS, a boot, whose tasks latch the fault and store its DTC, a record for the host's
        next frame and the workshop. Otherwise back to sleep at once, nothing sent."""
        period_s = self.cal["sleep_check_s"]
        if period_s <= 0 or now_s + 1e-9 < self._next_check_s or "parked_cells_unchecked" in self.bugs:
            return
        self._next_check_s = now_s + period_s
        self._measure()
        cal, v, temp_c = self.cal, self.cell_v, self.temp_c
        # Judged as the awake checks judge them: a reading below sense_wire_v is an open wire, not an empty cell, and
        # an implausible thermistor no temperature. Neither wakes it: a wire is no emergency of the cells (and a dark
        # emulator reads 0 V everywhere, which a boot would sit in INIT over). Once in a while: plain numpy.
        sensed = v >= cal["sense_wire_v"]
        plausible = (temp_c > PLAUSIBLE_C[0]) & (temp_c < PLAUSIBLE_C[1])
        found = {"cell_uv": bool((sensed & (v < cal["cell_uv_v"])).any()),
                 "cell_ov": bool((v > cal["cell_ov_v"]).any()),
                 "cell_ot": bool((plausible & (temp_c > cal["cell_ot_c"])).any())
                 and "parked_check_voltages_only" not in self.bugs}
        # A fault latched already (its DTC stored) wakes nobody again: only news is worth a boot.
        news = any(seen and not self.faults >> FAULT_BITS[name] & 1 for name, seen in found.items())
        if news or "parked_check_boots" in self.bugs:
            self._boot_s = now_s + cal["boot_ms"] / 1000.0

    def _coils_unpowered(self) -> None:
        """No command from a dark MCU: every contact open, except a welded one."""
        self.contactor_cmd.update(pos=False, neg=False, pre=False)
        self.contactor_fb = {name: name in self.board.welded_contactors for name in self.contactor_fb}

    def _boot(self, now_s: float) -> None:
        self.asleep = False
        self._init_ram(now_s)
        self._new_operation_cycle()
        self.uds.reset(now_s)
        self._coils_unpowered()   # a weld holds its contact through the reset
        self.powered = True
        self._boot_s = None
        for name, offset_s in self._tx_offsets_s.items():   # the same schedule, counters from 0
            self._sender.reset_counter(name)
            self._sender.start(name, now_s + offset_s)

    # Tasks --------------------------------------------------------------------------------------------
    def tick(self, now_s: float) -> None:
        if not self.powered:
            return
        if self.asleep:
            if self._boot_s is None:
                self._parked_check(now_s)
            if self._boot_s is not None and now_s + 1e-9 >= self._boot_s:
                self._boot(self._boot_s)
            else:
                return
        # Contactors move on task time too, so a starved process (a slow VM) runs the same timeline late
        # rather than a different one.
        while now_s + 1e-9 >= (task_s := self._main_runs * MAIN_TASK_S):
            self._update_contactors(task_s)
            self._main_task(task_s)
            self.uds.process(task_s)   # the diagnostic server answers from the same task
            self._main_runs += 1
            if self.asleep:
                return
        while now_s + 1e-9 >= (task_s := self._slow_runs * SLOW_TASK_S):
            self._slow_task(task_s)
            self._slow_runs += 1
        self._update_contactors(now_s)

    def _measure(self) -> None:
        # With the link to the front end broken every read fails its PEC: the cells and thermistors keep the last
        # values read (RAM), which the afe check then refuses to trust for long.
        self._afe_failed = self.board.afe_link_open
        if not self._afe_failed:
            noise = self._rng.uniform(-self.cal["afe_noise_v"], self.cal["afe_noise_v"], self.n_cells)
            raw = self.board.cell_voltage_v()[:self.n_cells] + noise
            aclip(raw, 0.0, 65535 * AFE_LSB_V, out=raw)
            self.cell_v = np.rint(raw / AFE_LSB_V) * AFE_LSB_V  # what np.round does for 0 decimals
            self.temp_c = self.board.thermistor_c()[:self.n_cells]
        self.raw_current_a = self.board.shunt_current_a()
        if "shunt_gain_uncalibrated" in self.bugs:
            self.raw_current_a *= SHUNT_GAIN_ERROR
        zero_sign = -1.0 if "current_zero_added" in self.bugs else 1.0
        self.current_a = self.raw_current_a - zero_sign * self.current_zero_a
        if "mv_sum_overflow" in self.bugs:
            total_mv = int(np.sum(np.round(self.cell_v * 1000))) & 0xFFFF
            self.pack_v = max(0.0, (total_mv - 0x10000 if total_mv >= 0x8000 else total_mv) / 1000.0)
        else:
            self.pack_v = float(np.add.reduce(self.cell_v))

    def _check(self, name: str, condition: bool) -> None:
        self._set_active(name, self._deb[name].update(condition))

    def _set_active(self, name: str, active: bool) -> None:
        bit = 1 << FAULT_BITS[name]
        if active:
            self.active |= bit
        else:
            self.active &= ~bit

    def _main_task(self, now_s: float) -> None:
        cal = self.cal
        self._measure()
        v, temp_c = self.cell_v, self.temp_c
        v_min, v_max, t_min, t_max = least(v), greatest(v), least(temp_c), greatest(temp_c)
        # NaN-free with every cell above the sense-wire level: the extremes then decide every voltage check
        # (np.minimum propagates a NaN, which fails the comparison, so a NaN takes the per-cell path).
        all_sensed = bool(v_min > cal["sense_wire_v"])
        sensed = None if all_sensed else v > cal["sense_wire_v"]
        if not all_sensed and not aany(sensed):
            # No cell reads anything: the front end (powered from the stack) is dark, as when the cell
            # emulator's outputs are off. Nothing can be judged; hold INIT with contactors open.
            self._open_all()
            if self.state != BmsState.INIT:
                self._enter(BmsState.INIT, now_s)
            self._unpowered_s = now_s
            return
        self._check_voltages(sensed, v_min, v_max)
        discharge_a = self.current_a
        if "oc_discharge_ignored" in self.bugs:
            discharge_a = -self.current_a
        # Two levels, one error, as a gas gauge's OCD1 and OCD2: the peak level after a burst's debounce, and the
        # pack's continuous rating after a long delay. A stalled motor, a failed converter or a soft short draws less
        # than the peak level, and more than the wiring, the fuse and the cells carry for long.
        over_peak = self._deb["discharge_oc"].update(discharge_a > cal["discharge_oc_a"])
        over_sustained = self._deb["sustained_oc"].update(discharge_a > cal["sustained_oc_a"])
        self._set_active("discharge_oc", over_peak or over_sustained)
        # Charge over-current: above the fixed level, or above the limit this BMS publishes (by more than a
        # charger's control error, for longer than a charger takes to follow): at any current a charger that
        # ignores a limit of 0 plates lithium on a cold cell.
        over_level = self._deb["charge_oc"].update(-self.current_a > cal["charge_oc_a"])
        over_limit = self._deb["charge_limit"].update(
            "charge_limit_not_enforced" not in self.bugs
            and -self.current_a > self.charge_limit_a + cal["charge_limit_margin_a"])
        self._set_active("charge_oc", over_level or over_limit)
        # A short is cut on its own, short debounce: over-current's, meant to ride through bursts, is too long.
        self._check("short_circuit", self.current_a > cal["short_circuit_a"])
        self._check_temperatures(t_min, t_max)
        self._check("thermal_runaway", self._runaway_suspected)
        insulation_ohm_per_v = self._check_insulation(now_s)
        self._check("afe", self._afe_failed and "afe_errors_ignored" not in self.bugs)
        self._check("hvil", self.board.hvil_open
                    and ("hvil_checked_in_normal_only" not in self.bugs or self.state == BmsState.NORMAL))
        cmd, fb = self.contactor_cmd, self.contactor_fb
        # The dicts' own comparison first: they agree in nearly every task, so the per-contactor look is skipped.
        self._check("contactor", cmd != fb and any(cmd[name] != fb[name] and not (cmd[name] and self._unchecked_closed)
                                                   for name in self._checked_contactors)
                    and ("contactor_checked_at_switching_only" not in self.bugs or self._just_switched(now_s)))
        implausible = self._deb["current_sensor"].update(self._current_implausible())
        self._offset_seen = self._current_offset()
        self._learn_zero()
        self._set_active("current_sensor", implausible or self._deb["current_offset"].update(self._offset_seen))
        self._estimate_resistance(now_s)
        self._update_warnings(v_min, v_max, t_min, t_max, insulation_ohm_per_v)
        self._heartbeat(now_s)
        if "fault_not_latched" in self.bugs:
            self.faults = self.active
        else:
            self.faults |= self.active
        self._save_faults()
        self._update_soc()
        self._state_machine(now_s)
        self._log_new_faults(now_s)
        self._sleep_if_idle(now_s)

    def _check_voltages(self, sensed: np.ndarray | None, v_min, v_max) -> None:
        """Over-voltage, under-voltage and open sense wire. `sensed` (which cells read above the sense-wire
        level) is None when all do: then the pack's extremes answer each check as the per-cell test would,
        in a third of the numpy calls (the 10 ms task's largest cost)."""
        cal, v = self.cal, self.cell_v
        checked_v = v[:-1] if "ov_off_by_one" in self.bugs else v
        uv_v = cal["cell_uv_v"] / 1000.0 if "uv_threshold_mv_typo" in self.bugs else cal["cell_uv_v"]
        if "uv_ir_compensated" in self.bugs:   # v + I * R < uv, as v < uv - I * R
            uv_v -= max(self.current_a, 0.0) * cal["cell_r_est_ohm"]
        if sensed is None:
            self._check("cell_ov", bool((v_max if checked_v is v else amax(checked_v)) > cal["cell_ov_v"]))
            self._check("cell_uv", bool(v_min < uv_v))
            self._check("sense_wire", False)
            return
        self._check("cell_ov", bool(amax(checked_v) > cal["cell_ov_v"]))
        self._check("cell_uv", aany(sensed & (v < uv_v)))
        self._check("sense_wire", bool(self.state != BmsState.INIT and not aall(sensed)))

    def _current_implausible(self) -> bool:
        """Whether the current sensor's step over the window disagrees with the cells'. Judged in NORMAL only:
        elsewhere no current flows, and cells that step then (outputs switched on, a bench forcing them) are
        not a load's."""
        cal, window = self.cal, self._iv_window
        if not cal["current_plausibility_enabled"] or self.state != BmsState.NORMAL:
            window.clear()   # NORMAL's first window holds none of the cells' steps from before it
            return False
        median_v = _middle(self.cell_v)
        window.append((median_v, self.current_a))
        if len(window) < window.maxlen:
            return False
        then_v, then_a = window[0]
        cells_v = median_v - then_v
        sensor_v = -(self.current_a - then_a) * cal["cell_r_est_ohm"]   # discharge (> 0) lowers the cells
        larger_v = max(abs(cells_v), abs(sensor_v))
        judged_v = abs(sensor_v) if "current_frozen_unchecked" in self.bugs else larger_v
        if judged_v * 1000 < cal["current_plausibility_mv"]:
            return False
        # Same sign, and the smaller at least CURRENT_AGREEMENT of the larger.
        return cells_v * sensor_v < CURRENT_AGREEMENT * larger_v * larger_v

    def _just_switched(self, now_s: float) -> bool:
        """(contactor_checked_at_switching_only) Whether the firmware changed a contactor command within the last
        SWITCHING_CHECK_S."""
        if self.contactor_cmd != self._switched[0]:
            self._switched = (dict(self.contactor_cmd), now_s)
        return now_s - self._switched[1] <= SWITCHING_CHECK_S

    def _current_offset(self) -> bool:
        """Whether the sensor reads beyond current_offset_max_a while nothing can flow: every contactor reported
        open by its auxiliary contact, in STANDBY, FAULT or SAFE (a welded one keeps a path, so it is not judged).
        Where a BMS learns its offset at zero current, this is the reading too far off to learn."""
        cal = self.cal
        if (not cal["current_offset_enabled"] or self.state not in ZERO_CURRENT_STATES
                or any(self.contactor_fb.values())):
            return False
        raw_a = self.raw_current_a   # the sensor's own error, whatever zero was learned before
        reading_a = raw_a if "current_offset_positive_only" in self.bugs else abs(raw_a)
        return reading_a > cal["current_offset_max_a"]

    def _learn_zero(self) -> None:
        """Auto-zero: while nothing can flow (as `_current_offset` judges it) and the reading stays within
        current_offset_max_a, its mean over current_zero_window_ms becomes the sensor's zero. Anything else starts
        the window again: a load still running down, a contactor closing."""
        cal = self.cal
        if (not cal["current_zero_enabled"] or self.state not in ZERO_CURRENT_STATES or any(self.contactor_fb.values())
                or abs(self.raw_current_a) > cal["current_offset_max_a"]):
            self._zero_sum_a, self._zero_tasks = 0.0, 0
            return
        self._zero_sum_a += self.raw_current_a
        self._zero_tasks += 1
        if self._zero_tasks * MAIN_TASK_S >= cal["current_zero_window_ms"] / 1000.0 - 1e-9:
            self.current_zero_a = self._zero_sum_a / self._zero_tasks
            if abs(self.current_zero_a - self.nvm.get("current_zero_a", 0.0)) > ZERO_NVM_STEP_A:
                self.nvm["current_zero_a"] = self.current_zero_a
            self._zero_sum_a, self._zero_tasks = 0.0, 0

    def _estimate_resistance(self, now_s: float) -> None:
        """Add this task's load step, if it is one, to each block's resistance estimate (see the module's notes)."""
        cal = self.cal
        if not cal["resistance_check_enabled"] or self.state != BmsState.NORMAL:
            self._r_last = self._r_before = None
            return
        sample = (self.cell_v, self.current_a, now_s)   # cell_v is a fresh array each task: no copy needed
        last, self._r_last = self._r_last, sample
        step_min_a = cal["resistance_step_min_a"]
        if last is None or abs(self.current_a - last[1]) > STEADY_FRACTION * step_min_a:
            return   # the current is moving: wait for it to settle
        before, self._r_before = self._r_before, last
        if before is None or now_s - before[2] > RESISTANCE_STEP_S + 1e-9:
            return
        step_a = self.current_a - before[1]
        if abs(step_a) < step_min_a:
            return
        self._r_sum_vi += (before[0] - self.cell_v) * step_a   # a discharge step (> 0) lowers the cells
        self._r_sum_ii += step_a * step_a
        self._r_steps += 1
        if self._r_steps >= cal["resistance_steps"]:
            self._judge_resistance(self._r_sum_vi / self._r_sum_ii)
            self._r_sum_vi[:] = 0.0
            self._r_sum_ii = 0.0
            self._r_steps = 0

    def _judge_resistance(self, resistance_ohm: np.ndarray) -> None:
        """Flag the block furthest above the median block, once RESISTANCE_CONFIRMATIONS estimates in a row put it
        above resistance_ratio_max."""
        if resistance_ohm.size < MIN_CELLS_TO_COMPARE:
            return
        median_ohm = _middle(resistance_ohm)
        if median_ohm <= 0.0:
            return   # no block moved with the current (cells the bench holds): nothing to compare with
        ratio = resistance_ohm / median_ohm
        block = int(np.argmax(ratio))
        if ratio[block] <= self.cal["resistance_ratio_max"]:
            self._r_suspect = None
            return
        seen = self._r_suspect[1] + 1 if self._r_suspect is not None and self._r_suspect[0] == block else 1
        self._r_suspect = (block, seen)
        if seen >= RESISTANCE_CONFIRMATIONS and self.high_resistance_block in (None, block):
            self.high_resistance_block = block
            self.block_resistance_ratio = max(self.block_resistance_ratio, float(ratio[block]))

    def _check_temperatures(self, t_min, t_max) -> None:
        """Over- and under-temperature of the plausible sensors, and implausible ones (an open or shorted
        thermistor). When every sensor is plausible (NaN-free, as for the voltages), the extremes decide."""
        cal, temp_c = self.cal, self.temp_c
        temps = temp_c[:-1] if "ot_ignores_last_sensor" in self.bugs else temp_c
        ut_skipped = "ut_ignored_in_charge" in self.bugs and self.mode == ModeRequest.CHARGE
        low_c, high_c = PLAUSIBLE_C
        if low_c < t_min and t_max < high_c:
            hot = bool(t_max > cal["cell_ot_c"]) if temps is temp_c else aany(temps > cal["cell_ot_c"])
            self._check("cell_ot", hot)
            self._check("cell_ut", not ut_skipped and bool(t_min < cal["cell_ut_c"]))
            self._check("thermistor", False)
            return
        plausible_t = (temp_c > low_c) & (temp_c < high_c)
        self._check("cell_ot", aany(plausible_t[:temps.size] & (temps > cal["cell_ot_c"])))
        self._check("cell_ut", not ut_skipped and aany(plausible_t & (temp_c < cal["cell_ut_c"])))
        self._check("thermistor", not aall(plausible_t))

    def _check_insulation(self, now_s: float) -> float:
        """The insulation monitor's reading of the pack's resistance to chassis, refreshed once per measurement
        cycle, against the error level in ohm per volt of the pack; returns that ratio for the warning tier."""
        if now_s + 1e-9 >= self._insulation_next_s:
            self._insulation_next_s = now_s + self.cal["insulation_period_ms"] / 1000.0
            connected = self.state in (BmsState.PRECHARGE, BmsState.NORMAL)
            if not ("insulation_checked_at_startup_only" in self.bugs and connected):
                self.insulation_ohm = self.board.insulation_ohm()
                if "insulation_symmetric_bridge" in self.bugs:
                    self.insulation_ohm = symmetric_bridge_reading_ohm(self.insulation_ohm,
                                                                       self.board.insulation_fault_position())
                if self.insulation_report_ohm is None or "insulation_report_not_refreshed" not in self.bugs:
                    self.insulation_report_ohm = self.insulation_ohm
        ohm_per_v = self.insulation_ohm / max(self.pack_v, 1.0)
        self._check("insulation", ohm_per_v < self.cal["insulation_fault_ohm_per_v"])
        return ohm_per_v

    def _insulation_report_kohm(self) -> int:
        ohm = self.insulation_report_ohm
        if ohm is None or ohm >= INSULATION_REPORT_MAX_KOHM * 1000.0:
            return INSULATION_REPORT_MAX_KOHM
        return round(ohm / 1000.0)

    def _save_faults(self) -> None:
        """The latched faults to NVM when they change (a data-flash write per change, not per task), and the
        DTCs brought up to date with them."""
        if self.faults != self.nvm.get("faults", 0):
            self.nvm["faults"] = self.faults
        if self.faults != self._dtc_faults:
            self._update_dtcs()

    def _update_dtcs(self) -> None:
        """Each latched error's DTC stored as failed and confirmed; a stored DTC whose error is no longer latched
        (the host cleared it) keeps its record, its testFailed bit off, until a tester clears it. An error that
        latches anew (its DTC not failed) is an occurrence: counted, and snapshot as this task measured it."""
        faults = self.faults
        snapshot = None
        for bit, code in self.dtc_table.items():
            status = self.dtcs.get(code, 0)
            if faults >> bit & 1:
                if not status & DTC_TEST_FAILED:
                    snapshot = snapshot or self._snapshot()
                    records = self.dtc_snapshots.setdefault(code, {})
                    records.setdefault(SNAPSHOT_FIRST, snapshot)
                    records[SNAPSHOT_LATEST] = snapshot
                    self.dtc_occurrences[code] = min(255, self.dtc_occurrences.get(code, 0) + 1)
                self.dtcs[code] = status | DTC_LATCHED_STATUS
            elif code in self.dtcs:
                self.dtcs[code] = status & ~DTC_TEST_FAILED
        self._dtc_faults = faults
        self._save_dtcs()

    def _snapshot(self) -> dict[str, float]:
        """What this task measured, by hil.protocol.SNAPSHOT_DIDS' names."""
        v, temp_c = self.cell_v, self.temp_c
        return {"max_cell_voltage_v": float(greatest(v)), "min_cell_voltage_v": float(least(v)),
                "pack_current_a": self.current_a, "max_temperature_c": float(greatest(temp_c)),
                "min_temperature_c": float(least(temp_c)), "soc": self.soc, "pack_voltage_v": self.pack_v}

    def snapshot_records(self, code: int) -> dict[int, dict[str, float]]:
        """A DTC's snapshot records, as the diagnostic server reads them out."""
        records = self.dtc_snapshots.get(code, {})
        if "snapshot_points_at_live_data" in self.bugs:
            return {record: self._snapshot() for record in records}
        return records

    def _new_operation_cycle(self) -> None:
        """A boot starts an operation cycle (ISO 14229-1, D.2): each stored DTC's testFailedThisOperationCycle
        clears, and its pendingDTC stays only if it failed in the cycle that ended. An error still latched sets
        both again at the first task (_update_dtcs)."""
        if "dtc_cycle_bits_kept" in self.bugs:
            return
        for code, status in self.dtcs.items():
            pending = DTC_PENDING if status & DTC_FAILED_THIS_CYCLE else 0
            self.dtcs[code] = status & ~(DTC_FAILED_THIS_CYCLE | DTC_PENDING) | pending
        self._save_dtcs()

    def _dtc_nvm(self) -> dict:
        return {} if "dtc_kept_in_ram" in self.bugs else self.nvm.get("dtc_records", {})

    def _save_dtcs(self) -> None:
        """The DTC memory to NVM when it changes."""
        if "dtc_kept_in_ram" in self.bugs:
            return
        if self.dtcs != self.nvm.get("dtcs", {}):
            self.nvm["dtcs"] = dict(self.dtcs)
        records = {"snapshots": {code: dict(records) for code, records in self.dtc_snapshots.items()},
                   "occurrences": dict(self.dtc_occurrences)}
        if records != self.nvm.get("dtc_records", {}):
            self.nvm["dtc_records"] = records

    def clear_dtcs(self) -> None:
        """A tester's ClearDiagnosticInformation: every DTC record gone, with its snapshots and occurrence count;
        an error still latched is stored again at the next task."""
        if "dtc_clear_ignored" not in self.bugs:
            self.dtcs.clear()
            self.dtc_snapshots.clear()
            self.dtc_occurrences.clear()
            self._save_dtcs()
        self._dtc_faults = None

    def _log_new_faults(self, now_s: float) -> None:
        """One log entry per fault bit that has latched since the last task (again after a clear)."""
        new = self.faults & ~self._logged_faults
        if new:
            self.fault_log.extend((round(now_s * 1000), name) for name, bit in FAULT_BITS.items() if new >> bit & 1)
        self._logged_faults = self.faults

    def _update_warnings(self, v_min, v_max, t_min, t_max, insulation_ohm_per_v: float) -> None:
        """The warning tier, from the cells' and sensors' extremes this task measured."""
        cal, w = self.cal, 0
        ov_margin_v = 0.0 if "ov_warning_at_fault_level" in self.bugs else cal["warning_margin_v"]
        if v_max > cal["cell_ov_v"] - ov_margin_v:
            w |= 1 << FAULT_BITS["cell_ov"]
        if v_min < cal["cell_uv_v"] + cal["warning_margin_v"]:
            w |= 1 << FAULT_BITS["cell_uv"]
        # Discharging: from the long-delay level on, if that comes first, as a gas gauge's OCD1 alert (its
        # terminate-discharge alarm) comes with the delay's start: the host is told before the cut.
        discharge_warning_a = cal["discharge_oc_a"] - cal["warning_margin_a"]
        if "oc_warning_at_peak_level_only" not in self.bugs:
            discharge_warning_a = min(discharge_warning_a, cal["sustained_oc_a"])
        if self.current_a > discharge_warning_a:
            w |= 1 << FAULT_BITS["discharge_oc"]
        if -self.current_a > cal["charge_oc_a"] - cal["warning_margin_a"]:
            w |= 1 << FAULT_BITS["charge_oc"]
        if t_max > cal["cell_ot_c"] - cal["warning_margin_c"]:
            w |= 1 << FAULT_BITS["cell_ot"]
        if t_min < cal["cell_ut_c"] + cal["warning_margin_c"]:
            w |= 1 << FAULT_BITS["cell_ut"]
        if self._last_heartbeat_s is None and self.state != BmsState.INIT:
            w |= 1 << FAULT_BITS["heartbeat"]
        if insulation_ohm_per_v < cal["insulation_warning_ohm_per_v"]:
            w |= 1 << FAULT_BITS["insulation"]
        if self._runaway_suspected:   # the faster rise, before it has lasted the hold
            w |= 1 << FAULT_BITS["thermal_runaway"]
        if "warnings_latched" in self.bugs:
            self.warnings_latched |= w
        self.warnings = w | self.warnings_latched

    def _heartbeat(self, now_s: float) -> None:
        bit = 1 << FAULT_BITS["heartbeat"]
        closed = self.state in (BmsState.PRECHARGE, BmsState.NORMAL)
        if "heartbeat_ignored_charge" in self.bugs and self.mode == ModeRequest.CHARGE:
            closed = False
        timeout_s = self.cal["heartbeat_timeout_ms"] / 1000.0
        if closed and (self._last_heartbeat_s is None or now_s - self._last_heartbeat_s > timeout_s):
            self.active |= bit
        else:
            self.active &= ~bit

    def _update_soc(self) -> None:
        cal = self.cal
        sensed_a = cal["soc_current_gain"] * self.current_a + cal["soc_current_offset_a"]
        sign = -1.0 if "soc_wrong_sign" in self.bugs else 1.0
        counted_ah = sign * sensed_a * MAIN_TASK_S / 3600.0
        self._counted_ah += counted_ah
        self.soc -= counted_ah / (cal["capacity_ah"] * self.soh)
        if abs(self.current_a) < cal["soc_rest_current_a"]:
            self._rest_s += MAIN_TASK_S
        else:
            self._rest_s = 0.0
        # OCV correction: after enough rest the terminal voltage is the OCV, so SOC can be read off it.
        if self._rest_s >= cal["soc_rest_s"] and self.cell_v.min() > cal["sense_wire_v"]:
            self._read_soc_off_ocv()
            self._rest_s = 0.0

    @property
    def soc_min(self) -> float:
        """The emptiest block's SOC: the one that ends a discharge. Near empty, and under a moderate discharge, no
        more than its loaded voltage says (`_loaded_soc_min`)."""
        if "soc_spread_ignored" in self.bugs:
            return self.soc
        counted = self._counted_soc_min()
        return counted if "faded_block_counted" in self.bugs else min(counted, self._loaded_soc_min)

    def _counted_soc_min(self) -> float:
        """The emptiest block's SOC by the count: the pack's plus that block's spread seen at the last rest."""
        return self.soc + float(self._soc_spread.min())

    @property
    def soc_max(self) -> float:
        """The fullest block's SOC: the one that ends a charge."""
        return self.soc if "soc_spread_ignored" in self.bugs else self.soc + float(self._soc_spread.max())

    def _read_soc_off_ocv(self) -> None:
        """SOC from the rested cells' OCV, and each block's spread about it. The charge counted since the last
        such reading, over the SOC between the two, is the capacity: far enough apart (soh_min_delta_soc), it
        updates the SOH."""
        # The pack's SOC is its blocks' mean, not the SOC at their mean voltage: the OCV curve bends, most at the
        # ends, so one block near empty would pull the latter down by more than its share.
        block_soc = np.interp(self.cell_v, self._ocv_v, self._ocv_soc)
        soc_ocv = float(block_soc.mean())
        self._soc_spread = block_soc - soc_ocv
        self.nvm["soc_spread"] = self._soc_spread.tolist()
        self._loaded_soc_min = math.inf   # the rest's reading supersedes the last one under load
        if self._ocv_anchor is not None:
            anchor_soc, anchor_ah = self._ocv_anchor
            # The bug divides by the SOC the counting itself moved, which the rated capacity set: circular.
            end_soc = self.soc if "soh_from_counted_soc" in self.bugs else soc_ocv
            delta_soc = anchor_soc - end_soc
            if abs(delta_soc) < self.cal["soh_min_delta_soc"]:
                self.soc = soc_ocv
                return   # too little SOC between the two for a capacity: keep the first reading as the anchor
            fraction = (self._counted_ah - anchor_ah) / delta_soc / self.cal["capacity_ah"]
            if PLAUSIBLE_SOH[0] <= fraction <= PLAUSIBLE_SOH[1]:   # else a sensor fault, not a capacity: no update
                self.soh = min(1.0, fraction)
                self.nvm["soh"] = self.soh
        self.soc = soc_ocv
        self._ocv_anchor = (soc_ocv, self._counted_ah)

    def _enter(self, state: BmsState, now_s: float) -> None:
        self.state = state
        self._state_entry_s = now_s
        self._stop_requested_s = None   # whatever ends NORMAL (the opening, a fault, SAFE) ends a hold for the current

    def _state_machine(self, now_s: float) -> None:
        cal, s = self.cal, self.state
        if s == BmsState.INIT:
            # One full slow cycle of measurements after the stack powers up, before anything may close.
            if now_s - self._unpowered_s >= SLOW_TASK_S:
                if self._soc_from_nvm:
                    self.soc = self.nvm["soc"]
                    self._soc_from_nvm = False
                elif self.cell_v.min() > cal["sense_wire_v"]:
                    self._read_soc_off_ocv()   # a pack that rested before power-up
                self._enter(BmsState.FAULT if self.faults else BmsState.STANDBY, now_s)
            return
        if self.faults and s not in (BmsState.FAULT,):
            self._open_all(on_fault=True)
            self._enter(BmsState.FAULT, now_s)
            return
        if s == BmsState.FAULT:
            if (self._clear_request or "fault_not_latched" in self.bugs) and not self.active:
                self.faults = 0
                if "occurrence_reset_by_fault_clear" in self.bugs:
                    self.dtc_occurrences.clear()
                self._save_faults()
                self.warnings_latched = 0
                self.high_resistance_block, self.block_resistance_ratio = None, 0.0
                if "fault_clear_skips_precharge" in self.bugs and self.mode in CLOSE_REQUESTS:
                    self.contactor_cmd.update(pos=True, neg=True, pre=False)   # "back to where it was"
                    self._enter(BmsState.NORMAL, now_s)
                else:
                    self._enter(BmsState.STANDBY, now_s)
            self._clear_request = False
            return
        self._clear_request = False
        if self.mode == ModeRequest.SAFE:
            self._open_all()
            if s != BmsState.SAFE:
                self._enter(BmsState.SAFE, now_s)
            return
        if s == BmsState.SAFE:
            if self.mode == ModeRequest.STANDBY:
                self._enter(BmsState.STANDBY, now_s)
            return
        if self.mode == ModeRequest.STANDBY:
            if s != BmsState.STANDBY and not (s == BmsState.NORMAL and self._holding_for_current(now_s)):
                self._open_all()
                self._enter(BmsState.STANDBY, now_s)
            return
        self._stop_requested_s = None
        # DISCHARGE or CHARGE requested
        # Either request keeps the contactors closed: the current, not the request, is what flows (a backup unit
        # asked to charge must carry the rack the moment the grid drops, before its host asks again).
        if "mode_change_reopens" in self.bugs and s == BmsState.NORMAL and self.mode != self._closed_for:
            self._open_all()
            self._enter(BmsState.STANDBY, now_s)
            return
        if s == BmsState.STANDBY:
            self._closed_for = self.mode   # the request the contactors close for (mode_change_reopens)
            if self.board.hvil_open and "hvil_checked_in_normal_only" not in self.bugs:
                return   # nothing closes onto an open interlock, not even before its error has debounced
            if self._offset_seen:
                return   # nor with a sensor that reads a current while nothing flows: the SOC would count it
            self.contactor_cmd.update(neg=True, pre=True, pos="main_with_precharge" in self.bugs)
            self.link_v = 0.0
            self._enter(BmsState.PRECHARGE, now_s)
        elif s == BmsState.PRECHARGE:
            if self.contactor_fb["neg"] and self.contactor_fb["pre"]:
                target_v = 0.0 if self.board.dc_link_shorted else self.pack_v   # a shorted link holds no charge
                self.link_v += (target_v - self.link_v) * (1.0 - np.exp(-MAIN_TASK_S / (cal["precharge_tau_ms"] / 1000.0)))
            if self.pack_v > 0 and self.link_v >= cal["precharge_match_pct"] / 100.0 * self.pack_v:
                self.contactor_cmd.update(pos=True, pre="precharge_left_closed" in self.bugs)
                self._enter(BmsState.NORMAL, now_s)
            elif (now_s - self._state_entry_s > cal["precharge_timeout_ms"] / 1000.0
                  and "precharge_without_timeout" not in self.bugs):
                self.faults |= 1 << FAULT_BITS["precharge"]
                self._open_all(on_fault=True)
                self._enter(BmsState.FAULT, now_s)

    def _holding_for_current(self, now_s: float) -> bool:
        """A STANDBY request in NORMAL: the limits go to 0 at once, so that a host that follows them stops drawing,
        and the contactors stay closed until the current has fallen to open_current_max_a, or for open_wait_ms at
        most (a host that keeps drawing); a contact rated for thousands of breaks at a few amps welds after a few
        at hundreds. A fault opens at once, whatever flows."""
        cal = self.cal
        if "opens_under_load" in self.bugs:
            return False
        if self._stop_requested_s is None:
            self._stop_requested_s = now_s
        waited_s = now_s - self._stop_requested_s
        if abs(self.current_a) <= cal["open_current_max_a"] or (
                waited_s + 1e-9 >= cal["open_wait_ms"] / 1000.0 and "open_waits_for_zero_current" not in self.bugs):
            return False
        self.discharge_limit_a = self.charge_limit_a = 0.0
        return True

    def _open_all(self, on_fault: bool = False) -> None:
        keep_pos = on_fault and "contactor_stays_closed" in self.bugs and self.contactor_cmd["pos"]
        self.contactor_cmd.update(pos=keep_pos, neg=keep_pos, pre=False)

    def _update_contactors(self, now_s: float) -> None:
        """Each contactor's contacts (and its feedback) follow its command after the contactor's delay; a weld
        (the bench's relay across it) holds them closed whatever the command, and a relay that breaks its coil
        holds them open."""
        welded, stuck_open = self.board.welded_contactors, self.board.stuck_open_contactors
        if (self.contactor_cmd == self.contactor_fb and self._contactor_change_s == self._none_moving
                and not welded and not stuck_open):
            return  # nothing commanded, nothing in motion and no fault injected: most of the calls, one a tick
        delay_s = self.cal["contactor_delay_ms"] / 1000.0
        for name, cmd in self.contactor_cmd.items():
            closed = (cmd and name not in stuck_open) or name in welded
            if closed != self.contactor_fb[name]:
                if self._contactor_change_s[name] is None:
                    self._contactor_change_s[name] = now_s
                elif now_s - self._contactor_change_s[name] >= delay_s - 1e-9:
                    self.contactor_fb[name] = closed
                    self._contactor_change_s[name] = None
            else:
                self._contactor_change_s[name] = None

    def _sop_resistance_ohm(self) -> float:
        """The cell resistance the SOP limits are sized by: `cell_r_est_ohm` (stated at SOP_REFERENCE_C) at the
        pack's temperature, its median thermistor's, by the Arrhenius term of `cell_r_activation_j_per_mol` (a cell
        file's activation energy): an NMC cell's is twice its 25 degC figure at 0 degC, and a limit sized by the warm
        figure lets a host that follows it drag the weakest cell far below its cut-off. The median, not the coldest:
        one cold cell among warm ones is the cold-derating line's to limit. Never below the warm figure: the
        calibration was tuned there, and a warm pack's lower resistance is margin kept."""
        cal = self.cal
        if "sop_resistance_at_25c" in self.bugs:
            return cal["cell_r_est_ohm"]
        pack_c = float(np.median(self.temp_c))
        inverse_k = 1.0 / (pack_c + KELVIN_OFFSET) - 1.0 / (SOP_REFERENCE_C + KELVIN_OFFSET)
        factor = math.exp(cal["cell_r_activation_j_per_mol"] / GAS_CONSTANT_J_PER_MOL_K * inverse_k)
        return cal["cell_r_est_ohm"] * max(1.0, factor)

    def _update_loaded_soc_min(self) -> None:
        """The emptiest block's SOC read off its loaded voltage: the voltage plus the drop the SOP resistance gives,
        on the OCV curve. A block of less capacity than the rest (an aged cell, a module from another lot) empties
        faster than the count says, and only a rest would show it; near empty the OCV curve is steep, so its voltage
        tells. Only there (counted below LOADED_SOC_BELOW) and at LOADED_SOC_MAX_C at most: a punch-out's drop is
        mostly resistance the estimate may miss, and read as charge gone it would cut a drone's limit mid-flight."""
        counted = self._counted_soc_min()
        discharge_a, rest_a = self.current_a, self.cal["soc_rest_current_a"]
        if counted >= LOADED_SOC_BELOW or discharge_a < -rest_a:
            self._loaded_soc_min = math.inf   # charged since: the count holds until the next reading
        elif rest_a < discharge_a <= LOADED_SOC_MAX_C * self.cal["capacity_ah"] * self.soh:
            open_v = float(self.cell_v.min()) + discharge_a * self._sop_resistance_ohm()
            self._loaded_soc_min = float(np.interp(open_v, self._ocv_v, self._ocv_soc))
        # Otherwise (the discharge ended, or a burst) the last reading stands.

    def _slow_task(self, now_s: float) -> None:
        cal = self.cal
        self._update_loaded_soc_min()
        t_max = float(self.temp_c.mean() if "derating_from_mean_temperature" in self.bugs else self.temp_c.max())
        if "derating_held_at_peak" in self.bugs:
            self._peak_c = t_max = max(self._peak_c, t_max)
        f_temp = _fraction_along(t_max, cal["cell_ot_c"], cal["derate_start_c"])
        # Charging below charge_cold_zero_c plates lithium on the anode: the coldest cell sets the charge limit.
        zero_c, full_c = cal["charge_cold_zero_c"], cal["charge_cold_full_c"]
        if "cold_charge_from_ut" in self.bugs:
            zero_c, full_c = cal["cell_ut_c"], cal["cell_ut_c"] + 20.0
        t_min = float(self.temp_c.min())
        f_cold = _fraction_along(t_min, zero_c, full_c)
        # Discharging a cold cell: its resistance climbs, and its datasheet's range ends (-20 degC for LG M50).
        f_cold_dis = _fraction_along(t_min, cal["discharge_cold_zero_c"], cal["discharge_cold_full_c"])
        if "cold_discharge_not_derated" in self.bugs:
            f_cold_dis = 1.0
        # The discharge tapers over the last 10 % of the emptiest block's SOC: a spread pack's mean has charge left
        # when that block has none.
        f_soc_dis = _unit((self.soc_min - 0.02) / 0.08)
        # Near full the charge limit tapers to a tenth, not to 0: the fullest cell's voltage headroom below ends the
        # charge (the CV phase). Tapered to 0 by the SOC alone, a pack whose blocks are closely matched would stop
        # short of full, by however far its SOC estimate runs ahead.
        # The pack's mean SOC sets it, not the fullest block's: on LFP's flat plateau a block's SOC read off its own
        # OCV is a few % out, and a pack tapered by its highest block would crawl the last tenth (the CV phase ends
        # the charge by the fullest cell's voltage in any case).
        f_soc_chg = min(1.0, max(CHARGE_TAPER_FLOOR, (0.98 - self.soc) / 0.08))
        # Voltage headroom (SOP): the current at which the weakest cell would sit `sop_margin_v` above the UV
        # threshold, from its loaded voltage and the firmware's resistance estimate. The limit falls at once
        # but rises at a bounded rate, so a host that follows it does not set up a limit cycle.
        r_est_ohm = self._sop_resistance_ohm()
        headroom_v = float(self.cell_v.min()) - cal["cell_uv_v"] - cal["sop_margin_v"]
        sop_a = max(0.0, max(self.current_a, 0.0) + headroom_v / r_est_ohm)
        # A block flagged for its resistance falls by its ratio: its cells carry that much more of the pack's current
        # (one of them open: the others share its part), and it sags that much further for its voltage headroom.
        f_block = 1.0 / self.block_resistance_ratio if self.high_resistance_block is not None else 1.0
        continuous_a = cal["max_discharge_current_a"] * (PEAK_LIMIT_FACTOR if "peak_limit_published" in self.bugs
                                                         else 1.0)
        target_a = min(continuous_a * f_temp * f_cold_dis * f_soc_dis, sop_a) * f_block
        if "no_discharge_in_charge_mode" in self.bugs and self.mode == ModeRequest.CHARGE:
            target_a = 0.0
        rise_a = cal["limit_rise_a_per_s"] * SLOW_TASK_S
        # With contactors open the limit is announced at once; only recoveries under load ramp.
        ramped_a = self.discharge_limit_a + rise_a if self.state == BmsState.NORMAL else target_a
        self.discharge_limit_a = min(target_a, ramped_a)
        # The same for charging, from the fullest cell: the current at which it would sit `charge_sop_margin_v`
        # below the OV threshold. A charger that follows the limit then holds that cell there (the CV phase),
        # while the SOC taper alone would let a spread pack's fullest cell run into OV.
        charge_target_a = cal["max_charge_current_a"] * f_temp * f_cold * f_soc_chg
        if "charge_limit_by_soc_only" not in self.bugs:
            charge_headroom_v = cal["cell_ov_v"] - cal["charge_sop_margin_v"] - float(self.cell_v.max())
            charge_sop_a = max(0.0, max(-self.current_a, 0.0) + charge_headroom_v / r_est_ohm)
            charge_target_a = min(charge_target_a, charge_sop_a)
        charge_target_a *= f_block
        charge_ramped_a = self.charge_limit_a + rise_a if self.state == BmsState.NORMAL else charge_target_a
        self.charge_limit_a = min(charge_target_a, charge_ramped_a)
        if self._stop_requested_s is not None:   # waiting to open: the host is to stop drawing (_holding_for_current)
            self.discharge_limit_a = self.charge_limit_a = 0.0
        balancing_allowed = self.state in (BmsState.STANDBY, BmsState.NORMAL) or (
            "balancing_during_fault" in self.bugs and self.state == BmsState.FAULT)
        if cal["balancing_enabled"] and balancing_allowed and self.current_a <= 0.5:
            self.balancing = self._cells_to_bleed()
        else:
            self.balancing[:] = False
        # A bleeding block loses its bleed current's charge, which the pack's current (all the SOC counts) misses.
        self._soc_spread -= self.balancing * (cal["balance_current_a"] * SLOW_TASK_S / 3600.0
                                              / (cal["capacity_ah"] * self.soh))
        self._self_discharge_check(now_s)
        self._runaway_suspected = self._heating_faster_than_the_pack()
        if self.state != BmsState.INIT and now_s + 1e-9 >= self._nvm_next_s:
            self.nvm["soc"] = self.soc
            self.nvm["soc_spread"] = self._soc_spread.tolist()
            self._nvm_next_s = now_s + cal["nvm_save_period_s"]

    def _heating_faster_than_the_pack(self) -> bool:
        """A cell heating itself, the onset of a thermal runaway (an internal short, a venting cell): its
        temperature rises, over the last RUNAWAY_WINDOW_S, faster than the pack's median cell by at least
        `thermal_runaway_rate_c_per_s`. The median takes out what every cell shares: a hard load heats a series
        string evenly, as does the coolant. Sensors that read implausibly now or a window ago are left out (the
        thermistor check reports them); a step, such as a connector's glitch, passes the window in one second,
        well inside the hold."""
        temp_c = self.temp_c
        if self._temp_history_c is None:   # the first reading since boot: no rise yet
            self._temp_history_c = np.tile(temp_c, (round(RUNAWAY_WINDOW_S / SLOW_TASK_S), 1))
        row = self._slow_runs % len(self._temp_history_c)   # its reading is one window old
        window_ago_c = self._temp_history_c[row].copy()
        self._temp_history_c[row] = temp_c
        low_c, high_c = PLAUSIBLE_C
        plausible = (temp_c > low_c) & (temp_c < high_c) & (window_ago_c > low_c) & (window_ago_c < high_c)
        if not aany(plausible):
            return False
        rate_c_per_s = (temp_c - window_ago_c)[plausible] / RUNAWAY_WINDOW_S
        if "thermal_rate_absolute" not in self.bugs:
            rate_c_per_s -= np.median(rate_c_per_s)
        return bool(amax(rate_c_per_s) >= self.cal["thermal_runaway_rate_c_per_s"])

    def _cells_to_bleed(self) -> np.ndarray:
        """Cells more than `balance_threshold_mv` above the lowest start to bleed; a bleeding cell goes on until it
        is within the threshold less twice the front end's peak noise. Its own bleed current lowers the voltage it
        reads by its IR drop (`balance_current_a` through `cell_r_est_ohm`), which is added back first. Without
        both, a cell near the threshold switches its bleed on and off every few tasks: a chatter that wears nothing
        out but leaves no steady stretch to judge a leak over (see `_self_discharge_check`)."""
        cal = self.cal
        unloaded_v = self.cell_v + self.balancing * (cal["balance_current_a"] * cal["cell_r_est_ohm"])
        above_v = unloaded_v - unloaded_v.min()
        threshold_v = cal["balance_threshold_mv"] / 1000.0
        return (above_v > threshold_v) | (self.balancing & (above_v > threshold_v - 2 * cal["afe_noise_v"]))

    def _self_discharge_check(self, now_s: float) -> None:
        """At rest, a cell whose voltage falls faster than the others' leaks: an internal soft short.

        Each cell's mean voltage over a window (averaging out the front end's noise) is compared with the
        previous window's; a drop larger than the median cell's by `self_discharge_mv` flags the cell.
        Pack-wide relaxation cancels in the median. Current flowing ends the rest, and with it the windows.

        Balancing must not blind the check: a leaking cell is the lowest, so on a spread pack the others bleed
        towards it for as long as it leaks. The bleed is known, so it is taken out: a bled cell's drop less the
        OCV drop its bled charge makes (`balance_current_a` over the window, through the OCV table's slope at
        that cell's SOC). A bleed switched on or off moves its cell's voltage by its IR drop at once and by its
        polarisation over minutes, so a cell is compared only once it has kept its bleed state, at rest, for
        `soc_rest_s` (the relaxation time) before the earlier of the two windows began; the others wait.
        """
        cal = self.cal
        resting = abs(self.current_a) < cal["soc_rest_current_a"]
        if "self_discharge_paused_by_balancing" in self.bugs:
            resting = resting and not self.balancing.any()
        if not resting or self.state == BmsState.INIT:
            self._leak_sum_v[:] = 0.0
            self._leak_samples = 0
            self._leak_previous_v = None
            self._leak_window_start_s = self._leak_previous_start_s = now_s
            self._leak_steady_since_s[:] = now_s
            self._leak_mask[:] = self.balancing
            return
        changed = self.balancing != self._leak_mask
        if changed.any():
            self._leak_steady_since_s[changed] = now_s
            self._leak_mask[:] = self.balancing
        self._leak_sum_v += self.cell_v
        self._leak_samples += 1
        window_s = cal["self_discharge_window_s"]
        if self._leak_samples * SLOW_TASK_S < window_s - 1e-9:
            return
        mean_v = self._leak_sum_v / self._leak_samples
        if self._leak_previous_v is not None:
            steady = self._leak_steady_since_s + cal["soc_rest_s"] <= self._leak_previous_start_s + 1e-9
            if np.count_nonzero(steady) >= MIN_CELLS_TO_COMPARE:
                drop_mv = (self._leak_previous_v[steady] - mean_v[steady]) * 1000.0
                bled = self._leak_mask[steady]
                if bled.any():
                    drop_mv -= bled * self._bleed_drop_mv(mean_v[steady], window_s)
                if (drop_mv - np.median(drop_mv)).max() > cal["self_discharge_mv"]:
                    self.warnings_latched |= 1 << FAULT_BITS["self_discharge"]
        self._leak_previous_v = mean_v
        self._leak_previous_start_s, self._leak_window_start_s = self._leak_window_start_s, now_s
        self._leak_sum_v[:] = 0.0
        self._leak_samples = 0

    def _bleed_drop_mv(self, cell_v: np.ndarray, window_s: float) -> np.ndarray:
        """The OCV drop, in mV, that `window_s` of balancing bleed makes in each cell at `cell_v`."""
        soc = np.interp(cell_v, self._ocv_v, self._ocv_soc)
        half_span_soc = 0.01   # the OCV table's slope over +-1 % SOC: smooth across its breakpoints
        slope_v = (np.interp(soc + half_span_soc, self._ocv_soc, self._ocv_v)
                   - np.interp(soc - half_span_soc, self._ocv_soc, self._ocv_v)) / (2 * half_span_soc)
        bled_soc = self.cal["balance_current_a"] * window_s / 3600.0 / (self.cal["capacity_ah"] * self.soh)
        return 1000.0 * bled_soc * slope_v

    def go_safe(self) -> None:
        """Harness gone: open everything now, without the contactor delay."""
        self.contactor_cmd.update(pos=False, neg=False, pre=False)
        self.contactor_fb.update(pos=False, neg=False, pre=False)
        if self.state != BmsState.FAULT:
            self.state = BmsState.SAFE
