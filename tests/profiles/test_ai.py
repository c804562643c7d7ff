"""AI-training profiles, checked on their exported CSV."""
import numpy as np
import pytest


def dominant_frequency_hz(values, dt_s):
    spectrum = np.abs(np.fft.rfft(values - values.mean()))
    return np.fft.rfftfreq(values.size, dt_s)[np.argmax(spectrum)]


@pytest.mark.parametrize("iteration_s", [0.4, 2.0, 4.0])
def test_training_spectrum_peaks_in_the_0_2_to_3_hz_band(export, iteration_s):
    trace = export("ai-training", "--duration", "120", "--dt", "0.01", "--set", f"iteration_s={iteration_s}")
    assert trace.column == "power_w"
    peak_hz = dominant_frequency_hz(trace.values, trace.dt_s)
    assert 0.2 <= peak_hz <= 3.0
    assert peak_hz == pytest.approx(1 / iteration_s, rel=0.1)


def test_training_levels_are_compute_and_communication_fractions_of_all_racks(export):
    trace = export("ai-training", "--duration", "20", "--set", "racks=3", "--set", "rack_power_w=1000")
    assert set(np.unique(trace.values)) == {950.0 * 3, 400.0 * 3}


def test_job_start_rises_10_to_90_percent_in_under_10_ms(export):
    trace = export("ai-job-start", "--duration", "3")
    idle_w, full_w = trace.values[0], trace.values.max()
    assert idle_w == pytest.approx(70.0) and full_w == pytest.approx(665.0)
    t10 = trace.times_s[np.argmax(trace.values >= idle_w + 0.1 * (full_w - idle_w))]
    t90 = trace.times_s[np.argmax(trace.values >= idle_w + 0.9 * (full_w - idle_w))]
    assert t10 == pytest.approx(1.0, abs=0.002)
    assert 0 < t90 - t10 < 0.010


def test_smoothed_training_never_exceeds_its_ramp_limits_or_drops_below_its_floor(export):
    up_w_per_s, down_w_per_s, racks = 800.0, 300.0, 2
    trace = export("ai-training-smoothed", "--duration", "40", "--seed", "3",
                   "--set", f"ramp_up_w_per_s={up_w_per_s}", "--set", f"ramp_down_w_per_s={down_w_per_s}",
                   "--set", f"racks={racks}", "--set", "crash_at_s=30")
    rate_w_per_s = np.diff(trace.values) / trace.dt_s
    assert rate_w_per_s.max() <= racks * up_w_per_s * (1 + 1e-6)
    assert rate_w_per_s.min() >= -racks * down_w_per_s * (1 + 1e-6)
    assert rate_w_per_s.max() > 0.9 * racks * up_w_per_s  # the limit is reached, so it is what binds
    assert trace.values.min() >= 0.6 * racks * 700.0 - 1e-6


def test_smoothing_holds_for_the_hysteresis_before_ramping_down(export):
    trace = export("ai-training-smoothed", "--duration", "4", "--set", "jitter=0",
                   "--set", "ramp_down_hysteresis_s=0.3")
    # Compute ends at 1 s; the output holds 0.3 s, then falls.
    t_s = trace.times_s
    assert np.all(trace.values[(t_s >= 0.9) & (t_s < 1.3)] == pytest.approx(665.0))
    assert trace.values[np.searchsorted(t_s, 1.35)] < 665.0


def test_checkpoint_pauses_drop_to_idle_for_their_duration(export):
    trace = export("ai-training", "--duration", "60", "--dt", "0.01", "--set", "checkpoint_interval_s=20",
                   "--set", "checkpoint_s=4")
    idle = np.isclose(trace.values, 70.0)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], idle.astype(int), [0])))).reshape(-1, 2))
    assert runs.ravel() * trace.dt_s == pytest.approx([4.0, 4.0], abs=0.02)


def test_crash_drops_the_load_to_idle_for_good(export):
    trace = export("ai-training", "--duration", "20", "--set", "crash_at_s=12.5")
    after = trace.times_s >= 12.5
    assert np.all(trace.values[after] == pytest.approx(70.0))
    assert trace.values[~after].min() > 70.0
