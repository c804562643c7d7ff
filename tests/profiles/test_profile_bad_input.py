"""Bad profile input is refused naming the profile, parameter, file or argument: NaN and inf parameters,
parameters so large the demand overflows, unit mistakes that would exhaust memory, a plot that is not a
PNG, and trace CSVs that are not UTF-8. A BOM at the start of a trace is accepted."""
import math

import numpy as np
import pytest

from .conftest import run_cli
from hil.errors import ConfigError
from hil.profiles import PROFILES, Profile
from hil.profiles.cli import main

SHORT = ("--duration", "10", "--dt", "0.01")


@pytest.fixture
def trace(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("time_s,current_a\n0,1\n1,2\n")
    return path


@pytest.mark.parametrize("name, key, value", [
    ("constant-current", "current_a", "inf"),
    ("constant-current", "current_a", "-inf"),
    ("constant-power", "power_w", "nan"),
    ("bbu-ride-through", "rack_power_w", "inf"),
    ("drone-fpv", "capacity_ah", "inf"),
    ("drone-fpv", "capacity_ah", "1e400"),  # a float overflows to inf
    ("csv-trace", "scale", "inf"),
    ("ai-training", "crash_at_s", "-inf"),  # inf means "never" here; -inf means nothing
])
def test_a_non_finite_parameter_names_profile_and_parameter(tmp_path, trace, name, key, value):
    output = tmp_path / "out.csv"
    path = ("--set", f"path={trace}") if name == "csv-trace" else ()
    with pytest.raises(ConfigError, match=rf"profile '{name}': parameter '{key}' must be a finite number"):
        run_cli("export", name, *SHORT, *path, "--set", f"{key}={value}", "-o", str(output))
    assert not output.exists()


def test_inf_is_accepted_where_the_default_is_inf(trace):
    assert PROFILES["ai-training"](duration_s=2, crash_at_s="inf").demand.size == 2000
    assert PROFILES["csv-trace"](duration_s=math.inf, dt_s=0.5, path=str(trace)).demand.size == 3
    with pytest.raises(ConfigError, match="'duration_s' must be a finite number \\(default 600.0\\), got inf"):
        PROFILES["rest"](duration_s=math.inf)


@pytest.mark.parametrize("name, params, problem", [
    ("drone-fpv", {"capacity_ah": 1e308}, r"demand is nan W at 0 s \(sample 0\)"),
    ("ai-training", {"compute_level": 1e308}, r"demand is inf W"),
    ("bbu-ride-through", {"rack_power_w": 1e308}, r"a number overflowed"),
    ("csv-trace", {"scale": 1e308}, r"demand is inf A at 1 s"),
])
def test_parameters_too_large_to_compute_with_are_named(trace, name, params, problem):
    if name == "csv-trace":
        params = {**params, "path": str(trace)}
    with pytest.raises(ConfigError, match=rf"profile '{name}': {problem}.*parameters given: .*"
                                          rf"{next(iter(params))}=1e\+308"):
        PROFILES[name](duration_s=30, dt_s=0.01, **params)


def test_a_profile_never_holds_a_non_finite_sample():
    with pytest.raises(ConfigError, match=r"profile 'p': demand is nan A at 0.2 s \(sample 2\)"):
        Profile("p", "current", 0.1, [1.0, 2.0, math.nan])


@pytest.mark.parametrize("name, key, value, problem", [
    ("ai-training", "iteration_s", 1e-9, "iteration_s 1e-09 s is so short"),
    ("drone-fpv", "punch_s", 0.0, "punch_s must be > 0 s"),
    ("drone-fpv", "punch_s", 1e-9, r"the shortest flight segment \(1e-09 s\) is so short"),
])
def test_a_unit_mistake_is_refused_instead_of_exhausting_memory(name, key, value, problem):
    with pytest.raises(ConfigError, match=rf"profile '{name}': {problem}"):
        PROFILES[name](duration_s=30, dt_s=0.01, **{key: value})


@pytest.mark.parametrize("params", [{"outage_at_s": 1000.0}, {"ride_through_s": 0.0}])
def test_a_ride_through_that_never_happens_is_all_standby(params):
    assert not PROFILES["bbu-ride-through"](duration_s=10, dt_s=0.01, **params).demand.any()


def test_a_huge_step_duration_holds_to_the_end():
    profile = PROFILES["hppc"](duration_s=1000, dt_s=0.1, rest_s=1e308)
    assert np.all(np.isfinite(profile.demand)) and profile.demand[-1] == 0.0


@pytest.mark.parametrize("suffix", [".txt", ".pdf", ""])
def test_plot_refuses_an_output_that_is_not_png(tmp_path, capsys, suffix):
    output = tmp_path / f"plot{suffix}"
    assert main(["profile", "plot", "rest", "-o", str(output)]) == 2
    assert capsys.readouterr().err == (f"error: -o {output}: the plot is written as PNG; expected a file name "
                                       "ending in .png\n")
    assert not output.exists()


def test_a_trace_starting_with_a_bom_replays(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftime_s,power_w\n0,1\n1,2\n")
    profile = PROFILES["csv-trace"](dt_s=0.5, path=str(path))
    assert profile.kind == "power" and list(profile.demand) == [1, 1, 2]


@pytest.mark.parametrize("data, line", [
    (bytes(range(256)) * 4, 2),  # byte 0x0A ends line 1
    (b"time_s,current_a\n0,1\n1,\xff\n", 3),
    (b"\xef\xbb\xbftime_s,current_a\n0,1\n\x80\n", 3),
])
def test_a_trace_that_is_not_utf8_names_file_and_line(tmp_path, capsys, data, line):
    path = tmp_path / "binary.csv"
    path.write_bytes(data)
    assert main(["profile", "export", "csv-trace", "--set", f"path={path}", "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: line {line}: byte 0x") and "is not UTF-8 text" in err
    assert len(err.splitlines()) == 1
