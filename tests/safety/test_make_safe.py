"""The safe state on a live bench: load zero, contactors open by request, cell-emulator outputs off, in that
order, each confirmed by a frame read back after its command. A step that cannot be confirmed is reported,
never swallowed, and the later steps still run. Signals wait while the bench goes safe."""
import os
import signal
import time
import xml.etree.ElementTree as ET

import pytest
from .safety_harness import CONTACTORS, RIGS, decoded_frames

from hil.bench import Bench
from hil.protocol import BmsState
from hil.rig import load_rig
from hil.safety import PROPERTY_PREFIX, NotSafe, held_interrupts, make_safe, sigterm_interrupts

pytest_plugins = ["pytester"]
LOAD_A = 8.0


def powered(rig: str = "sim", *overrides: str, report_dir=None) -> Bench:
    """A bench with its contactors closed and LOAD_A flowing."""
    bench = Bench(load_rig(RIGS[rig], overrides), report_dir=report_dir)
    try:
        bench.power_up()
        bench.set_load(LOAD_A, honour_limits=False)  # full current at once, limits still rising
        bench.loop.run_for(0.5)
        assert bench.bms.contactors_closed and bench.pack_current_a == LOAD_A
    except BaseException:
        bench.close()
        raise
    return bench


@pytest.mark.parametrize("lie", ["forced", "offset"])
def test_a_current_sensor_left_lying_is_released_and_the_load_confirmed(lie):
    """A test cut short with the BMS's current sensor made to read 5 A (forced), or 5 A more than flows (offset):
    the load is off, and the safe state confirms it from what the BMS reports, once it releases the sensor."""
    with powered() as bench:
        if lie == "forced":
            bench.force_current(5.0)
        else:
            bench.offset_current(5.0)
        bench.loop.run_for(0.1)
        expected_a = 5.0 if lie == "forced" else LOAD_A + 5.0
        assert bench.bms.pack_current_a == pytest.approx(expected_a, abs=0.1), bench.bms.describe()
        state = make_safe(bench)
        assert state.confirmed, state
        assert bench.bms.pack_current_a == pytest.approx(0.0, abs=0.1), bench.bms.describe()


def first(frames, name: str, condition) -> float:
    return next(t for t, message, values in frames if message == name and condition(values))


def test_each_step_is_commanded_only_after_the_previous_one_reads_back(tmp_path, db):
    with powered(report_dir=tmp_path) as bench:
        start_s = bench.loop.t_s
        state = make_safe(bench)
        assert state.confirmed and [step.name for step in state.steps] == ["supply", "load", "contactors", "outputs"]
        assert start_s < state.steps[0].at_s < state.steps[1].at_s < state.steps[2].at_s < state.steps[3].at_s
        # The boards themselves (in this process on the sim rig) are safe, not only what the harness decoded.
        assert not any(bench.boards.firmware.contactor_fb.values()) and not bench.boards.cell_emulator.outputs_on
        events = [text for _, text in bench.trace.events if text.startswith("safe state:")]
    assert [event.split()[2:4] for event in events] == [["supply", "confirmed"], ["load", "confirmed"],
                                                        ["contactors", "confirmed"], ["outputs", "confirmed"]]
    frames = [frame for frame in decoded_frames(next(tmp_path.glob("*.blf")), db) if frame[0] >= start_s]
    load_zero_s = first(frames, "BMS_PackData", lambda v: v["BMS_PackCurrent"] == 0)
    standby_s = first(frames, "VCU_Request", lambda v: v["VCU_ModeRequest"] == 0)
    open_s = first(frames, "BMS_Status", lambda v: not any(v[name] for name in CONTACTORS))
    off_s = first(frames, "CE_Control", lambda v: v["CE_OutputEnable"] == 0)
    outputs_off_s = first(frames, "CE_Status", lambda v: v["CE_OutputsOn"] == 0)
    assert load_zero_s < standby_s < open_s < off_s < outputs_off_s
    # Opened on request, not tripped: the first frame showing them open says STANDBY without a fault.
    opened = next(v for t, name, v in frames if t == open_s and name == "BMS_Status")
    assert (opened["BMS_State"], opened["BMS_FaultBits"]) == (BmsState.STANDBY, 0)


def test_a_step_not_confirmed_is_reported_and_the_later_steps_still_run():
    with powered("sim", 'dut.bugs=["contactor_stays_closed"]') as bench:
        # The seeded bug keeps the contactors closed on a fault: trip one, then ask for the safe state.
        bench.force_cell(0, bench.spec.protections["cell_ov"].high + 0.02)
        bench.bms.wait_state("FAULT", 2.0)
        with pytest.raises(NotSafe) as caught:
            make_safe(bench, timeout_s=0.5)
        assert not bench.boards.cell_emulator.outputs_on
    state = caught.value.state
    assert [(step.name, step.confirmed) for step in state.steps] == [("supply", True), ("load", True),
                                                                      ("contactors", False), ("outputs", True)]
    assert "contactors NOT confirmed" in str(caught.value) and "BMS_ContactorPos=1" in str(caught.value)
    properties = dict(state.properties())
    assert properties[f"{PROPERTY_PREFIX}confirmed"] is False
    assert properties[f"{PROPERTY_PREFIX}contactors"].startswith("contactors NOT confirmed")


def test_host_frames_a_test_stopped_are_restarted_to_carry_the_commands():
    with powered() as bench:
        bench.bms.heartbeat(False)
        bench.sender.stop("CE_Control")
        bench.loop.run_for(0.2)   # well inside both boards' 500 ms watchdogs
        assert make_safe(bench).confirmed
        assert "heartbeat" not in bench.bms.faults and not bench.cell_emulator.watchdog_tripped


@pytest.mark.slow
@pytest.mark.wire
def test_a_harness_paused_longer_than_the_timeouts_still_confirms_the_safe_state():
    """A debugger, a swapped-out process or a long report leaves a real-clock loop seconds behind."""
    with powered("slcan") as bench:
        time.sleep(3.0)
        assert make_safe(bench, timeout_s=2.0).confirmed
        assert bench.loop.overrun_policy == "catch-up"


def test_sigterm_raises_keyboard_interrupt_inside_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), sigterm_interrupts():
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_signals_while_going_safe_wait_until_it_is_done():
    before = signal.getsignal(signal.SIGINT)
    done = []
    with pytest.raises(KeyboardInterrupt), sigterm_interrupts():
        with held_interrupts():
            with held_interrupts():  # nested: the outer block decides
                os.kill(os.getpid(), signal.SIGTERM)
                signal.raise_signal(signal.SIGINT)
                time.sleep(0.05)
            done.append("inner")
            time.sleep(0.05)
            done.append("outer")
    assert done == ["inner", "outer"]
    assert signal.getsignal(signal.SIGINT) is before


def test_the_fixture_reports_a_bench_it_cannot_confirm_safe(pytester):
    pytester.makepyfile(test_stuck="""
        def test_powered(bench):
            bench.power_up()
            bench.force_cell(0, bench.spec.protections["cell_ov"].high + 0.02)  # the bug keeps them closed
            bench.bms.wait_state("FAULT", 2.0)
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--set", 'dut.bugs=["contactor_stays_closed"]', f"--junitxml={junit}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*bench not confirmed safe after the test: *contactors NOT confirmed*"])
    case = next(ET.parse(junit).getroot().iter("testcase"))
    properties = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert properties[f"{PROPERTY_PREFIX}confirmed"] == "False"
    assert properties[f"{PROPERTY_PREFIX}outputs"].startswith("outputs confirmed at t=")
