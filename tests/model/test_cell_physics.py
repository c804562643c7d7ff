"""One cell's behaviour: exact RC response, coulomb counting, temperature effects, LFP hysteresis."""
import math

import numpy as np
import pytest

from hil.model.cell import CellParams
from hil.model.pack import Pack


def _flat_cell(**changes) -> CellParams:
    """A cell with a flat 3.7 V OCV, so every voltage change comes from the circuit."""
    values = dict(name="flat", capacity_ah=10.0, r0_ohm=0.01, rc_r_ohm=(0.02, 0.005), rc_c_f=(500.0, 40.0),
                  ocv_soc=np.array([0.0, 1.0]), ocv_v=np.array([3.7, 3.7]), v_min_v=3.0, v_max_v=4.2)
    values.update(changes)
    return CellParams(**values)


@pytest.mark.parametrize("dt_s", [0.001, 0.37, 5.0])
def test_rc_step_response_matches_the_analytic_solution_for_any_step(dt_s):
    cell = _flat_cell()
    pack = Pack(cell, 1, soc0=0.5)
    current_a, elapsed_s = 20.0, 0.0
    for _ in range(round(20.0 / dt_s)):
        pack.step(current_a, dt_s)
        elapsed_s += dt_s
    drop_v = current_a * (cell.r0_ohm + sum(r * (1 - math.exp(-elapsed_s / (r * c)))
                                            for r, c in zip(cell.rc_r_ohm, cell.rc_c_f)))
    assert pack.cell_voltage_v[0] == pytest.approx(3.7 - drop_v, abs=1e-12)


def test_relaxation_after_a_pulse_decays_with_each_time_constant():
    cell = _flat_cell(rc_r_ohm=(0.02,), rc_c_f=(500.0,))
    pack = Pack(cell, 1, soc0=0.5)
    pack.step(10.0, 30.0)
    held_v = 10.0 * 0.02 * (1 - math.exp(-3.0))
    pack.step(0.0, 10.0)
    assert 3.7 - pack.cell_voltage_v[0] == pytest.approx(held_v * math.exp(-1.0), rel=1e-12)


def test_coulomb_counting(m50):
    pack = Pack(m50, 3, soc0=0.8)
    for _ in range(600):
        pack.step(5.0, 1.0)   # 5 A for 10 min is 0.833 Ah
    for _ in range(300):
        pack.step(-2.5, 1.0)  # back 0.208 Ah
    np.testing.assert_allclose(pack.soc, 0.8 - (5.0 * 600 - 2.5 * 300) / 3600 / 5.0, rtol=0, atol=1e-12)


def test_rest_voltage_is_the_ocv(m50, constant):
    pack = Pack(constant(m50), 2, soc0=0.37)
    pack.step(0.0, 1.0)
    np.testing.assert_allclose(pack.cell_voltage_v, m50.ocv(0.37), rtol=0, atol=1e-12)


def _sag_v(cell, ambient_c: float) -> float:
    pack = Pack(cell, 1, soc0=0.5, ambient_c=ambient_c)
    pack.step(0.0, 0.001)
    rest_v = pack.cell_voltage_v[0]
    pack.step(10.0, 0.001)
    return rest_v - pack.cell_voltage_v[0]


def test_cold_cell_has_a_higher_resistance(m50):
    # Arrhenius with Ea = 20 kJ/mol: R(-10 degC) / R(25 degC) = exp(Ea / R (1/263.15 - 1/298.15)) = 2.93.
    # The sag also holds the tiny OCV drop from the charge moved in the step, the same warm or cold.
    ratio = _sag_v(m50, -10.0) / _sag_v(m50, 25.0)
    assert ratio == pytest.approx(math.exp(20000 / 8.314462618 * (1 / 263.15 - 1 / 298.15)), rel=1e-4)


def test_entropic_term_moves_the_ocv_with_temperature(m50):
    # dU/dT is -0.43 mV/K at SOC 0.05 (ORegan2022): 20 K colder lifts the OCV by about 8.6 mV.
    warm, cold = Pack(m50, 1, soc0=0.05, ambient_c=25.0), Pack(m50, 1, soc0=0.05, ambient_c=5.0)
    assert cold.cell_voltage_v[0] - warm.cell_voltage_v[0] == pytest.approx(20 * 0.000431, rel=1e-6)


def test_lfp_hysteresis_charge_and_discharge_rest_voltages_differ(lfp):
    discharged, charged = Pack(lfp, 1, soc0=0.6), Pack(lfp, 1, soc0=0.4)
    # Reach SOC 0.5 from above and from below at C/2, then rest until the RC branches have relaxed.
    for pack, current_a in ((discharged, 1.15), (charged, -1.15)):
        for _ in range(720):
            pack.step(current_a, 1.0)
        for _ in range(600):
            pack.step(0.0, 1.0)
    assert discharged.soc[0] == pytest.approx(charged.soc[0], abs=1e-12)
    gap_v = charged.cell_voltage_v[0] - discharged.cell_voltage_v[0]
    # Each side settles within exp(-60 * 0.1) of M = 10 mV away from the mean OCV.
    assert gap_v == pytest.approx(2 * lfp.hysteresis_v, rel=0.01)


def test_thermal_interval_moves_temperature_in_whole_intervals(m50):
    pack = Pack(m50, 1, soc0=0.5, thermal_dt_s=1.0)
    for _ in range(999):
        pack.step(20.0, 0.001)
    assert pack.temperature_c[0] == 25.0
    pack.step(20.0, 0.001)
    assert pack.temperature_c[0] > 25.0
    assert pack.cell_heat_w[0, 0] > 20.0 ** 2 * m50.r0_ohm


def test_changing_the_step_keeps_the_charge_count(m50):
    pack = Pack(m50, 1, soc0=0.5)
    for dt_s in (0.001, 0.25, 0.001, 2.0, 0.01):
        for _ in range(100):
            pack.step(4.0, dt_s)
    assert pack.soc[0] == pytest.approx(0.5 - 4.0 * 100 * 2.262 / 3600 / 5.0, abs=1e-12)
    with pytest.raises(ValueError, match="dt_s"):
        pack.step(4.0, 0.0)
