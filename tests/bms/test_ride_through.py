"""Transients that stay within limits must not trip the BMS."""
from hil.profiles import ai_training
from hil.protocol import BmsState


def test_ai_training_swings_ride_through(bench, spec, measure):
    bench.power_up()
    profile = ai_training(duration_s=20.0, dt_s=bench.loop.dt_s, seed=bench.rig.seed)
    bench.run_profile(profile)
    bench.loop.run_for(profile.duration_s)
    assert bench.bms.state == BmsState.NORMAL, bench.bms.describe()
    assert bench.bms.contactors_closed
    rows = bench.trace.rows
    peak_a = max(r[2] for r in rows)
    low_a = min(r[2] for r in rows[len(rows) // 10:])
    measure("ai_training_peak_current", peak_a, high=spec.protections["discharge_oc"].low, unit="A")
    # The swing really happened: compute and communication phases both visible in the current.
    measure("ai_training_swing", peak_a - low_a, low=3.0, unit="A")
    measure("ai_training_min_cell_voltage", min(r[3] for r in rows), low=spec.protections["cell_uv"].high, unit="V")
