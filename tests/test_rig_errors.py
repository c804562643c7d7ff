"""Bad rig input gets a clear error naming the file and key, and a non-zero exit: never a traceback."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.rig import load_rig, preflight

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "rigs" / "sim.toml"


def _rig_with(tmp_path, old: str, new: str) -> Path:
    text = SIM.read_text()
    assert old in text, f"fixture text {old!r} not in sim.toml"
    path = tmp_path / "rigs" / "bad.toml"
    path.parent.mkdir()
    # Keep relative paths valid: they resolve against the rig file's folder.
    path.write_text(text.replace(old, new).replace('"../', f'"{ROOT}/'))
    return path


def _hil(*args):
    return subprocess.run([sys.executable, "-m", "hil", *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT)


def test_shipped_rigs_load():
    names = set()
    for path in sorted((ROOT / "rigs").glob("*.toml")):
        rig = load_rig(path)
        preflight(rig)
        names.add(rig.name)
    assert names >= {"sim", "sim-lfp", "sim-drone", "sim-bbu", "slcan", "vcan"}


def test_missing_rig_file(tmp_path):
    result = _hil("run", "--rig", str(tmp_path / "nope.toml"))
    assert result.returncode != 0
    assert "nope.toml: rig file not found" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_key_names_file_and_key(tmp_path):
    path = _rig_with(tmp_path, "n_series = 16", "n_series = 16\nn_seriess = 3")
    with pytest.raises(ConfigError, match=r"bad.toml \[pack\]: unknown key 'n_seriess' \(did you mean 'n_series'"):
        load_rig(path)
    result = _hil("run", "--rig", str(path))
    assert result.returncode == 2 and "n_seriess" in result.stderr and "Traceback" not in result.stderr


def test_unknown_python_can_interface(tmp_path):
    path = _rig_with(tmp_path, 'interface = "virtual"', 'interface = "virtaul"')
    result = _hil("run", "--rig", str(path))
    assert result.returncode == 2
    assert "can.main.interface" in result.stderr and "did you mean 'virtual'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_dbc(tmp_path):
    path = _rig_with(tmp_path, '/dbc/vcu.dbc"', '/dbc/missing.dbc"')
    result = _hil("run", "--rig", str(path))
    assert result.returncode == 2
    assert "missing.dbc: DBC file not found" in result.stderr and "Traceback" not in result.stderr


def test_wrong_type_and_bad_value(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'pack.n_series' = 'sixteen', expected int"):
        load_rig(_rig_with(tmp_path, "n_series = 16", 'n_series = "sixteen"'))
    with pytest.raises(ConfigError, match=r"key 'rig.clock' = 'fast', expected one of"):
        load_rig(SIM, ['rig.clock="fast"'])
    with pytest.raises(ConfigError, match=r"key 'rig.wait' = 'spin', expected one of"):
        load_rig(SIM, ['rig.wait="spin"'])


@pytest.mark.parametrize("override, expected", [
    ("pack.ambient_c=nan", "key 'pack.ambient_c' is not a finite number"),
    ("dut.calibration.cell_ov_v=inf", "key 'dut.calibration.cell_ov_v' is not a finite number"),
    ("rig.dt_s=0.0", "key 'rig.dt_s' = 0.0, expected a number > 0 and <= 0.01"),
    ("rig.dt_s=5.0", "key 'rig.dt_s' = 5.0, expected a number > 0 and <= 0.01"),
    ("rig.setpoint_period_s=0.0015", "key 'rig.setpoint_period_s' = 0.0015, expected a whole number of steps of "
                                     "rig.dt_s = 0.001 s (e.g. 0.002)"),
    ("rig.setpoint_period_s=-1.0", "key 'rig.setpoint_period_s' = -1.0, expected a number > 0"),
    ("rig.seed=-1", "key 'rig.seed' = -1, expected an integer from 0 to"),
    ("pack.ambient_c=-300.0", "key 'pack.ambient_c' = -300.0, expected a number >= -60 and <= 100"),
    ("pack.soc0=1.5", "key 'pack.soc0' = 1.5, expected a number >= 0 and <= 1"),
    ("pack.soc0=[0.6, 1.5]", "key 'pack.soc0' = [0.6, 1.5], expected a number >= 0 and <= 1"),
    ('pack.soc0=[0.6, "full"]', "key 'pack.soc0' = [0.6, 'full'], expected a number or a list of numbers (one per "
                                "series cell)"),
    ("pack.soc0=[0.6, 0.7]", "key 'pack.soc0' has 2 values, expected one number or pack.n_series = 16 (one per "
                             "series cell)"),
    ("pack.soh_capacity=[1.0, 0.8]", "key 'pack.soh_capacity' has 2 values, expected one number or pack.n_series = "
                                     "16 (one per series cell)"),
    ('dut.debug_port="auto"', "key 'dut.debug_port' = \"auto\" is the debug UART's pty that `hil emulate` serves, "
                              "but this rig's boards do not run in their own process"),
    ("pack.n_series=0", "key 'pack.n_series' = 0, expected an integer from 1 to 10000"),
    ("pack.n_series=100000000", "key 'pack.n_series' = 100000000, expected an integer from 1 to 10000"),
    ("pack.n_series=17", "key 'cell_emulator.channels' = 16, expected pack.n_series = 17"),
    ("emulate.startup_timeout_s=-1.0", "key 'emulate.startup_timeout_s' = -1.0, expected a number > 0"),
    ('rig.capabilities=["fault_relay"]', "key 'rig.capabilities' holds 'fault_relay' (did you mean 'fault_relays'?)"),
    ("power_supply.nominal_v=120.0", "key 'power_supply.nominal_v' = 120.0, expected a number > 0 and <= 60"),
    ('power_supply.kind="rigol"', "key 'power_supply.kind' = 'rigol', expected one of ['emulated', 'scpi', 'none']"),
    ('power_supply.kind="scpi"', "[power_supply] kind = \"scpi\" needs key 'power_supply.port'"),
    ('dut.kind="external"', "[power_supply] kind = \"emulated\" feeds the emulated BMS, but dut.kind = 'external'"),
    ('power_supply={}', "missing key 'power_supply.kind'"),
])
def test_numbers_out_of_range_and_inconsistent_keys_are_refused(override, expected):
    with pytest.raises(ConfigError) as caught:
        load_rig(SIM, [override])
    assert expected in str(caught.value) and "sim.toml" in str(caught.value)


def test_a_spec_timing_a_message_the_dut_does_not_have_fails_preflight(tmp_path):
    """[cycle_times] names the BMS's own messages: a misspelt one would time nothing."""
    spec = tmp_path / "spec.toml"
    spec.write_text((ROOT / "fixtures" / "specs" / "reference-bms.toml").read_text().replace("BMS_Status = {",
                                                                                          "BMS_Statuss = {"))
    with pytest.raises(ConfigError) as caught:
        preflight(load_rig(SIM, [f'spec.file="{spec}"']))
    assert (f"{spec} [cycle_times]: message 'BMS_Statuss' is not in the DUT bus's DBC files (did you mean "
            "'BMS_Status'") in str(caught.value)


def test_lv_supply_needs_a_supply_and_kind_none_takes_it_away(tmp_path):
    text = SIM.read_text()
    block = text[text.index("[power_supply]"):text.index("[dut]\n")]
    with pytest.raises(ConfigError, match=r"holds 'lv_supply' but the rig has no \[power_supply\] table"):
        load_rig(_rig_with(tmp_path, block, ""))
    rig = load_rig(SIM, ['power_supply.kind="none"'])
    assert "lv_supply" not in rig.capabilities and "lv_supply" in load_rig(SIM).capabilities


def test_an_aged_module_among_new_ones_is_data():
    """`soh_capacity` and `soh_resistance` per series cell: block 3 at 85 % of its capacity and 1.4 times its
    resistance, the others new; a value the model refuses names the rig and the key."""
    soh = [1.0] * 16
    soh[3] = 0.85
    rise = [1.0] * 16
    rise[3] = 1.4
    fresh = load_rig(SIM, ["pack.n_parallel=2"]).make_pack()
    pack = load_rig(SIM, [f"pack.soh_capacity={soh}", f"pack.soh_resistance={rise}", "pack.n_parallel=2"]).make_pack()
    assert (pack.capacity_ah / fresh.capacity_ah)[:, 0].tolist() == pytest.approx(soh)
    assert pack.capacity_ah[3].tolist() == pytest.approx([0.85 * fresh.capacity_ah[3, 0]] * 2)
    assert (pack.cell_r0_ohm / fresh.cell_r0_ohm)[:, 1].tolist() == pytest.approx(rise)
    soh[5] = 1.2
    with pytest.raises(ConfigError, match=r"sim.toml \[pack\]: soh_capacity = .*expected values in 0.05..1.0"):
        load_rig(SIM, [f"pack.soh_capacity={soh}"]).make_pack()


def test_a_pack_seed_keeps_one_pack_whatever_the_rigs_seed():
    """`[pack] seed` draws the production spread: the pack `rig.seed` = that seed would build, under any rig seed
    (which --hil-repeat moves, with the noise); without it, each rig seed draws its own pack."""
    spread = ["pack.capacity_spread=0.02", "pack.resistance_spread=0.05", "pack.soc_spread=0.01"]
    drawn = load_rig(SIM, [*spread, "rig.seed=5"]).make_pack()
    for rig_seed in (1, 2):
        pack = load_rig(SIM, [*spread, "pack.seed=5", f"rig.seed={rig_seed}"]).make_pack()
        assert np.array_equal(pack.capacity_ah, drawn.capacity_ah) and np.array_equal(pack.soc, drawn.soc)
        assert np.array_equal(pack.cell_r0_ohm, drawn.cell_r0_ohm)
    assert not np.array_equal(load_rig(SIM, [*spread, "rig.seed=2"]).make_pack().capacity_ah, drawn.capacity_ah)


def test_a_pack_may_start_with_one_soc_per_series_cell():
    """A module swapped in at another SOC: `soc0` as a list, one value per series cell."""
    soc0 = [0.6] * 16
    soc0[3] = 0.75
    pack = load_rig(SIM, [f"pack.soc0={soc0}", "pack.n_parallel=2"]).make_pack()
    assert pack.soc.tolist() == pytest.approx(soc0) and pack.cell_soc[3].tolist() == pytest.approx([0.75, 0.75])


def test_a_labs_own_capability_is_accepted():
    assert "climate_chamber" in load_rig(SIM, ['rig.capabilities=["climate_chamber"]']).capabilities


@pytest.mark.parametrize("overrides, expected", [
    (["pack.n_series=97", "cell_emulator.channels=97"],
     "key 'cell_emulator.channels' = 97, but the bus's DBC files (bms.dbc, vcu.dbc, cell_emulator.dbc) have Cell "
     "setpoints for 96 channel(s): no CE_Cell97_Setpoint"),
    (["pack.soc_spread=0.5"], "sim.toml [pack]: soc_spread = 0.5, expected a standard deviation in 0..0.2"),
])
def test_preflight_refuses_what_the_dbc_or_the_model_cannot_take(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        preflight(load_rig(SIM, overrides))
    assert expected in str(caught.value)


@pytest.mark.parametrize("override, expected", [
    ("dut.calibration.capacity_ah=0.0", "calibration key 'capacity_ah' = 0.0, expected a number > 0 (Ah, "),
    ("dut.calibration.status_cycle_ms=0", "calibration key 'status_cycle_ms' = 0, expected a number > 0"),
    ("dut.calibration.ov_debounce_ms=-5", "calibration key 'ov_debounce_ms' = -5, expected a number >= 0"),
    ("dut.calibration.cell_ov_v=4250.0", "calibration key 'cell_ov_v' = 4250.0, expected a number >= 0 and <= 6"),
    ("dut.calibration.cell_uv_v=4.3", "calibration key 'cell_uv_v' = 4.3 is not below 'cell_ov_v' = 4.25"),
    ("dut.calibration.charge_cold_full_c=-5.0",
     "calibration key 'charge_cold_zero_c' = 0.0 is not below 'charge_cold_full_c' = -5.0"),
    ("dut.calibration.short_circuit_a=20.0",
     "calibration key 'discharge_oc_a' = 25.0 is not below 'short_circuit_a' = 20.0"),
    ("dut.calibration.sustained_oc_a=19.0",
     "calibration key 'max_discharge_current_a' = 20.0 is not below 'sustained_oc_a' = 19.0"),
    ("dut.calibration.sustained_oc_debounce_ms=50",
     "calibration key 'oc_debounce_ms' = 100 is not below 'sustained_oc_debounce_ms' = 50"),
])
def test_calibration_values_out_of_range_are_refused_at_preflight(override, expected):
    with pytest.raises(ConfigError) as caught:
        preflight(load_rig(SIM, [override]))
    assert "sim.toml [dut.calibration]: " + expected in str(caught.value)


def test_toml_syntax_error_names_line(tmp_path):
    path = _rig_with(tmp_path, "n_series = 16", "n_series = = 16")
    with pytest.raises(ConfigError, match=r"bad.toml: TOML syntax error: .*line \d+"):
        load_rig(path)


def test_set_overrides_and_validates():
    rig = load_rig(SIM, ["dut.calibration.cell_ov_v=4.3", 'dut.bugs=["ov_off_by_one"]'])
    assert rig.data["dut"]["calibration"]["cell_ov_v"] == 4.3
    assert rig.data["dut"]["bugs"] == ["ov_off_by_one"]
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_rig(SIM, ["dut.calibration.cell_ov_v"])
    for bad in ("=3", "dut..cell_ov_v=4.3"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE with a dotted key before '='"):
            load_rig(SIM, [bad])


def test_unknown_calibration_key_is_refused():
    from hil.bench import Bench
    with pytest.raises(ConfigError, match=r"unknown calibration key\(s\) \['cell_ov_volts'\] "
                                          r"\(did you mean 'cell_ov_v'"):
        Bench(load_rig(SIM, ["dut.calibration.cell_ov_volts=4.3"]))


def test_unknown_bug_is_refused():
    from hil.bench import Bench
    with pytest.raises(ConfigError, match=r"sim.toml \[dut\] bugs: unknown firmware bug\(s\) \['no_such_bug'\]"):
        Bench(load_rig(SIM, ['dut.bugs=["no_such_bug"]']))


@pytest.mark.parametrize("override, expected", [
    ("dut.calibration.cell_ov=4.3", "[dut.calibration]: unknown calibration key(s) ['cell_ov'] (did you mean "),
    ('dut.bugs=["ov_of_by_one"]', "[dut] bugs: unknown firmware bug(s) ['ov_of_by_one'] (did you mean 'ov_off_by_one'"),
])
def test_hil_run_refuses_a_misspelt_firmware_setting_once_before_any_test(override, expected):
    result = _hil("run", "--set", override)
    assert result.returncode == 2, result.stdout[-2000:]
    assert result.stderr.count(expected) == 1, result.stderr
    assert "Traceback" not in result.stderr and "passed" not in result.stdout and "error" not in result.stdout


def test_hil_run_passes_what_follows_a_double_dash_to_pytest(monkeypatch, tmp_path):
    import pytest as pytest_module

    from hil.cli import main
    seen = []
    monkeypatch.setattr(pytest_module, "main", lambda argv: seen.append(argv) or 0)
    assert main(["run", "--report", str(tmp_path), "--", "-k", "overcurrent"]) == 0
    assert main(["run", "--report", str(tmp_path), "-x"]) == 0
    assert main(["run", "--report", str(tmp_path), "-q", "--", "-k", "overcurrent"]) == 0  # pytest's own first
    assert seen[0][-2:] == ["-k", "overcurrent"] and "--" not in seen[0]
    assert seen[1][-1] == "-x"
    assert seen[2][-3:] == ["-q", "-k", "overcurrent"] and "--" not in seen[2]


def test_a_report_states_how_a_real_clock_waits_and_is_scheduled():
    assert load_rig(SIM).clock_description == "virtual"
    real = ['rig.clock="real"']
    assert load_rig(SIM, real).clock_description == "real (wait sleep, normal scheduling)"
    assert (load_rig(SIM, real + ["rig.realtime_priority=50"]).clock_description
            == "real (wait sleep, SCHED_FIFO priority 50)")
    assert load_rig(SIM, real + ['rig.wait="busy"']).clock_description == "real (wait busy, normal scheduling)"


def test_hil_run_refuses_a_report_folder_it_cannot_write(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = _hil("run", "--report", str(a_file / "rep"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"report folder {a_file / 'rep'}: cannot write there (Not a directory" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_hil_run_exits_as_a_shell_expects(tmp_path, signum, code):
    """128 + the signal's number, as a shell reports an interrupted command: pytest's own 2 is also what a
    bad rig gives, and a CI script must tell the two apart."""
    proc = subprocess.Popen([sys.executable, "-m", "hil", "run", "--report", str(tmp_path), "--",
                             "-k", "test_balancing_converges_a_spread_pack"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline_s = time.monotonic() + 120.0
        seen = []
        while time.monotonic() < deadline_s:  # a progress line: the test is running
            line = proc.stdout.readline()
            seen.append(line)
            if "simulated in" in line:
                break
        else:
            pytest.fail(f"no progress line within 120 s; output: {''.join(seen)[-2000:]}")
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == code, proc.stdout.read()[-2000:]
    finally:
        proc.kill()
        proc.wait()
