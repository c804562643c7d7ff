"""`hil check`: a bench brought up without a test says whether its BMS answers, on time, with the rig's build,
and is left safe; a BMS that is silent, late or another build is a problem, named, with exit 1."""
import json
import subprocess
import sys

import pytest

from hil.cli import main
from hil.rig import PROJECT_ROOT
from hil.sim.bms_firmware import VERSION_TEXT as BUILT


def _check(capsys, *args: str) -> tuple[int, list[str], dict]:
    code = main(["check", "--listen-s", "1", "--json", *args])
    lines = capsys.readouterr().out.splitlines()
    return code, lines[:-1], json.loads(lines[-1])


def test_the_emulated_bench_answers_as_its_rig_says(capsys):
    code, lines, findings = _check(capsys, "--set", f'dut.firmware="{BUILT}"')
    assert code == 0 and lines[-1] == "OK: the bench answers as the rig says", lines
    assert findings["firmware"] == BUILT and findings["problems"] == [] and findings["passed"]
    assert findings["messages"]["BMS_Status"]["mean_cycle_ms"] == pytest.approx(20.0, abs=0.5)
    assert f"firmware: {BUILT} (the rig expects {BUILT})" in lines
    assert "  BMS_CellVoltages: 40 frames, 4.0 per 100 ms cycle (multiplexed)" in lines   # 16 cells, 4 a frame
    assert [line.split(" confirmed")[0] for line in lines if line.startswith("safe: ")] == [
        "safe: supply", "safe: load", "safe: contactors", "safe: outputs"]
    assert findings["state"].startswith("state=STANDBY contactors_closed=False")


def test_another_build_is_a_problem(capsys):
    code, lines, findings = _check(capsys, "--set", 'dut.firmware="2.0.0"')
    assert code == 1 and findings["problems"] == [f"the BMS runs build {BUILT}, but the rig's [dut] firmware is 2.0.0"]
    assert lines[-1] == "1 problem(s)"


def test_a_status_message_off_its_spec_cycle_is_a_problem(capsys):
    code, _lines, findings = _check(capsys, "--set", "dut.calibration.status_cycle_ms=30")
    assert code == 1
    assert findings["problems"] == ["BMS_Status: mean cycle 30.0 ms, the spec's 20 ms ± 10 %"]


def test_a_silent_bms_is_named_message_by_message_and_the_bench_not_confirmed_safe(capsys):
    """Nothing on the bus: every message the spec times is missing, the build unknown, and the safe state, which
    reads back frames, cannot be confirmed. No wait hangs."""
    code, lines, findings = _check(capsys, "--set", "dut.kind=external", "--set", "power_supply.kind=none",
                                   "--set", 'cell_emulator.kind="can"')
    assert code == 1
    problems = findings["problems"]
    assert problems[0].startswith("the BMS said no firmware version: ") and "BMS_Version never received" in problems[0]
    assert [p.split(" never")[0] for p in problems[1:5]] == ["BMS_Status", "BMS_PackData", "BMS_Limits", "BMS_SOC"]
    assert problems[-1].startswith("bench not confirmed safe: load NOT confirmed")
    assert "firmware: not said (the rig names none)" in lines


def test_a_bad_listening_time_is_refused(capsys):
    assert main(["check", "--listen-s", "0"]) == 2
    assert "--listen-s 0: expected seconds in 1..600" in capsys.readouterr().err


@pytest.mark.wire
def test_the_bench_over_slcan_answers_as_its_rig_says():
    """The boards in their own process behind a pty, python-can's slcan client in the harness, real clock."""
    result = subprocess.run([sys.executable, "-m", "hil", "check", "--rig", str(PROJECT_ROOT / "rigs" / "slcan.toml"),
                             "--set", f'dut.firmware="{BUILT}"', "--json"],
                            capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    findings = json.loads(result.stdout.splitlines()[-1])
    assert findings["firmware"] == BUILT and findings["messages"]["BMS_Version"]["frames"] >= 2
    assert findings["messages"]["BMS_Status"]["mean_cycle_ms"] == pytest.approx(20.0, rel=0.1)
