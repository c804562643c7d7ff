"""Current limits derate with the hottest cell: full up to [derating] start_c, falling linearly to 0 at end_c;
and, when the spec states cold_charge_zero_c and cold_charge_full_c, the charge limit with the coldest cell:
0 at and below zero_c (charging a cold cell plates lithium), full from full_c; the same for the discharge limit
with cold_discharge_zero_c and cold_discharge_full_c (a cold cell's resistance sags it toward UV).

One thermistor channel is heated (or cooled), the others stay at the pack's temperature: a BMS that derates
from the mean, or from some sensors only, barely moves. The temperatures move away from the pack's from step
to step, so each limit only falls and no rate limit on its recovery can blur the reading. Then the cell comes
back, and the limits must be full again within max_recovery_s, when the spec states it. Runs when the spec has
a [derating] table.

A limit is only as good as its enforcement: with the charge limit at 0 (a cold cell), a charger that ignores it
must be cut off ([charge_limit]).
"""
import pytest

# Where on the derating line each step sits (0: start_c, full limits; 1: end_c, none), rounded onto the
# thermistor setpoints' 0.5 degC grid; the last stays short of end_c, where the over-temperature protection
# takes over.
LINE_POINTS = (-0.15, 0.5, 0.75)
# The same on the cold charge line (0: cold_charge_full_c, 1: cold_charge_zero_c), and one more below zero_c,
# where charging must stop (still above any under-temperature threshold).
COLD_LINE_POINTS = (*LINE_POINTS, 1.5)
GRID_C = 0.5


def _expected_fraction(temperature_c: float, start_c: float, end_c: float) -> float:
    return min(1.0, max(0.0, (end_c - temperature_c) / (end_c - start_c)))


def _on_the_line(point: float, full_c: float, zero_c: float) -> float:
    """The temperature at `point` of the line from full_c (0) to zero_c (1), on the thermistor grid."""
    return round((full_c + point * (zero_c - full_c)) / GRID_C) * GRID_C


def _steps_along_the_line(bench, channel: int, points, full_c: float, zero_c: float, settle_s: float):
    """`channel` driven to each point of the line from full_c (0) to zero_c (1) in turn, rounded onto the
    thermistor grid; once the BMS has settled, yields the temperature and the fraction of full its limits must
    then be. Nothing may trip on the way."""
    for point in points:
        temperature_c = _on_the_line(point, full_c, zero_c)
        bench.force_temperature(channel, temperature_c)
        bench.loop.run_for(settle_s)
        assert not bench.bms.faults, f"tripped with one cell at {temperature_c} degC: {bench.bms.describe()}"
        yield temperature_c, _expected_fraction(temperature_c, full_c, zero_c)


def _full_limits(bench, mode: str = "discharge") -> dict[str, float]:
    """Both current limits 5 s after power-up in `mode` (the discharge limit ramps up meanwhile), the pack at its
    own temperature."""
    bench.power_up(mode)
    bench.loop.run_for(5.0)
    full_a = {"discharge": bench.bms.discharge_limit_a, "charge": bench.bms.charge_limit_a}
    if None in full_a.values():
        pytest.skip(f"no current limits read from this BMS after 5 s in NORMAL ({full_a}): a DUT map without "
                    "discharge_limit_a and charge_limit_a?")
    # Asked to charge, a BMS may publish no discharge limit: whether it must is [ride_through]
    # discharge_while_charging's to say (tests/bms/test_ride_through.py), not this precondition's.
    needed = full_a if mode == "discharge" else {"charge": full_a["charge"]}
    assert all(needed.values()), f"no current limits at {bench.pack.temperature_c.max():.1f} degC: {full_a}"
    return full_a


@pytest.mark.verifies("derating")
def test_current_limits_derate_with_the_hottest_cell(bench, spec, measure):
    if "derating" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [derating]: this BMS's limits do not follow temperature")
    derating = spec.section("derating")
    start_c, end_c, tolerance = derating["start_c"], derating["end_c"], derating["tolerance_pct"] / 100
    settle_s = spec.value("accuracy.temperature_settle_ms") / 1000
    full_a = _full_limits(bench)
    channel = bench.pack.n_series // 2
    for temperature_c, expected in _steps_along_the_line(bench, channel, LINE_POINTS, start_c, end_c, settle_s):
        for kind, limit_a in (("discharge", bench.bms.discharge_limit_a), ("charge", bench.bms.charge_limit_a)):
            measure(f"derating_{kind}_at_{temperature_c:g}C", limit_a / full_a[kind], low=expected - tolerance,
                    high=expected + tolerance)
    if "max_recovery_s" in derating:
        _limits_recover(bench, channel, full_a, tolerance, start_c, derating["max_recovery_s"], measure)


@pytest.mark.verifies("derating")
def test_charge_limit_falls_to_zero_with_the_coldest_cell(bench, spec, measure):
    _follows_the_cold_line(bench, spec, measure, "charge", COLD_LINE_POINTS)


@pytest.mark.verifies("derating")
def test_discharge_limit_derates_with_the_coldest_cell(bench, spec, measure):
    """Where the line ends the under-temperature protection takes over, so the steps stay short of zero_c."""
    _follows_the_cold_line(bench, spec, measure, "discharge", LINE_POINTS)


def _follows_the_cold_line(bench, spec, measure, kind: str, points):
    """One sensor cooled step by step along the spec's cold line for the `kind` ("charge" or "discharge")
    limit; then, when the spec states max_recovery_s, back to the pack's temperature."""
    derating = spec.data.get("derating", {})
    zero_key, full_key = f"cold_{kind}_zero_c", f"cold_{kind}_full_c"
    if zero_key not in derating:
        pytest.skip(f"{spec.path.name} states no [derating] {zero_key}: this BMS's {kind} limit does not follow a "
                    "cold cell")
    zero_c, full_c = derating[zero_key], derating[full_key]
    tolerance = derating["tolerance_pct"] / 100
    settle_s = spec.value("accuracy.temperature_settle_ms") / 1000
    full_a = _full_limits(bench)
    assert bench.pack.temperature_c.min() > full_c, f"the pack itself is at {bench.pack.temperature_c.min():.1f} degC"
    channel = 0   # the first sensor: a loop that starts at 1 misses it
    for temperature_c, expected in _steps_along_the_line(bench, channel, points, full_c, zero_c, settle_s):
        limit_a = bench.bms.charge_limit_a if kind == "charge" else bench.bms.discharge_limit_a
        measure(f"cold_{kind}_limit_at_{temperature_c:g}C", limit_a / full_a[kind],
                low=expected - tolerance, high=expected + tolerance)
    if "max_recovery_s" in derating:
        _limits_recover(bench, channel, full_a, tolerance, derating["start_c"], derating["max_recovery_s"], measure)


@pytest.mark.verifies("charge_limit")
def test_charger_ignoring_the_charge_limit_is_cut_off(bench, spec, measure):
    """A charger (a rack's rectifier, a drone's charger, a vehicle's DC charger) is told how much it may charge.
    One cell is cooled below cold_charge_zero_c, taking the limit to 0 while the charger charges at the full limit.
    A charger that follows within response_s, to within margin_a, must ride through; one that then goes back to
    the full limit must be cut off (charge_oc, contactors open) within max_reaction_ms, though it charges below
    the charge over-current level."""
    table, derating = spec.data.get("charge_limit"), spec.data.get("derating", {})
    if table is None:
        pytest.skip(f"{spec.path.name} has no [charge_limit]: this BMS does not hold chargers to its charge limit")
    if "cold_charge_zero_c" not in derating:
        pytest.skip(f"{spec.path.name} states no [derating] cold_charge_zero_c: the test takes the charge limit to 0 "
                    "by cooling a cell")
    margin_a, response_s, max_reaction_ms = table["margin_a"], table["response_s"], table["max_reaction_ms"]
    settle_s = spec.value("accuracy.temperature_settle_ms") / 1000
    # Below the charge over-current level, so that only the limit can cut the charger off.
    charging_a = min(_full_limits(bench, "charge")["charge"], spec.protections["charge_oc"].low - 0.5)
    if charging_a <= 2 * margin_a:
        pytest.skip(f"charging at {charging_a:g} A is within twice [charge_limit] margin_a ({margin_a:g} A) of a "
                    "limit of 0: a charger ignoring the limit could not be told from its control error")
    bench.set_load(-charging_a, honour_limits=False)
    cold_c = _on_the_line(COLD_LINE_POINTS[-1], derating["cold_charge_full_c"], derating["cold_charge_zero_c"])
    bench.force_temperature(0, cold_c)
    bench.loop.run_until(
        lambda: bench.bms.charge_limit_a < charging_a - margin_a, 2 * settle_s,
        lambda: f"the charge limit did not fall with a cell at {cold_c:g} degC: {bench.bms.describe()}")
    # The charger takes response_s from the limit it was told falling, then keeps within margin_a of it, for as
    # long as the BMS may take to cut off one that does not.
    bench.loop.run_for(response_s)
    following_a = bench.bms.charge_limit_a + margin_a / 2
    bench.set_load(-following_a, honour_limits=False)
    bench.loop.run_for(max_reaction_ms / 1000)
    assert bench.bms.contactors_closed and not bench.bms.faults, (
        f"a charger that followed the charge limit within {response_s:g} s, then charged {following_a:g} A, was cut "
        f"off: {bench.bms.describe()}")
    resumed_s = bench.loop.t_s
    bench.set_load(-charging_a, honour_limits=False)   # back to what it was told before: the limit ignored
    reaction_s = bench.bms.wait_contactors_open(2 * max_reaction_ms / 1000) - resumed_s
    measure("charge_limit_violation_reaction", reaction_s * 1000, high=max_reaction_ms, unit="ms")
    assert "charge_oc" in bench.bms.faults, f"cut off for the wrong reason: {bench.bms.describe()}"


def _limits_recover(bench, channel, full_a, tolerance, start_c, max_recovery_s, measure):
    """The channel back at the pack's temperature, below start_c: both limits must return to full (within
    the tolerance) in time. A BMS that holds the hottest temperature it has seen keeps the pack derated."""
    assert bench.pack.temperature_c.max() < start_c, f"the pack itself is at {bench.pack.temperature_c.max():.1f} degC"
    bench.force_temperature(channel, None)
    cooled_s = bench.loop.t_s

    def limits_text():
        return (f"discharge {bench.bms.discharge_limit_a} A, charge {bench.bms.charge_limit_a} A against full "
                f"{full_a['discharge']} A and {full_a['charge']} A; {bench.bms.describe()}")

    recovered_s = bench.loop.run_until(
        lambda: (bench.bms.discharge_limit_a >= (1 - tolerance) * full_a["discharge"]
                 and bench.bms.charge_limit_a >= (1 - tolerance) * full_a["charge"]),
        2 * max_recovery_s, lambda: f"limits not back after the cell cooled: {limits_text()}") - cooled_s
    measure("derating_recovery", recovered_s, high=max_recovery_s, unit="s")
