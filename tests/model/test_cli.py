"""`hil model simulate`: CSV in, CSV out; bad input names the file, line and problem."""
import argparse
import csv

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
