"""Batch mode gives the step API's answer, sample for sample."""
import numpy as np
import pytest

from hil.errors import ConfigError
from hil.model.batch import run, simulate
from hil.model.pack import Pack


def _stepped(pack, current_a, dt_s):
    """Per-step voltage and SOC, and the temperature after each thermal update (with the start)."""
    voltage, soc, temperature = [], [], [pack.temperature_c.copy()]
    for k, amps in enumerate(current_a):
        pack.step(amps, dt_s)
        voltage.append(pack.cell_voltage_v.copy())
        soc.append(pack.soc.copy())
        if (k + 1) % round(pack.thermal_dt_s / dt_s) == 0:
            temperature.append(pack.temperature_c.copy())
    return np.array(voltage), np.array(soc), np.array(temperature)


def _profile(n, seed=0):
    # Held levels with charge and discharge, like a logged drive cycle, and a ragged length.
    levels = np.random.default_rng(seed).normal(2.0, 15.0, n // 20 + 1)
    return np.repeat(levels, 20)[:n]


@pytest.mark.parametrize("cell_name", ["m50", "lfp"])
@pytest.mark.parametrize("dt_s, thermal_dt_s", [(0.01, 1.0), (0.5, 100.0)])
def test_batch_matches_the_step_api(request, cell_name, dt_s, thermal_dt_s):
    cell = request.getfixturevalue(cell_name)
    options = dict(capacity_spread=0.02, resistance_spread=0.05, soc_spread=0.02, seed=4,
                   thermal_dt_s=thermal_dt_s)
    current = _profile(3013)
    voltage, soc, temperature = _stepped(Pack(cell, 3, 0.6, **options), current, dt_s)
    result = simulate(cell, current, dt_s, 0.6, n_series=3, **options)
    np.testing.assert_allclose(result["cell_voltage_v"], voltage, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["soc"], soc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["temperature_c"], temperature, rtol=0, atol=1e-9)
    assert result["temperature_time_s"].size == temperature.shape[0]
    assert temperature.shape[0] > 1 and np.ptp(temperature) > 0
    np.testing.assert_allclose(result["time_s"], dt_s * np.arange(1, current.size + 1))
    np.testing.assert_allclose(result["pack_voltage_v"], voltage.sum(axis=1))


def test_batch_continues_a_pack_and_covers_parallel_blocks(m50):
    current = _profile(700)
    stepped = Pack(m50, 2, 0.5, n_parallel=2, resistance_spread=0.05, seed=1)
    batched = Pack(m50, 2, 0.5, n_parallel=2, resistance_spread=0.05, seed=1)
    voltage, _, _ = _stepped(stepped, current, 0.01)
    first = run(batched, current[:300], 0.01)
    second = run(batched, current[300:], 0.01)
    np.testing.assert_allclose(np.vstack([first["cell_voltage_v"], second["cell_voltage_v"]]), voltage,
                               rtol=0, atol=1e-12)
    assert second["time_s"][0] == pytest.approx(3.01)
    np.testing.assert_array_equal(batched.cell_soc, stepped.cell_soc)


def test_batch_refuses_bad_profiles(m50):
    with pytest.raises(ConfigError, match="sample 2"):
        simulate(m50, [1.0, 2.0, np.nan], 0.1)
    with pytest.raises(ConfigError, match="1-D"):
        simulate(m50, [[1.0, 2.0]], 0.1)
    with pytest.raises(ConfigError, match="dt_s"):
        simulate(m50, [1.0], 0.0)
