"""HPPC, CC-CV, constant power and rest, checked on their exported CSV."""
import numpy as np
import pytest

from hil.errors import ConfigError
from hil.profiles import PROFILES


def level_runs(trace):
    """(level, seconds) for each run of equal values."""
    edges = np.concatenate(([0], np.flatnonzero(np.diff(trace.values)) + 1, [trace.values.size]))
    return [(trace.values[a], (b - a) * trace.dt_s) for a, b in zip(edges[:-1], edges[1:])]


def test_hppc_pulses_follow_the_freedomcar_sequence(export):
    trace = export("hppc", "--duration", "8040")
    assert trace.column == "current_a"
    runs = level_runs(trace)
    expected = [(10.0, 10), (0.0, 40), (-7.5, 10), (5.0, 360), (0.0, 3600)] * 2
    assert [level for level, _ in runs] == [level for level, _ in expected]
    assert [s for _, s in runs] == pytest.approx([s for _, s in expected])


def test_hppc_charge_steps_come_back_up_after_the_discharge_steps(export):
    """Two discharge steps, then two charge steps of the same 10 % at 1 C without pulses, each with its rest."""
    trace = export("hppc", "--duration", str(4 * 4020 - 2 * 60), "--set", "charge_steps=2")
    runs = level_runs(trace)
    expected = [(10.0, 10), (0.0, 40), (-7.5, 10), (5.0, 360), (0.0, 3600)] * 2 + [(-5.0, 360), (0.0, 3600)] * 2
    assert [level for level, _ in runs] == [level for level, _ in expected]
    assert [s for _, s in runs] == pytest.approx([s for _, s in expected])


@pytest.mark.parametrize("count,error", [(1.5, r"'charge_steps' must be a whole number \(default 0\), got 1.5"),
                                         (-1, "charge_steps must be >= 0")])
def test_hppc_refuses_a_charge_step_count_that_is_no_count(count, error):
    with pytest.raises(ConfigError, match=error):
        PROFILES["hppc"](charge_steps=count)


def test_cccv_tapers_from_cc_to_cutoff_and_returns_the_remaining_charge(export):
    trace = export("cccv", "--duration", "10000")
    charge_ah = -trace.values.sum() * trace.dt_s / 3600
    assert charge_ah == pytest.approx(0.9 * 5.0, rel=0.01)  # SOC 0.1 -> 1.0 of 5 Ah
    cc = trace.times_s < 5040
    assert np.all(trace.values[cc] == -2.5)
    taper = trace.values[~cc & (trace.values < 0)]
    assert np.all(np.diff(taper) > 0) and taper[-1] >= -0.25 - 0.01
    assert trace.values[-1] == 0.0


def test_constant_power_and_rest(export):
    assert np.all(export("constant-power", "--set", "power_w=-120").values == -120.0)
    rest = export("rest", "--duration", "5")
    assert rest.column == "current_a" and not rest.values.any()
