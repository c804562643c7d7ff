"""`hil model simulate`: CSV in, CSV out; bad input names the file, line and problem."""
import argparse
import csv
from pathlib import Path

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.model.cli import register

M50 = "fixtures/cells/lg_m50.toml"


def _run(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["model", "simulate", *argv])
    return args.func(args)


def test_simulate_writes_the_voltage_and_soc(tmp_path, request):
    root = request.config.rootpath
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n10,5\n11,5\n12,0\n13,-5\n")
    out = tmp_path / "out.csv"
    assert _run("--cell", str(root / M50), "--current", str(profile), "--soc0", "0.9", "-o", str(out)) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["time_s", "current_a", "voltage_v", "soc"]
    assert [float(r["time_s"]) for r in rows] == [11, 12, 13, 14]
    soc = np.array([float(r["soc"]) for r in rows])
    np.testing.assert_allclose(soc, 0.9 - np.cumsum([5, 5, 0, -5]) / 3600 / 5.0, atol=1e-9)
    voltage = [float(r["voltage_v"]) for r in rows]
    assert voltage[1] < voltage[2] < voltage[3]


def test_simulate_resamples_with_dt(tmp_path, request):
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n0,5\n0.5,2\n2,0\n")
    out = tmp_path / "out.csv"
    _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "--dt", "0.25", "-o", str(out))
    current = [float(r["current_a"]) for r in csv.DictReader(out.open())]
    assert current == [5, 5, 2, 2, 2, 2, 2, 2, 0]


@pytest.mark.parametrize("text, problem", [
    ("time_s,volts\n0,1\n", "unknown column 'volts'"),
    ("time_s,current_a\n0,1\n1,nan\n", "line 3: current_a is nan"),
    ("time_s,current_a\n0,1\n1,2\n1,3\n", "line 4: time_s 1 does not increase"),
    ("time_s,current_a\n0,1\n1,2\n3,3\n", "pass --dt"),
    ("time_s,power_w\n0,1\n1,2\n", "needs time_s,current_a (one cell's current). Export a current profile"),
])
def test_bad_profiles_name_file_line_and_problem(tmp_path, request, text, problem):
    profile = tmp_path / "bad.csv"
    profile.write_text(text)
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "-o", str(tmp_path / "o.csv"))
    assert str(profile) in str(error.value)
    assert problem in str(error.value)


@pytest.fixture
def one_amp(tmp_path):
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n0,1\n1,1\n")
    return profile


@pytest.mark.parametrize("argv, message", [
    (["--dt", "0"], "--dt 0: expected a step in 1e-06..3600 s"),
    (["--dt", "nan"], "--dt nan: expected a step in 1e-06..3600 s"),
    (["--dt", "inf"], "--dt inf: expected a step in 1e-06..3600 s"),
    (["--dt", "1e-320"], "--dt 9.99989e-321: expected a step in 1e-06..3600 s"),
    (["--soc0", "1.5"], "--soc0 1.5: expected an initial SOC in 0..1"),
    (["--soc0", "nan"], "--soc0 nan: expected an initial SOC in 0..1"),
    (["--ambient", "nan"], "--ambient nan: expected degC in -60..100, the range a rig's pack.ambient_c allows"),
    (["--ambient", "1e6"], "--ambient 1e+06: expected degC in -60..100, the range a rig's pack.ambient_c allows"),
])
def test_bad_arguments_fail_naming_the_argument_and_the_range(tmp_path, request, one_amp, argv, message):
    out = tmp_path / "o.csv"
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(one_amp), "-o", str(out), *argv)
    assert str(error.value) == message
    assert not out.exists()


@pytest.mark.parametrize("output, message", [
    ("missing/o.csv", "-o {tmp}/missing/o.csv: folder {tmp}/missing does not exist"),
    (".", "-o {tmp}: is a folder; expected the path of the CSV file to write"),
])
def test_an_output_that_cannot_be_written_fails_before_the_run(tmp_path, request, one_amp, output, message):
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(one_amp),
             "-o", str(tmp_path / output if output != "." else tmp_path))
    assert str(error.value) == message.format(tmp=tmp_path)


def test_a_profile_that_empties_the_cell_stops_where_the_soc_leaves_0_to_1(tmp_path, request):
    """3 % of 5 Ah at 30 A lasts 18 s: the rows up to 18 s are written, the 19 s row is refused."""
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n" + "".join(f"{t},30\n" for t in range(30)))
    out = tmp_path / "o.csv"
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "--soc0", "0.03",
             "-o", str(out))
    assert str(error.value) == (
        f"{profile}: at time_s 19 (current 30 A) the SOC reaches -0.001667, outside 0..1: the profile draws more "
        f"charge than the cell holds (LG M50 21700, 5 Ah, --soc0 0.03); stopped there, the 18 rows before it are "
        f"in {out}")
    rows = list(csv.DictReader(out.open()))
    assert [float(r["time_s"]) for r in rows] == list(range(1, 19))
    assert float(rows[-1]["soc"]) == pytest.approx(0.0, abs=1e-9)


def test_a_profile_that_charges_past_full_stops_there(tmp_path, request):
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n" + "".join(f"{t},-10\n" for t in range(12)))
    with pytest.raises(ConfigError, match=r"at time_s 10 \(current -10 A\) the SOC reaches 1\.001, outside 0\.\.1: "
                                          "the profile charges the cell past full"):
        _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "--soc0", "0.995",
             "-o", str(tmp_path / "o.csv"))


def test_a_current_no_cell_survives_stops_at_the_unphysical_voltage(tmp_path, request):
    """1e6 A used to give "final SOC -110.6" and -88977 V with exit 0."""
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n0,1000\n0.001,1000\n")
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "-o", str(tmp_path / "o.csv"))
    assert str(error.value).startswith(f"{profile}: at time_s 0.001 (current 1000 A) the terminal voltage reaches -")
    assert "V, outside 0..5.5 V: no cell has it, the current is far beyond what the model describes" \
        in str(error.value)


def test_a_run_stopped_by_the_cli_exits_2_with_one_line(tmp_path, request, capsys):
    from hil.cli import main
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n0,1000000\n1,1000000\n")
    code = main(["model", "simulate", "--cell", str(request.config.rootpath / M50), "--current", str(profile),
                 "-o", str(tmp_path / "o.csv")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SOC reaches" in err and "Traceback" not in err


def test_a_thermal_network_that_would_hang_fails_in_the_cli(tmp_path, request, one_amp):
    cell = tmp_path / "cell.toml"
    cell.write_text((request.config.rootpath / M50).read_text()
                    .replace("heat_capacity_j_per_k = 69.0", "heat_capacity_j_per_k = 1e-9"))
    with pytest.raises(ConfigError, match=f"^{cell}: key 'thermal.heat_capacity_j_per_k' = 1e-09, outside "):
        _run("--cell", str(cell), "--current", str(one_amp), "-o", str(tmp_path / "o.csv"))


def test_a_trace_step_outside_the_range_asks_for_dt(tmp_path, request):
    profile = tmp_path / "profile.csv"
    profile.write_text("time_s,current_a\n0,1\n1e9,1\n")
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "-o", str(tmp_path / "o.csv"))
    assert str(error.value) == f"{profile}: time_s step 1e+09 s is outside 1e-06..3600 s; pass --dt to resample"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_failed_write_names_the_output(request, one_amp):
    with pytest.raises(ConfigError, match="^-o /dev/full: cannot write: No space left on device$"):
        _run("--cell", str(request.config.rootpath / M50), "--current", str(one_amp), "-o", "/dev/full")


def test_a_binary_profile_fails_naming_the_file(tmp_path, request):
    """The reading is hil.profiles.csv_trace's; this checks the command passes its error on as one line."""
    profile = tmp_path / "profile.csv"
    profile.write_bytes(b"\xff\xfe\x00time_s,current_a\n0,1\n")
    with pytest.raises(ConfigError) as error:
        _run("--cell", str(request.config.rootpath / M50), "--current", str(profile), "-o", str(tmp_path / "o.csv"))
    assert str(error.value).startswith(f"{profile}: ")
    assert "UTF-8" in str(error.value)
