"""The registry and `hil profile`: listing, determinism, parameter checks, plotting."""
import sys

import numpy as np
import pytest

from .conftest import run_cli
from hil.errors import ConfigError, HilError
from hil.profiles import PROFILES
from hil.profiles.cli import main

REQUIRED = {"ai-training", "ai-job-start", "ai-training-smoothed", "bbu-ride-through", "drone-fpv",
            "drone-industrial", "hppc", "cccv", "constant-power", "rest", "csv-trace"}
RANDOM = ["ai-training", "ai-job-start", "ai-training-smoothed", "drone-fpv", "drone-industrial"]
SHORT = {"duration_s": 60.0, "dt_s": 0.01}


def test_list_prints_one_line_per_profile(capsys):
    assert run_cli("list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(PROFILES)
    assert {line.split()[0] for line in lines} >= REQUIRED
    assert all(len(line.split(maxsplit=1)) == 2 for line in lines)


def test_show_lists_parameters_with_defaults(capsys):
    assert run_cli("show", "bbu-ride-through") == 0
    out = capsys.readouterr().out
    assert "ride_through_s = 240.0" in out and "ORv3" in out


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_is_identical_and_another_seed_differs(export, name):
    options = ("--duration", "60", "--dt", "0.01")
    first = export(name, *options, "--seed", "11")
    again = export(name, *options, "--seed", "11")
    other = export(name, *options, "--seed", "12")
    assert np.array_equal(first.values, again.values)
    assert not np.array_equal(first.values, other.values)


@pytest.mark.parametrize("name", sorted(set(PROFILES) - {"csv-trace"}))
def test_every_profile_builds_and_plays_back_with_at(name):
    profile = PROFILES[name](seed=1, **SHORT)
    assert profile.kind in {"current", "power"}
    assert np.all(np.isfinite(profile.demand))
    k = profile.demand.size // 2
    assert profile.at(k * profile.dt_s) == profile.demand[k]
    assert profile.at(profile.duration_s + 1.0) == 0.0


def test_unknown_profile_lists_close_matches():
    with pytest.raises(ConfigError, match="did you mean 'ai-training'"):
        run_cli("export", "ai-trainig", "-o", "unused.csv")


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown parameter 'rack_powr_w'.*rack_power_w.*valid: .*iteration_s"):
        run_cli("export", "ai-training", "--set", "rack_powr_w=5", "-o", "unused.csv")


@pytest.mark.parametrize("name, key, value", [("ai-training", "racks", "2.5"), ("hppc", "pulse_s", "ten"),
                                               ("bbu-ride-through", "rack_power_w", "nan")])
def test_wrong_type_names_parameter_and_expected_type(name, key, value):
    with pytest.raises(ConfigError, match=f"'{key}' must be a (whole |finite )?number"):
        run_cli("export", name, "--set", f"{key}={value}", "-o", "unused.csv")


def test_harness_keyword_values_are_checked_too():
    with pytest.raises(ConfigError, match="'racks' must be a whole number"):
        PROFILES["ai-training"](duration_s=1, racks=True)
    with pytest.raises(ConfigError, match="'path' must be text"):
        PROFILES["csv-trace"](path=3)
    with pytest.raises(ConfigError, match="duration_s"):
        PROFILES["rest"](duration_s=-1)
    with pytest.raises(ConfigError, match="seed must be >= 0"):
        PROFILES["drone-fpv"](seed=-3)
    assert PROFILES["ai-training"](duration_s="2", racks=2.0).demand.max() == pytest.approx(1330.0)


def test_set_needs_key_equals_value_and_not_the_common_options():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        run_cli("export", "rest", "--set", "duration_s", "-o", "unused.csv")
    with pytest.raises(ConfigError, match="--duration"):
        run_cli("export", "rest", "--set", "duration_s=3", "-o", "unused.csv")


def test_main_reports_errors_without_a_traceback(capsys):
    assert main(["profile", "export", "no-such", "-o", "unused.csv"]) == 2
    assert "error: unknown profile 'no-such'" in capsys.readouterr().err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "job.png"
    assert run_cli("plot", "ai-job-start", "--duration", "3", "-o", str(path)) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_zoom_shows_the_steepest_rise_of_the_load_not_a_larger_fall():
    pytest.importorskip("matplotlib")
    from hil.profiles.plot import steepest_step
    # A grid loss (0 -> 500 W over 2 samples), then the recharge (500 -> -150 W, a larger change).
    demand = np.array([0, 0, 250, 500, 500, 500, -150, -150], dtype=float)
    assert steepest_step(demand, 2) == (1, 500.0)
    # A charge never rises: its largest change either way.
    assert steepest_step(np.array([0, 0, -5, -5, -5.0]), 1) == (1, -5.0)


def test_plot_without_matplotlib_says_how_to_install_it(monkeypatch):
    for module in [name for name in sys.modules if name.split(".")[0] == "matplotlib"] + ["matplotlib"]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "hil.profiles.plot", raising=False)
    with pytest.raises(HilError, match=r"hil-bms\[plot\]"):
        run_cli("plot", "rest", "-o", "unused.png")
