"""SOC estimation against the model's true SOC."""
import pytest

from hil.profiles import PROFILES


def _soc_error_pct(bench) -> float:
    return abs(bench.bms.soc - float(bench.pack.soc.mean())) * 100


@pytest.mark.rig_requires("virtual_clock")  # two minutes of load: run where time is virtual
def test_soc_tracks_true_soc_under_ai_training(bench, spec, measure):
    bench.power_up()
    profile = PROFILES["ai-training"](duration_s=120.0, dt_s=bench.loop.dt_s, seed=bench.rig.seed)
    bench.run_profile(profile)
    worst_pct = 0.0
    for _ in range(12):
        bench.loop.run_for(10.0)
        worst_pct = max(worst_pct, _soc_error_pct(bench))
    soc_drop = spec.value("soc.max_error_pct") / 100
    assert bench.trace.rows[0][7] - bench.pack.soc.mean() > soc_drop, "the profile must move SOC more than the bound"
    measure("soc_error_ai_training", worst_pct, high=spec.value("soc.max_error_pct"), unit="%")


@pytest.mark.slow
@pytest.mark.rig_requires("virtual_clock")  # minutes of rest: run where time is virtual
def test_soc_recovers_after_rest(custom_bench, spec, measure):
    """A current sensor reading 20 % high drifts the SOC; after a rest the OCV correction pulls it back."""
    bench = custom_bench("dut.calibration.soc_current_gain=1.2")
    bench.power_up()
    bench.set_load(15.0)
    bench.loop.run_for(120.0)
    drifted_pct = _soc_error_pct(bench)
    bench.set_load(0.0)
    rest_s = bench.rig.data["dut"].get("calibration", {}).get("soc_rest_s", 180.0)
    bench.loop.run_for(rest_s + 60.0)
    measure("soc_error_before_rest", drifted_pct, low=1.0, unit="%")
    measure("soc_error_after_rest", _soc_error_pct(bench), high=spec.value("soc.max_error_after_rest_pct"), unit="%")
