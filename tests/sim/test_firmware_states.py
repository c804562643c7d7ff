"""The reference firmware's state machine: INIT, STANDBY, PRECHARGE, NORMAL, FAULT, SAFE, and the host link."""
import math

import pytest

from hil.protocol import BmsState, ModeRequest
from hil.sim.bms_firmware import MAIN_TASK_S, SLOW_TASK_S


def test_init_waits_one_slow_cycle_then_standby_with_soc_from_ocv(make_boards):
    boards = make_boards(soc0=0.3)
    boards.step(round(SLOW_TASK_S / MAIN_TASK_S))
    assert boards.fw.state == BmsState.INIT
    boards.step()
    assert boards.fw.state == BmsState.STANDBY
    assert abs(boards.fw.soc - 0.3) < 1e-3
    assert not any(boards.fw.contactor_cmd.values())


def test_precharge_closes_negative_and_precharge_then_main_after_the_voltage_match(boards):
    boards.standby()
    boards.request("discharge")
    t0_s = boards.run_until(lambda: boards.fw.state == BmsState.PRECHARGE, 0.2, "PRECHARGE")
    assert boards.fw.contactor_cmd == {"pos": False, "neg": True, "pre": True}
    boards.run_until(lambda: boards.fw.state == BmsState.NORMAL, 1.0, "NORMAL")
    cal = boards.cal
    # The DC link charges only once the contactors' feedback says closed, then needs ln(1/(1 - match)) tau.
    link_s = cal["precharge_tau_ms"] / 1000 * math.log(1 / (1 - cal["precharge_match_pct"] / 100))
    expected_s = cal["contactor_delay_ms"] / 1000 + link_s
    assert abs(boards.t_s - t0_s - expected_s) <= 2 * MAIN_TASK_S, "the main task quantises both steps"
    assert boards.fw.link_v >= cal["precharge_match_pct"] / 100 * boards.fw.pack_v
    assert boards.fw.contactor_cmd == {"pos": True, "neg": True, "pre": False}
    assert not boards.closed, "feedback follows the command only after the contactor delay"
    boards.run_for(cal["contactor_delay_ms"] / 1000)
    assert boards.closed and not boards.fw.contactor_fb["pre"]


def test_contactor_feedback_is_reported_on_can(boards):
    boards.power_up()
    boards.run_for(0.05)  # one BMS_Status cycle
    values = boards.monitor.values
    assert (values["BMS_State"], values["BMS_ContactorPos"], values["BMS_ContactorNeg"], values["BMS_ContactorPre"]) \
        == (int(BmsState.NORMAL), 1, 1, 0)


def test_precharge_timeout_is_a_latched_precharge_fault(make_boards):
    boards = make_boards("dut.calibration.precharge_tau_ms=1e6")
    boards.standby()
    boards.request("discharge")
    t0_s = boards.run_until(lambda: boards.fw.state == BmsState.PRECHARGE, 0.2, "PRECHARGE")
    timeout_s = boards.cal["precharge_timeout_ms"] / 1000
    boards.run_for(timeout_s)
    assert boards.fw.state == BmsState.PRECHARGE, boards.describe()
    boards.run_until(lambda: boards.fw.state == BmsState.FAULT, 0.05, "precharge timeout")
    assert boards.t_s - t0_s <= timeout_s + 2 * MAIN_TASK_S
    assert boards.fault("precharge") and not any(boards.fw.contactor_cmd.values())
    boards.request("standby")
    boards.clear_faults()
    boards.step()
    assert boards.fw.state == BmsState.STANDBY and boards.fw.faults == 0, "no condition persists: clear honoured"


def test_standby_request_opens_the_contactors(boards):
    boards.power_up()
    boards.request("standby")
    boards.run_until(lambda: boards.fw.state == BmsState.STANDBY, 0.2, "STANDBY")
    boards.run_until(lambda: not boards.closed, boards.cal["contactor_delay_ms"] / 1000 + 0.02, "contactors open")


def test_safe_request_opens_and_only_a_standby_request_leaves_safe(boards):
    boards.power_up()
    boards.request("safe")
    boards.run_until(lambda: boards.fw.state == BmsState.SAFE, 0.2, "SAFE")
    boards.run_for(0.1)
    assert not boards.closed
    boards.request("discharge")
    boards.run_for(0.5)
    assert boards.fw.state == BmsState.SAFE and not any(boards.fw.contactor_cmd.values()), boards.describe()
    boards.request("standby")
    boards.run_until(lambda: boards.fw.state == BmsState.STANDBY, 0.2, "STANDBY from SAFE")
    boards.request("charge")
    boards.run_until(lambda: boards.fw.state == BmsState.NORMAL and boards.closed, 1.0, "NORMAL again")


def test_an_unknown_mode_request_counts_as_standby(boards):
    boards.power_up()
    boards.sender.set("VCU_Request", VCU_ModeRequest=9)
    boards.run_until(lambda: boards.fw.state == BmsState.STANDBY, 0.3, "STANDBY on an unknown request")


def test_a_request_with_a_bad_crc_is_dropped(boards):
    boards.standby()
    boards.sender.set_crc_source("VCU_Request", lambda payload: payload[7] ^ 0xFF)
    boards.request("discharge")
    boards.run_for(0.5)
    assert boards.fw.state == BmsState.STANDBY and boards.fw.rx_bad_crc >= 4, boards.describe()


@pytest.mark.parametrize("fault", ["frozen_counter", "bad_crc"])
def test_stale_or_corrupted_host_frames_are_a_lost_host(boards, fault):
    """Host frames still coming, each a repeat of the last one's alive counter, or each with its CRC wrong: none
    refreshes the heartbeat or is acted on. The heartbeat fault latches as for a silent host, timed from the last
    sound frame; once they are sound again, a clear and a request close again."""
    boards.power_up()
    last_s = boards.last_host_frame_s()
    for name in ("VCU_Heartbeat", "VCU_Request"):
        boards.sender.inject(name, fault)
    boards.request("charge")   # a new request in unsound frames: not followed
    timeout_s = boards.cal["heartbeat_timeout_ms"] / 1000
    boards.run_until(lambda: boards.t_s >= last_s + timeout_s - MAIN_TASK_S, 1.0, "just before the timeout")
    boards.step()
    assert not boards.fault("heartbeat") and boards.fw.mode == ModeRequest.DISCHARGE, boards.describe()
    boards.run_until(lambda: boards.fault("heartbeat"), 3 * MAIN_TASK_S, "heartbeat fault")
    counted = boards.fw.rx_repeated if fault == "frozen_counter" else boards.fw.rx_bad_crc
    assert counted >= 2 * timeout_s / 0.1, f"{counted} frames dropped in {timeout_s:g} s"
    for name in ("VCU_Heartbeat", "VCU_Request"):
        boards.sender.inject(name, None)
    boards.clear_faults()
    boards.run_until(lambda: boards.fw.state == BmsState.NORMAL and boards.closed, 2.0, "NORMAL again")
    assert boards.fw.mode == ModeRequest.CHARGE


def test_a_standby_request_under_load_drops_the_limits_and_opens_once_the_current_falls(boards):
    """20 A flowing: the request holds the contactors closed with both limits at 0; the current gone, they open.
    20 A flowing on: they open once open_wait_ms has passed since the request. A fault while it holds ends the
    hold: once cleared, the limits are back."""
    wait_s = boards.cal["open_wait_ms"] / 1000
    boards.power_up()
    boards.ce.current_a = 20.0
    boards.run_for(0.2)
    boards.request("standby")
    boards.run_for(0.3)
    assert boards.fw.state == BmsState.NORMAL and boards.closed, boards.describe()
    assert boards.fw.discharge_limit_a == boards.fw.charge_limit_a == 0.0
    boards.ce.current_a = boards.cal["open_current_max_a"] / 2
    boards.run_until(lambda: boards.fw.state == BmsState.STANDBY and not any(boards.fw.contactor_cmd.values()),
                     2 * MAIN_TASK_S, "opened in the task after the current fell")
    boards.ce.current_a = 20.0
    boards.power_up()
    boards.request("standby")
    requested_s = boards.t_s
    boards.run_until(lambda: boards.fw.state == BmsState.STANDBY, 2 * wait_s, "opened under load in the end")
    assert boards.t_s - requested_s == pytest.approx(wait_s, abs=0.15)
    boards.power_up()   # a fault while it holds ends the hold: the limits come back once the fault is cleared
    boards.request("standby")
    boards.run_for(0.2)
    boards.ce.setpoint_v[0] = boards.cal["cell_ov_v"] + 0.01
    boards.run_until(lambda: boards.fw.state == BmsState.FAULT, 1.0, "cell_ov latched while holding")
    boards.ce.setpoint_v[0] = boards.ocv_at(0.5)
    boards.ce.current_a = 0.0
    boards.clear_faults()
    boards.run_until(lambda: boards.fw.state == BmsState.STANDBY, 1.0, "STANDBY once cleared")
    boards.run_for(0.2)
    assert boards.fw.discharge_limit_a > 0 and boards.fw.charge_limit_a > 0, boards.describe()


def test_heartbeat_loss_faults_once_the_timeout_passes_with_contactors_closed(boards):
    boards.power_up()
    boards.host_silent()
    last_s = boards.last_host_frame_s()
    timeout_s = boards.cal["heartbeat_timeout_ms"] / 1000
    boards.run_until(lambda: boards.t_s >= last_s + timeout_s - MAIN_TASK_S, 1.0, "just before the timeout")
    boards.step()
    assert not boards.fault("heartbeat"), boards.describe()
    boards.run_until(lambda: boards.fault("heartbeat"), 3 * MAIN_TASK_S, "heartbeat fault")
    assert boards.fw.state == BmsState.FAULT and not any(boards.fw.contactor_cmd.values())


def test_heartbeat_loss_in_standby_is_only_a_warning_after_startup(boards):
    boards.standby()
    boards.host_silent()
    boards.run_for(3 * boards.cal["heartbeat_timeout_ms"] / 1000)
    assert boards.fw.state == BmsState.STANDBY and boards.fw.faults == 0, boards.describe()


def test_heartbeat_missing_since_power_on_is_a_warning(make_boards):
    boards = make_boards()
    boards.host_silent()
    boards.standby()
    boards.step()
    assert boards.warning("heartbeat") and boards.fw.faults == 0, boards.describe()


def test_go_safe_opens_everything_at_once(boards):
    boards.power_up()
    boards.host.go_safe()
    assert boards.fw.state == BmsState.SAFE and not boards.closed and not boards.ce.outputs_on
