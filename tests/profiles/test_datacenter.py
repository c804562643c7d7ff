"""BBU ride-through, checked on its exported CSV."""
import numpy as np
import pytest


def test_ride_through_holds_for_its_duration_and_reaches_its_peak(export):
    trace = export("bbu-ride-through", "--duration", "40", "--set", "ride_through_s=30",
                   "--set", "outage_at_s=2", "--set", "rack_power_w=600")
    carrying = trace.times_s[trace.values > 0]
    assert carrying[0] == pytest.approx(2.0 + 0.002)  # the bus holds 2 ms before the BBU starts
    assert carrying[-1] - carrying[0] + trace.dt_s == pytest.approx(30.0)
    assert not np.any(trace.values[(trace.times_s > carrying[0]) & (trace.times_s < carrying[-1])] <= 0)
    assert trace.values.max() == pytest.approx(1.6 * 600)
    steady = trace.values[(trace.times_s > carrying[0] + 0.01) & (trace.times_s <= carrying[-1])]
    assert set(np.unique(steady)) == {600.0, 960.0}


def test_bbu_starts_within_4_ms_of_grid_loss(export):
    trace = export("bbu-ride-through", "--duration", "3", "--set", "outage_at_s=1")
    full_at = trace.times_s[np.argmax(trace.values >= 500.0)]
    assert 1.002 < full_at <= 1.004 + 1e-9
    assert np.all(trace.values[trace.times_s < 1.002 - 1e-9] == 0.0)  # the bus holds for 2 ms


def test_recharge_returns_the_energy_it_gave(export):
    trace = export("bbu-ride-through", "--duration", "60", "--dt", "0.01", "--set", "ride_through_s=10",
                   "--set", "recharge_power_w=250")
    given_j = trace.values[trace.values > 0].sum() * trace.dt_s
    taken_j = -trace.values[trace.values < 0].sum() * trace.dt_s
    assert set(np.unique(trace.values[trace.values < 0])) == {-250.0}
    assert taken_j == pytest.approx(given_j, rel=1e-3)
    assert trace.values[-1] == 0.0  # recharged, standing by


def test_pack_scale_defaults_stay_within_3_c_of_the_bench_pack(export):
    trace = export("bbu-ride-through", "--duration", "10")
    assert trace.values.max() / (5.0 * 58.08) < 3.0


def test_scales_to_an_orv3_shelf(export):
    trace = export("bbu-ride-through", "--duration", "10", "--set", "rack_power_w=15000")
    assert trace.values.max() == pytest.approx(24_000.0)
