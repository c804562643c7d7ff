"""Where, inside its band, each protection trips and each warning is raised: measured by a staircase.

The band tests (test_protections.py, test_warnings.py) hold the stimulus just outside a band and step past it:
pass or fail at its edges. A threshold that creeps towards an edge from one build to the next passes them both.
Its trip point, measured here against the band (`<name>_trip_point`, `<name>_warning_point`), is what the report
shows and `hil compare` follows from build to build (a MARGIN line when it moved a tenth of the band closer).

The staircase runs from one step on the band's safe side to one step past it, in tenths of the band
(TRIP_STEPS), each level held for the spec's max_reaction_ms: a BMS that trips on a level trips within its
step, and the trip point is the first level it tripped on. Its resolution is one step, or the emulator's grid
where that is coarser (0.5 degC for the reference emulator's thermistors). The short-circuit cut has no staircase:
held at its level for steps of its 100 ms budget, the current would trip the over-current protection first.
"""
import math

import pytest

from hil.spec import UNDER_LIMITS, WARNINGS

from .stimuli import stimulus, stimulus_params

TRIP_STEPS = 10   # the band's width in steps
STAIRCASED = ("cell_ov", "cell_uv", "discharge_oc", "charge_oc", "cell_ot", "cell_ut", "insulation")


def _staircase(band, under: bool) -> list[float]:
    """The levels, from one step on the safe side of `band` to one past it (downwards for an under-limit), rounded
    to a millionth of the band so that a report shows 4.252 V, not 4.252000000000001."""
    step = 2 * band.tolerance / TRIP_STEPS
    first, sign = (band.high + step, -1) if under else (band.low - step, 1)
    digits = max(0, 6 - math.floor(math.log10(2 * band.tolerance)))
    return [round(first + sign * k * step, digits) for k in range(TRIP_STEPS + 3)]


def _climb(bench, name: str, band, raised, what: str) -> float:
    """Step `name`'s stimulus along the staircase until `raised()`; the level it was raised on."""
    if band.tolerance == 0:
        pytest.skip(f"{name}'s band has a tolerance of 0: no width to climb (its band test checks the point)")
    apply, release = stimulus(bench, name)
    try:
        for level in _staircase(band, name in UNDER_LIMITS):
            apply(level)
            if bench.loop.first_time(raised, band.max_reaction_ms / 1000) is not None:
                return level
    finally:
        release()   # the bench's own stimulus (a resistor to chassis, above all) never outlives the test
    pytest.fail(f"no {name} {what} by {level:g} {band.unit}, a step past its band [{band.low:g}, {band.high:g}], "
                f"each level held {band.max_reaction_ms:g} ms: {bench.bms.describe()}", pytrace=False)


@pytest.mark.verifies("protections.{name}")
@pytest.mark.parametrize("name", stimulus_params(STAIRCASED))
def test_protection_trips_within_its_band(bench, spec, measure, name):
    protection = spec.protections.get(name)
    if protection is None:
        pytest.skip(f"{spec.path.name} states no [protections.{name}]")
    # Charging for a cold cell: plating is what the under-temperature protection is for (as test_protections).
    bench.power_up("charge" if name in ("charge_oc", "cell_ut") else "discharge")
    level = _climb(bench, name, protection, lambda: name in bench.bms.faults, "trip")
    measure(f"{name}_trip_point", level, low=protection.low, high=protection.high, unit=protection.unit)


@pytest.mark.verifies("warnings.{name}")
@pytest.mark.parametrize("name", stimulus_params(WARNINGS))
def test_warning_is_raised_within_its_band(bench, spec, measure, name):
    warning = spec.warnings.get(name)
    if warning is None:
        pytest.skip(f"{spec.path.name} states no [warnings.{name}]")
    if name not in bench.bms.warning_names:
        pytest.skip(f"this BMS's proxy reads no {name} warning (a DUT map without it in [warnings])")
    bench.power_up("charge" if name == "charge_oc" else "discharge")
    level = _climb(bench, name, warning, lambda: name in bench.bms.warnings, "warning")
    assert not bench.bms.faults, f"the {name} warning's staircase tripped: {bench.bms.describe()}"
    measure(f"{name}_warning_point", level, low=warning.low, high=warning.high, unit=warning.unit)
