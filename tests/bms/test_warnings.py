"""The warning tier: what the BMS reports before it trips, so that a VCU or a charger can back off first.

For each `[warnings.<name>]` the spec states: the stimulus held just on the safe side of the warning's band
raises nothing; a step just past the band must raise the warning within max_reaction_ms, and nothing more (the
stimulus stays short of the protection's band: a warning opens no contactor); back at normal, the warning must
clear within max_reaction_ms, as a warning is not latched. A BMS whose warning comes with its trip gives the
host no notice; one whose warnings latch leaves the host derating long after a passing peak.
"""
import pytest

from hil.spec import UNDER_LIMITS, WARNINGS

from .stimuli import stimulus, stimulus_params

HOLD_FACTOR = 2.0   # how many reaction budgets the safe side is held without a warning
# How far outside the warning's band each step goes: a few AFE noise amplitudes for a cell voltage (as the
# protection tests step), half an ampere, two steps of the thermistors' 0.5 degC grid, and 2 % of the usual
# insulation warning level (500 ohm/V).
STEP = {"V": 0.003, "A": 0.5, "degC": 1.0, "ohm/V": 10.0}


@pytest.mark.verifies("warnings.{name}")
@pytest.mark.parametrize("name", stimulus_params(WARNINGS))
def test_warning_comes_before_the_trip_and_clears(bench, spec, measure, name):
    warning = spec.warnings.get(name)
    if warning is None:
        pytest.skip(f"{spec.path.name} states no [warnings.{name}]")
    if name not in bench.bms.warning_names:
        pytest.skip(f"this BMS's proxy reads no {name} warning (a DUT map without it in [warnings])")
    apply, release = stimulus(bench, name)
    step, budget_s = STEP[warning.unit], warning.max_reaction_ms / 1000
    # Charging at the warning level is likely above the BMS's charge limit: the test must be over before a
    # charger that ignores the limit would be cut off ([charge_limit] response_s).
    above_limit_s = (2 * HOLD_FACTOR + 10) * budget_s
    response_s = spec.data.get("charge_limit", {}).get("response_s")
    if name == "charge_oc" and response_s is not None and above_limit_s >= response_s:
        pytest.skip(f"charging at the charge_oc warning's level for up to {above_limit_s:g} s would outlast "
                    f"[charge_limit] response_s = {response_s:g} s: a cut-off could not be told from a trip")
    safe, past = (warning.high + step, warning.low - step) if name in UNDER_LIMITS else (
        warning.low - step, warning.high + step)
    bench.power_up("charge" if name == "charge_oc" else "discharge")
    try:
        apply(safe)
        bench.loop.run_for(HOLD_FACTOR * budget_s)
        assert name not in bench.bms.warnings and not bench.bms.faults, (
            f"warned at {safe:g} {warning.unit}, outside the band [{warning.low:g}, {warning.high:g}]: "
            f"{bench.bms.describe()}")
        stepped_s = bench.loop.t_s
        apply(past)
        raised_s = bench.loop.run_until(
            lambda: name in bench.bms.warnings, 5 * budget_s,
            lambda: f"no {name} warning at {past:g} {warning.unit}: {bench.bms.describe()}")
        measure(f"{name}_warning_reaction", (raised_s - stepped_s) * 1000, high=warning.max_reaction_ms, unit="ms")
        bench.loop.run_for(HOLD_FACTOR * budget_s)
        assert bench.bms.contactors_closed and not bench.bms.faults, (
            f"a {name} warning at {past:g} {warning.unit} tripped: {bench.bms.describe()}")
        released_s = bench.loop.t_s
        release()
        cleared_s = bench.loop.run_until(
            lambda: name not in bench.bms.warnings, 5 * budget_s,
            lambda: f"the {name} warning stayed after the stimulus went back to normal: {bench.bms.describe()}")
        measure(f"{name}_warning_clear", (cleared_s - released_s) * 1000, high=warning.max_reaction_ms, unit="ms")
    finally:
        release()   # the bench's own stimulus (a resistor to chassis, above all) never outlives the test
