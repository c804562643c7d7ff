"""Composition operations through the public API, with limit_ramp checked against a per-sample oracle."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.errors import ConfigError
from hil.profiles import (BENCH_PACK, PROFILES, PackRating, Profile, add_noise, limit_ramp, repeat, scale,
                          scale_to_pack, scale_to_peak, sequence)


def current(*values, dt_s=0.5):
    return Profile("p", "current", dt_s, np.array(values, dtype=float))


def test_sequence_and_repeat_concatenate_on_the_same_grid():
    joined = sequence(current(1, 2), current(3), name="joined")
    assert joined.name == "joined" and list(joined.demand) == [1, 2, 3]
    assert list(repeat(current(1, 2), 3).demand) == [1, 2] * 3
    assert repeat(current(1, 2), 3).duration_s == pytest.approx(3.0)


def test_sequence_refuses_mixed_kinds_and_grids():
    with pytest.raises(ConfigError, match="power"):
        sequence(current(1), Profile("w", "power", 0.5, np.ones(2)))
    with pytest.raises(ConfigError, match="dt_s"):
        sequence(current(1), current(1, dt_s=0.1))
    with pytest.raises(ConfigError, match="count"):
        repeat(current(1), 0)


def test_scale_to_peak_sets_a_rack_power():
    ai = PROFILES["ai-training"](duration_s=10)
    rack = scale_to_peak(ai, 120_000.0)
    assert rack.demand.max() == pytest.approx(120_000.0)
    assert rack.demand / rack.demand.max() == pytest.approx(ai.demand / ai.demand.max())
    assert list(scale(current(1, -2), 2.5).demand) == [2.5, -5.0]
    with pytest.raises(ConfigError, match="never discharges"):
        scale_to_peak(current(0, -1), 10.0)


def test_scale_to_pack_keeps_the_c_rate():
    fpv_pack = PackRating(capacity_ah=1.5, nominal_v=14.8)
    power = Profile("w", "power", 1.0, np.array([fpv_pack.c_rate_to_w(100.0)]))
    moved = scale_to_pack(power, fpv_pack, BENCH_PACK)
    assert moved.demand[0] / BENCH_PACK.energy_wh == pytest.approx(100.0)
    amps = scale_to_pack(current(15.0), fpv_pack, BENCH_PACK)
    assert amps.demand[0] == pytest.approx(50.0)  # 10 C of 1.5 Ah -> 10 C of 5 Ah


def test_add_noise_is_seeded_and_relative_noise_keeps_rests_quiet():
    base = current(*([0.0] * 500 + [10.0] * 500))
    noisy = add_noise(base, 0.1, seed=4, relative=True)
    assert np.array_equal(noisy.demand, add_noise(base, 0.1, seed=4, relative=True).demand)
    assert not np.array_equal(noisy.demand, add_noise(base, 0.1, seed=5, relative=True).demand)
    assert not noisy.demand[:500].any()
    assert np.std(noisy.demand[500:]) == pytest.approx(1.0, rel=0.15)
    assert np.std(add_noise(base, 0.3, seed=1).demand[:500]) == pytest.approx(0.3, rel=0.15)


def ramp_oracle(demand, up_step, down_step, hold_n):
    """The definition, one sample at a time: hold while below for hold_n samples, then ramp."""
    out, level, below = [], demand[0], 0
    for target in demand:
        if target > level:
            below, level = 0, min(target, level + up_step)
        elif target < level:
            below += 1
            if below > hold_n:
                level = max(target, level - down_step)
        if level == target:
            below = 0
        out.append(level)
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(levels=st.lists(st.integers(-20, 20), min_size=1, max_size=12),
       lengths=st.lists(st.integers(1, 30), min_size=12, max_size=12),
       up=st.sampled_from([0.5, 3.0, 7.0, math.inf]), down=st.sampled_from([0.5, 2.0, math.inf]),
       hold_n=st.integers(0, 6))
def test_limit_ramp_matches_the_per_sample_definition(levels, lengths, up, down, hold_n):
    demand = np.repeat(np.array(levels, dtype=float), lengths[:len(levels)])
    dt_s = 0.1
    limited = limit_ramp(current(*demand, dt_s=dt_s), up / dt_s, down / dt_s, down_hold_s=hold_n * dt_s)
    expected = ramp_oracle(demand, up, down, hold_n)
    assert limited.demand == pytest.approx(expected, abs=1e-9)
    steps = np.diff(limited.demand)
    assert steps.max(initial=0) <= up + 1e-9 and steps.min(initial=0) >= -down - 1e-9


def test_limit_ramp_rejects_bad_rates():
    with pytest.raises(ConfigError, match="up_per_s"):
        limit_ramp(current(1, 2), 0.0, 1.0)
