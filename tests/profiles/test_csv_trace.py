"""CSV replay: zero-order-hold resampling, round trips, and every malformed file named by file and line."""
import numpy as np
import pytest

from .conftest import FIXTURES
from hil.errors import ConfigError
from hil.profiles import PROFILES, read_trace

SAMPLE = FIXTURES / "sample_trace.csv"


def test_sample_fixture_replays_with_its_pulses(export):
    trace = export("csv-trace", "--dt", "0.01", "--set", f"path={SAMPLE}")
    assert trace.column == "current_a"
    assert trace.times_s[0] == 0.0  # relative to the first row, not the logger's uptime
    assert np.median(trace.values[(trace.times_s > 6) & (trace.times_s < 14)]) == pytest.approx(10.0, abs=0.05)
    assert np.median(trace.values[(trace.times_s > 36) & (trace.times_s < 44)]) == pytest.approx(-7.5, abs=0.05)


def test_resampling_is_a_zero_order_hold(tmp_path, export):
    path = tmp_path / "steps.csv"
    path.write_text("# hand-made\ntime_s,power_w\n10.0,1\n10.25,2\n10.3,3\n10.7,4\n")
    trace = export("csv-trace", "--dt", "0.1", "--set", f"path={path}", "--set", "scale=10")
    assert trace.column == "power_w"
    assert list(trace.values) == [10, 10, 10, 30, 30, 30, 30, 40]


def test_a_longer_duration_is_zero_after_the_trace(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("time_s,current_a\n0,5\n1,6\n")
    profile = PROFILES["csv-trace"](duration_s=3.0, dt_s=0.5, path=str(path))
    assert list(profile.demand) == [5, 5, 6, 0, 0, 0]


def test_export_then_replay_round_trips(export):
    original = export("drone-fpv", "--duration", "30", "--dt", "0.01", "--seed", "9")
    replayed = export("csv-trace", "--dt", "0.01", "--set", f"path={original.path}")
    assert replayed.column == original.column
    assert replayed.values == pytest.approx(original.values, rel=1e-9)


@pytest.mark.parametrize("body, line, problem", [
    ("time_s,current_a\n0,1\n0.1,nan\n", 3, "finite"),
    ("time_s,current_a\n0,1\n0.2,2\n0.1,3\n", 4, "does not increase"),
    ("time_s,current_a\n0,1\n0,2\n", 3, "does not increase"),
    ("time_s,current_a\n0,1\n0.1,lots\n", 3, "not a number"),
    ("time_s,current_a\n0,1\n0.1\n", 3, "1 fields"),
    ("# note\ntime_s\n0\n", 2, "header"),
    ("time_s,voltage_v\n0,3.7\n", 1, "unknown column 'voltage_v'"),
    ("time_s,current_a,power_w\n0,1,2\n", 1, "header"),
    ("current_a,time_s\n1,0\n", 1, "first column"),
])
def test_malformed_csv_names_file_line_and_problem(tmp_path, body, line, problem):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(ConfigError, match=problem) as caught:
        read_trace(path)
    assert f"{path}: line {line}:" in str(caught.value)


@pytest.mark.parametrize("body, problem", [("", "no header"), ("# only a comment\ntime_s,power_w\n", "no data")])
def test_empty_csv_names_file(tmp_path, body, problem):
    path = tmp_path / "empty.csv"
    path.write_text(body)
    with pytest.raises(ConfigError, match=problem) as caught:
        PROFILES["csv-trace"](path=str(path))
    assert str(path) in str(caught.value)


def test_missing_file_and_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        read_trace(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="set path="):
        PROFILES["csv-trace"]()
