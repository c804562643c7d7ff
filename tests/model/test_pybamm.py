"""Checked against PyBaMM's Thevenin model with the same constant parameters (the optional `pybamm` extra).

PyBaMM solves the same circuit as a DAE with tight tolerances, one experiment step per current level, so it
is the reference for the exact zero-order-hold discretisation here: terminal voltage within 0.5 mV and SOC
within 1e-4 on a GPU-training square wave and a drone burst profile.
"""
import numpy as np
import pytest

from hil.model.batch import simulate

pybamm = pytest.importorskip("pybamm", minversion="26", reason="PyBaMM >= 26 (the `pybamm` extra) is not installed")

pytestmark = [pytest.mark.pybamm, pytest.mark.slow]
DT_S = 0.1


def _pybamm_series(cell, segments, soc0):
    """(time_s, voltage_v, soc) from PyBaMM at the end of every DT_S, for (amps, seconds) segments."""
    n_rc = len(cell.rc_r_ohm)
    values = pybamm.ParameterValues("ECM_Example")
    values.update({
        "Cell capacity [A.h]": cell.capacity_ah,
        "Nominal cell capacity [A.h]": cell.capacity_ah,
        "Initial SoC": soc0,
        "R0 [Ohm]": cell.r0_ohm,
        "Entropic change [V/K]": 0.0,
        "Open-circuit voltage [V]": lambda soc: pybamm.Interpolant(cell.ocv_soc, cell.ocv_v, soc,
                                                                  interpolator="linear"),
        "Upper voltage cut-off [V]": 10.0,
        "Lower voltage cut-off [V]": 0.0,
        "RCR lookup limit [A]": 1e6,
    })
    for k, (r_ohm, c_f) in enumerate(zip(cell.rc_r_ohm, cell.rc_c_f), start=1):
        values.update({f"R{k} [Ohm]": r_ohm, f"C{k} [F]": c_f, f"Element-{k} initial overpotential [V]": 0.0},
                      check_already_exists=False)
    steps = []
    for amps, seconds in segments:
        period = f"({DT_S} second period)"
        if amps > 0:
            steps.append(f"Discharge at {amps} A for {seconds} seconds {period}")
        elif amps < 0:
            steps.append(f"Charge at {-amps} A for {seconds} seconds {period}")
        else:
            steps.append(f"Rest for {seconds} seconds {period}")
    simulation = pybamm.Simulation(pybamm.equivalent_circuit.Thevenin(options={"number of rc elements": n_rc}),
                                   parameter_values=values, experiment=pybamm.Experiment(steps),
                                   solver=pybamm.IDAKLUSolver(rtol=1e-9, atol=1e-9))
    solution = simulation.solve()
    # The first point of each step is its start, already given as the end of the step before.
    series = [np.concatenate([sub[name].entries[1:] for sub in solution.sub_solutions])
              for name in ("Time [s]", "Voltage [V]", "SoC")]
    return tuple(series)


def _compare(cell, segments, soc0):
    current = np.concatenate([np.full(round(seconds / DT_S), amps) for amps, seconds in segments])
    ours = simulate(cell, current, DT_S, soc0)
    time_s, voltage_v, soc = _pybamm_series(cell, segments, soc0)
    index = np.rint(time_s / DT_S).astype(int) - 1
    voltage_error_v = np.abs(ours["cell_voltage_v"][index, 0] - voltage_v).max()
    soc_error = np.abs(ours["soc"][index, 0] - soc).max()
    return voltage_error_v, soc_error


def test_gpu_training_square_wave_matches_pybamm(m50, constant):
    # A vendor AI-training test: 2 s at 90 % and 2 s at 50 % load (DESIGN.md), here 2 C and 1.1 C on one cell.
    segments = [(10.0, 2), (5.5, 2)] * 60 + [(0.0, 30)]
    voltage_error_v, soc_error = _compare(constant(m50), segments, soc0=0.9)
    assert voltage_error_v <= 0.5e-3
    assert soc_error <= 1e-4


def test_drone_bursts_match_pybamm(request, constant):
    from hil.model.cell import load_cell
    lipo = load_cell(request.config.rootpath / "fixtures" / "cells" / "lipo_1500_fpv.toml")
    # Hover at 10 C with 100 C punch-outs, a regen dip and a climb (DESIGN.md drone numbers).
    segments = [(15.0, 8), (150.0, 2)] * 10 + [(-3.0, 5), (30.0, 5), (0.0, 20)]
    voltage_error_v, soc_error = _compare(constant(lipo), segments, soc0=0.95)
    assert voltage_error_v <= 0.5e-3
    assert soc_error <= 1e-4
