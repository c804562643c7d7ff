"""Every protection of the reference firmware: debounce edges, reset, warning tier, latching and clear.

A protection debounced over `debounce_ms` trips on the main task where its condition has held for
debounce_ms / 10 ms consecutive tasks, and not one task earlier.
"""
from dataclasses import dataclass

import pytest

from hil.protocol import BmsState
from hil.sim.bms_firmware import MAIN_TASK_S


@dataclass
class Case:
    fault: str
    debounce: str | float  # a calibration key in ms, or seconds for the firmware's fixed debounces
    apply: object          # (boards) -> None: make the condition true
    clear: object          # (boards) -> None: make it false again
    level: str = ""        # which of a fault's levels, where it has more than one

    def tasks(self, cal: dict) -> int:
        debounce_s = cal[self.debounce] / 1000 if isinstance(self.debounce, str) else self.debounce
        return round(debounce_s / MAIN_TASK_S)


def _cell(channel, offset_v, key):
    return lambda b: b.ce.setpoint_v.__setitem__(channel, b.cal[key] + offset_v)


def _temp(channel, offset_c, key):
    return lambda b: b.ce.setpoint_c.__setitem__(channel, b.cal[key] + offset_c)


def _current(sign, offset_a, key):
    return lambda b: setattr(b.ce, "current_a", sign * (b.cal[key] + offset_a))


def _relay(name, on):
    return lambda b: getattr(b.ce, name).__setitem__(5, on)


def _restore_cell(channel):
    return lambda b: b.ce.setpoint_v.__setitem__(channel, b.ocv_at(0.5))


def _restore_temp(channel):
    return lambda b: b.ce.setpoint_c.__setitem__(channel, 25.0)


def _no_current(b):
    b.ce.current_a = 0.0


def _hvil(opened):
    return lambda b: setattr(b.ce, "hvil_open", opened)


CASES = [
    Case("cell_ov", "ov_debounce_ms", _cell(3, 0.01, "cell_ov_v"), _restore_cell(3)),
    Case("cell_uv", "uv_debounce_ms", _cell(3, -0.01, "cell_uv_v"), _restore_cell(3)),
    Case("charge_oc", "oc_debounce_ms", _current(-1, 1.0, "charge_oc_a"), _no_current),
    Case("discharge_oc", "oc_debounce_ms", _current(1, 1.0, "discharge_oc_a"), _no_current),
    Case("discharge_oc", "sustained_oc_debounce_ms", _current(1, 1.0, "sustained_oc_a"), _no_current, "sustained"),
    Case("cell_ot", "ot_debounce_ms", _temp(15, 1.0, "cell_ot_c"), _restore_temp(15)),
    Case("cell_ut", "ot_debounce_ms", _temp(0, -1.0, "cell_ut_c"), _restore_temp(0)),
    Case("sense_wire", 0.03, _relay("open_wire", True), _relay("open_wire", False)),
    Case("thermistor", 0.1, _relay("thermistor_open", True), _relay("thermistor_open", False)),
    Case("hvil", "hvil_debounce_ms", _hvil(True), _hvil(False)),
]
IDS = [f"{case.fault}_{case.level}" if case.level else case.fault for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_trips_on_the_debounce_task_not_before(boards, case):
    boards.power_up()
    n = case.tasks(boards.cal)
    case.apply(boards)
    boards.step(n - 1)
    assert not boards.fault(case.fault) and boards.fw.state == BmsState.NORMAL, boards.describe()
    boards.step()
    assert boards.fault(case.fault) and boards.fw.state == BmsState.FAULT, boards.describe()
    assert not any(boards.fw.contactor_cmd.values()), "a fault must command every contactor open"
    boards.run_for(boards.cal["contactor_delay_ms"] / 1000)
    assert not boards.closed


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_debounce_restarts_when_the_condition_clears_for_one_task(boards, case):
    boards.power_up()
    n = case.tasks(boards.cal)
    case.apply(boards)
    boards.step(n - 1)
    case.clear(boards)
    boards.step()
    case.apply(boards)
    boards.step(n - 1)
    assert not boards.fault(case.fault) and boards.fw.state == BmsState.NORMAL, boards.describe()
    boards.step()
    assert boards.fault(case.fault), boards.describe()


WARNINGS = [
    ("cell_ov", _cell(3, -0.02, "cell_ov_v")),
    ("cell_uv", _cell(3, 0.02, "cell_uv_v")),
    ("charge_oc", _current(-1, -1.0, "charge_oc_a")),
    ("discharge_oc", _current(1, -1.0, "discharge_oc_a")),
    ("cell_ot", _temp(15, -2.0, "cell_ot_c")),
    ("cell_ut", _temp(0, 2.0, "cell_ut_c")),
]


@pytest.mark.parametrize("name,apply", WARNINGS, ids=[w[0] for w in WARNINGS])
def test_warning_tier_inside_the_threshold_warns_at_once_and_never_trips(boards, name, apply):
    boards.power_up()
    assert boards.fw.warnings == 0, boards.describe()
    apply(boards)
    boards.step()
    assert boards.warning(name), boards.describe()
    boards.run_for(2 * boards.cal["ot_debounce_ms"] / 1000)  # longer than any debounce
    assert boards.fw.faults == 0 and boards.fw.state == BmsState.NORMAL, boards.describe()


def test_warning_goes_away_with_its_condition(boards):
    boards.power_up()
    boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] - 0.02
    boards.step()
    assert boards.warning("cell_ov")
    boards.ce.setpoint_v[3] = boards.ocv_at(0.5)
    boards.step()
    assert not boards.warning("cell_ov"), boards.describe()


def _trip_ov(boards):
    boards.power_up()
    boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] + 0.01
    boards.run_until(lambda: boards.fw.state == BmsState.FAULT, 1.0, "FAULT")


def test_fault_stays_latched_after_the_condition_clears(boards):
    _trip_ov(boards)
    boards.ce.setpoint_v[3] = boards.ocv_at(0.5)
    boards.run_for(2.0)
    assert boards.fw.state == BmsState.FAULT and boards.fault("cell_ov"), boards.describe()
    assert boards.fw.active == 0, "the condition itself is gone"
    assert boards.monitor.values["BMS_FaultBits"] == boards.fw.faults, "the latched bit is reported on CAN"


def test_clear_request_is_refused_while_the_condition_persists(boards):
    _trip_ov(boards)
    boards.clear_faults()
    boards.run_for(0.5)
    assert boards.fw.state == BmsState.FAULT and boards.fault("cell_ov"), boards.describe()


def test_clear_request_after_the_condition_returns_to_standby(boards):
    _trip_ov(boards)
    boards.ce.setpoint_v[3] = boards.ocv_at(0.5)
    boards.step()
    boards.request("standby")
    boards.clear_faults()
    boards.step()
    assert boards.fw.state == BmsState.STANDBY and boards.fw.faults == 0, boards.describe()
    boards.request("discharge")
    boards.run_until(lambda: boards.fw.state == BmsState.NORMAL and boards.closed, 1.0, "NORMAL again")


def test_a_clear_request_sent_before_the_fault_does_not_pre_clear_it(boards):
    boards.power_up()
    boards.clear_faults()
    boards.run_for(0.2)
    boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] + 0.01
    boards.run_until(lambda: boards.fw.state == BmsState.FAULT, 1.0, "FAULT")
    boards.ce.setpoint_v[3] = boards.ocv_at(0.5)
    boards.run_for(0.5)
    assert boards.fw.state == BmsState.FAULT, boards.describe()


def test_over_current_does_not_count_the_other_direction(boards):
    boards.power_up()
    boards.ce.current_a = -(boards.cal["discharge_oc_a"] - 1.0)  # charging hard, but under the discharge limit
    boards.run_for(0.5)
    assert not boards.fault("discharge_oc")
    assert boards.fault("charge_oc"), "charging at more than charge_oc_a trips charge over-current"


def test_nothing_closes_onto_an_open_interlock_and_its_fault_outlasts_a_clear(boards):
    """A close request with the interlock loop open starts no precharge, even in the tasks before the loop's
    error has debounced; the error latches, a clear is refused while the loop stays open, and once it is closed
    and cleared the standing request closes the contactors."""
    boards.standby()
    boards.ce.hvil_open = True
    boards.request("discharge")
    for _ in range(round(0.5 / MAIN_TASK_S)):
        boards.step()
        assert not any(boards.fw.contactor_cmd.values()), boards.describe()
    assert boards.fault("hvil") and boards.fw.state == BmsState.FAULT, boards.describe()
    boards.clear_faults()
    boards.run_for(0.3)
    assert boards.fw.state == BmsState.FAULT and boards.fault("hvil"), boards.describe()
    boards.ce.hvil_open = False
    boards.run_for(0.3)
    assert boards.fw.state == BmsState.FAULT and boards.fault("hvil"), "latched until the host clears it"
    boards.clear_faults()
    boards.run_until(lambda: boards.fw.state == BmsState.NORMAL and boards.closed, 1.0, "NORMAL again")

