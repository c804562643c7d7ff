"""Batch mode gives the step API's answer, sample for sample."""
import dataclasses

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


def _assert_matches_stepping(cell, current, dt_s, soc0, n_series, **options):
    voltage, soc, temperature = _stepped(Pack(cell, n_series, soc0, **options), current, dt_s)
    result = simulate(cell, current, dt_s, soc0, n_series=n_series, **options)
    np.testing.assert_allclose(result["cell_voltage_v"], voltage, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["soc"], soc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result["temperature_c"], temperature, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["pack_voltage_v"], voltage.sum(axis=1), rtol=0, atol=1e-9)
    return result


def test_batch_crosses_an_ocv_breakpoint_inside_a_thermal_interval(m50):
    # 0.6 is an OCV table breakpoint of the M50; starting just above it at 5 A, every cell crosses it
    # half-way through an interval, where the per-interval affine OCV no longer holds.
    thermal_steps, breakpoint_soc, soc0 = 100, 0.6, 0.6004
    current = np.full(2000, 5.0)
    result = _assert_matches_stepping(m50, current, 0.01, soc0, 4, capacity_spread=0.02, seed=2,
                                      thermal_dt_s=1.0)
    interval_ends = result["soc"][thermal_steps - 1::thermal_steps]
    interval_starts = np.vstack([np.full((1, 4), soc0), interval_ends[:-1]])
    crossed = (interval_starts > breakpoint_soc) & (interval_ends < breakpoint_soc)
    assert crossed.any(axis=0).all()


@pytest.mark.parametrize("case", ["large pack", "no block length divides the interval", "fast RC branches"])
def test_batch_matches_the_step_api_on_its_other_paths(m50, case):
    current = _profile(1517, seed=3)
    options = {"capacity_spread": 0.02, "resistance_spread": 0.05, "soc_spread": 0.02, "seed": 5}
    if case == "large pack":
        # 40S: the RC voltages at each block start are added by broadcasting, not inside the matrix product.
        _assert_matches_stepping(m50, current, 0.01, 0.6, 40, thermal_dt_s=1.0, **options)
    elif case == "no block length divides the interval":
        # 53 steps per thermal interval, a prime: every interval ends with a short block.
        _assert_matches_stepping(m50, current, 0.01, 0.6, 3, thermal_dt_s=0.53, **options)
    else:
        # RC time constants of a few ms at 0.5 s steps: a block decays past float range, so the block scan
        # runs in pieces.
        fast = dataclasses.replace(m50, rc_c_f=(0.5, 0.2))
        _assert_matches_stepping(fast, current, 0.5, 0.6, 3, thermal_dt_s=100.0, **options)


def test_batch_runs_continue_mid_interval(m50):
    options = {"resistance_spread": 0.05, "seed": 1}
    current = _profile(1000, seed=6)
    voltage, soc, _ = _stepped(Pack(m50, 3, 0.5, **options), current, 0.01)
    batched = Pack(m50, 3, 0.5, **options)
    parts = [run(batched, piece, 0.01) for piece in np.split(current, [137, 180, 655])]
    np.testing.assert_allclose(np.vstack([part["cell_voltage_v"] for part in parts]), voltage, rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.vstack([part["soc"] for part in parts]), soc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(batched.cell_voltage_v, voltage[-1], rtol=0, atol=1e-9)


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


def test_steps_after_a_batch_run_look_up_the_segments_the_run_left(m50):
    """A batch run moves SOC without the step's lookup: the steps after it must not trust segments found
    before it (the lookup skips its search only while it knows how far SOC moved)."""
    pack = Pack(m50, 3, 0.51, resistance_spread=0.05, seed=1, thermal_dt_s=100.0)
    pack.step(1.0, 0.01)  # segments found at SOC 0.51, well inside the 0.5-0.525 segment
    run(pack, np.full(1234, -40.0), 0.01)  # SOC up by 2.7 %, past a breakpoint, inside one thermal interval
    table = pack._ocv_table
    for _ in range(50):
        pack.step(1.0, 0.01)
        expected = np.clip(np.trunc(pack._x), 0, table.points).astype(np.intp)
        np.testing.assert_array_equal(pack._lookup.index, expected)


def test_batch_refuses_bad_profiles(m50):
    with pytest.raises(ConfigError, match="sample 2"):
        simulate(m50, [1.0, 2.0, np.nan], 0.1)
    with pytest.raises(ConfigError, match="1-D"):
        simulate(m50, [[1.0, 2.0]], 0.1)
    with pytest.raises(ConfigError, match="dt_s"):
        simulate(m50, [1.0], 0.0)
