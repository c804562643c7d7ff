"""`hil check`: a bench brought up without a test says whether its BMS answers, on time, with the rig's build,
whether each channel is read where it is wired, and is left safe; a BMS that is silent, late or another build,
or a channel read in another's slot, is a problem, named, with exit 1."""
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
    assert findings["uds"] == {"software_version": BUILT, "dtcs": {},
                               "security": "unlocked with the map's key (level 0x01)"}
    assert f"UDS: build {BUILT}, 0 stored DTC(s), security access unlocked with the map's key (level 0x01)" in lines


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
    assert problems[-2].startswith("UDS (UDS_BmsRequest/UDS_BmsResponse): condition not met within 1 s")
    assert problems[-1].startswith("bench not confirmed safe: load NOT confirmed")
    assert findings["channels"] == {} and findings["notes"][-1].startswith(
        "channels not stepped: the BMS is not in STANDBY (state=no BMS_Status received")
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
    assert findings["channels"]["cell"]["error_max"] <= 5 and findings["channels"]["thermistor"]["error_max"] <= 1


def test_each_channel_is_stepped_and_read_back(capsys):
    code, lines, findings = _check(capsys)
    assert code == 0, findings["problems"]
    cells, thermistors = findings["channels"]["cell"], findings["channels"]["thermistor"]
    assert cells["channels"] == thermistors["channels"] == 16
    assert 0 <= cells["error_max"] <= cells["tolerance"] == 5 and cells["unit"] == "mV"
    assert 0 <= thermistors["error_max"] <= thermistors["tolerance"] == 1 and thermistors["unit"] == "degC"
    assert any(line.startswith("cell channels: 16 stepped up and down, worst ") for line in lines), lines


def test_a_channel_read_in_another_slot_is_named(capsys):
    """The reference firmware's reporting table off by one: cells 2 and 3 in each other's slots, as a sense
    harness wired one pin off reads."""
    code, lines, findings = _check(capsys, "--set", 'dut.bugs=["cell_report_swapped"]')
    assert code == 1
    [problem] = findings["problems"]
    assert problem.startswith("cell channels beyond the spec's ±5 mV: channel 2 reported "), problem
    assert problem.endswith("; that is channel 3's level: channels swapped or mis-mapped?"), problem
    assert f"PROBLEM: {problem}" in lines


def test_listen_only_leaves_the_channels_alone(capsys):
    code, lines, findings = _check(capsys, "--listen-only")
    assert code == 0 and "channels" not in findings
    assert not any(" channels: " in line for line in lines), lines


def test_channels_the_proxy_cannot_read_are_a_note(capsys, tmp_path):
    """A DUT map that reads no cell voltages or temperatures: nothing to step, and it says so."""
    lines = (PROJECT_ROOT / "fixtures" / "duts" / "reference-bms.toml").read_text().splitlines(keepends=True)
    bare = tmp_path / "no-cells.toml"
    bare.write_text("".join(line for line in lines if not line.startswith(("cell_voltages_v", "cell_temperatures_c"))))
    code, _lines, findings = _check(capsys, "--set", f'dut.map="{bare}"')
    assert code == 0 and findings["channels"] == {}
    assert findings["notes"][-2:] == [f"{kind} channels not stepped: the BMS's proxy reads none "
                                      "(a DUT map without them)" for kind in ("cell", "thermistor")]


def test_stored_dtcs_are_a_note_with_their_status():
    """A BMS that tripped before the check (the last run's over-voltage): its DTC is noted, not a problem."""
    from hil.bench import Bench
    from hil.check import _diagnose
    from hil.rig import load_rig
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml")) as bench:
        bench.power_up()
        bench.force_cell(0, 4.35)
        bench.loop.run_until(lambda: "cell_ov" in bench.bms.faults, 2.0, bench.bms.describe)
        findings = {"firmware": BUILT, "problems": [], "notes": []}
        _diagnose(bench, findings)
    assert findings["problems"] == [] and findings["uds"]["dtcs"] == {"cell_ov (P1A00-00)": 0x2F}
    assert findings["notes"] == ["stored DTCs: cell_ov (P1A00-00) status 0x2F"]


def test_a_security_key_the_bms_refuses_is_a_problem(capsys, tmp_path):
    """A DUT map whose key function is not the BMS's: the check's one try is refused (invalidKey), a problem
    named, rather than the suite's security tests failing an hour later."""
    (tmp_path / "keys.py").write_text("def wrong(seed, level):\n    return bytes(len(seed))\n")
    reference = PROJECT_ROOT / "fixtures" / "duts" / "reference-bms.toml"
    path = tmp_path / "map.toml"
    path.write_text(reference.read_text().replace('"hil.protocol:reference_security_key"', '"keys.py:wrong"'))
    code, lines, findings = _check(capsys, "--listen-only", "--set", f'dut.map="{path}"')
    assert code == 1 and findings["uds"]["security"] == "refused", lines
    assert findings["problems"] == [
        "UDS security access with the map's [uds] security_key: SecurityAccess refused by the BMS: negative response "
        "0x35 (InvalidKey)"], findings["problems"]
