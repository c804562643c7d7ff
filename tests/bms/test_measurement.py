"""What the BMS reports of its measurements matches what the bench applies, within the spec's [accuracy].

Every decision a BMS takes starts from its front end: a cell it reads 10 mV low trips 10 mV late, a current
read 3 % high eats the SOC. Each cell-emulator channel gets a voltage of its own (a staircase up the usable
window, then down it: `hil/channels.py`), so an error of gain, of offset or of channel order shows, and every
channel is checked near both ends of the window. Thermistors get the same; the pack current is checked at rest,
in discharge and in charge.
"""
import math

import pytest

from hil.channels import step_cells, step_temperatures
from hil.protocol import BmsState

# Every test here measures a reported value against its [accuracy] limit.
pytestmark = pytest.mark.verifies("accuracy")


def _skip_unless_reported(values, what: str) -> None:
    if values is None:
        pytest.skip(f"this BMS's proxy reads no {what} (a DUT map without them: see hil/devices/dut_map.py)")


def _measure_worst(measure, name: str, worst: tuple[float, str], high: float, unit: str, scale: float = 1.0):
    """`measure` the worst error, and on failure say which channel it was."""
    value, detail = worst
    try:
        measure(name, value * scale, high=high, unit=unit)
        return
    except pytest.fail.Exception as failure:
        message = f"{failure.msg}: {detail}"
    pytest.fail(message, pytrace=False)   # outside the handler: the report shows one failure, not two


def _standby(bench) -> None:
    """Outputs on and the BMS measuring, contactors open: nothing flows while the cells are stepped."""
    bench.cell_emulator.enable(True)
    bench.bms.wait_state(BmsState.STANDBY, 3.0)


def test_cell_voltages_are_reported_within_accuracy(bench, spec, measure):
    accuracy = spec.section("accuracy")
    _skip_unless_reported(bench.bms.cell_voltages_v(bench.cell_emulator.n_channels), "cell voltages")
    _standby(bench)
    stepped = step_cells(bench, accuracy["cell_voltage_mv"] / 1000, accuracy["settle_ms"] / 1000)
    _measure_worst(measure, "cell_voltage_error_max", stepped.worst, accuracy["cell_voltage_mv"], "mV", scale=1000)
    if stepped.worst_pack is not None:
        _measure_worst(measure, "pack_voltage_error_max", stepped.worst_pack, accuracy["pack_voltage_v"], "V")
    assert stepped.left_standby is None, f"the staircase stayed inside the limits: {stepped.left_standby}"


@pytest.mark.rig_requires("thermistors")
def test_cell_temperatures_are_reported_within_accuracy(bench, spec, measure):
    accuracy = spec.section("accuracy")
    _skip_unless_reported(bench.bms.cell_temperatures_c(bench.cell_emulator.n_channels), "cell temperatures")
    _standby(bench)
    stepped = step_temperatures(bench, accuracy["temperature_c"], accuracy["temperature_settle_ms"] / 1000)
    _measure_worst(measure, "cell_temperature_error_max", stepped.worst, accuracy["temperature_c"], "degC")
    assert stepped.left_standby is None, f"the staircase stayed inside the limits: {stepped.left_standby}"


def test_pack_current_is_reported_within_accuracy(bench, spec, measure):
    """At rest (an offset shows), in discharge up to the current the BMS must allow, and in charge."""
    accuracy = spec.section("accuracy")
    pct = accuracy.get("pack_current_pct", 0.0)
    allowed_a = spec.value("ride_through.min_discharge_limit_a")
    charge_a = 0.5 * spec.protections["charge_oc"].low
    bench.power_up()
    bench.loop.run_for(2.0)   # the discharge limit may ramp up after the contactors close
    largest_a = 0.0
    for label, demand_a in (("rest", 0.0), ("discharge_quarter", 0.25 * allowed_a),
                            ("discharge_half", 0.5 * allowed_a), ("discharge_full", allowed_a),
                            ("charge", -charge_a)):
        bench.set_load(demand_a)
        bench.loop.run_for(accuracy["settle_ms"] / 1000)
        flowing_a, reported_a = bench.pack_current_a, bench.bms.pack_current_a
        assert reported_a is not None, f"no pack current reported: {bench.bms.describe()}"
        largest_a = max(largest_a, flowing_a)
        measure(f"pack_current_error_{label}", abs(reported_a - flowing_a),
                high=accuracy["pack_current_a"] + pct / 100 * abs(flowing_a), unit="A")
    assert largest_a >= 0.5 * allowed_a, (f"only {largest_a:.2f} A flowed of the {allowed_a:g} A asked: the BMS's "
                                          f"limits held it back ({bench.bms.describe()})")
    assert bench.bms.contactors_closed, bench.bms.describe()


# Insulation resistances applied, as multiples of the highest resistance the spec lets the BMS call a fault: a
# pack degrading from well insulated toward the warning tier, so no protection acts on the way.
INSULATION_FACTORS = (20.0, 5.0, 1.5)


@pytest.mark.rig_requires("hv_insulation")
def test_insulation_resistance_is_reported_within_accuracy(bench, spec, measure):
    """The insulation monitor's reading as the BMS reports it, at each resistance the bench connects from the
    pack to chassis (with the contactors closed, where the monitor must keep measuring), and with none."""
    accuracy = spec.section("accuracy")
    iso = spec.protections.get("insulation")
    if "insulation_pct" not in accuracy or iso is None:
        pytest.skip(f"{spec.path.name} states no [accuracy] insulation_pct or no [protections.insulation]")
    _skip_unless_reported(bench.bms.insulation_ohm, "insulation resistance")
    settle_s = accuracy.get("insulation_settle_ms", 2500) / 1000
    bench.power_up()
    pack_v = float(bench.pack.measured_cell_voltage_v.sum())   # at rest: what the BMS measures too
    worst = (0.0, "none")
    try:
        for factor in INSULATION_FACTORS:
            applied_ohm = factor * iso.high * pack_v
            bench.cell_emulator.set_insulation_fault(applied_ohm)
            bench.loop.run_for(settle_s)
            reported_ohm = bench.bms.insulation_ohm
            error_pct = math.inf if math.isnan(reported_ohm) else 100 * abs(reported_ohm - applied_ohm) / applied_ohm
            worst = max(worst, (error_pct, f"reported {reported_ohm:.4g} ohm for {applied_ohm:.4g} ohm applied "
                                           f"({factor:g}x the fault level)"), key=lambda w: w[0])
        bench.cell_emulator.set_insulation_fault(None)
        bench.loop.run_for(settle_s)
    finally:
        bench.cell_emulator.set_insulation_fault(None)   # the resistor is the bench's: never leave it connected
    _measure_worst(measure, "insulation_error_max", worst, accuracy["insulation_pct"], "%")
    highest_ohm = INSULATION_FACTORS[0] * iso.high * pack_v
    assert bench.bms.insulation_ohm >= highest_ohm, (
        f"with the fault resistor disconnected the BMS reports {bench.bms.insulation_ohm:.4g} ohm, below the "
        f"{highest_ohm:.4g} ohm it read as such: {bench.bms.describe()}")
    assert bench.bms.contactors_closed and not bench.bms.faults, bench.bms.describe()
