"""What the suite applies to raise a protection or warning: one place, so that the band tests and the trip-point
staircase step the same input."""
import pytest


def stimulus_params(names) -> list:
    """`names` for `pytest.mark.parametrize`, the insulation one marked for rigs with `hv_insulation` (its stimulus
    is the bench's resistor to chassis)."""
    return [pytest.param(name, marks=pytest.mark.rig_requires("hv_insulation")) if name == "insulation" else name
            for name in names]


def stimulus(bench, name: str):
    """(apply(value), release()) for the protection or warning `name`: the last cell's voltage or thermistor (loop
    bounds are where firmware slips), the pack current (charging for charge_oc), or a resistor from pack to chassis
    (ohm per volt of the pack's voltage at rest, which the BMS measures too)."""
    channel = bench.pack.n_series - 1
    if name == "insulation":
        def connect(ohm_per_v: float) -> None:
            bench.cell_emulator.set_insulation_fault(ohm_per_v * float(bench.pack.measured_cell_voltage_v.sum()))
        return connect, (lambda: bench.cell_emulator.set_insulation_fault(None))
    if name in ("cell_ov", "cell_uv"):
        return (lambda v: bench.force_cell(channel, v)), (lambda: bench.force_cell(channel, None))
    if name in ("cell_ot", "cell_ut"):
        return (lambda c: bench.force_temperature(channel, c)), (lambda: bench.force_temperature(channel, None))
    sign = -1.0 if name == "charge_oc" else 1.0
    return (lambda a: bench.set_load(sign * a, honour_limits=False)), (lambda: bench.set_load(0.0))
