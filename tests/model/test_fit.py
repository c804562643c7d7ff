"""`hil model fit`: an HPPC log in, a cell file out that gives back the cell that made the log.

The log is the model's own HPPC run of a shipped cell (1 s rows, nine 10 % SOC steps from full), so what the
fit should find is known; its temperature rises a few kelvin in each 1 C step, so the RC branches it sees are
not quite the file's constants, as on a real cell.
"""
import argparse

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.model.batch import simulate
from hil.model.cell import load_cell
from hil.model.cli import register
from hil.model.fit import fit_hppc, read_log
from hil.profiles import PROFILES

from .conftest import CELLS

STEP_S = 10 + 40 + 10 + 360 + 3600   # one HPPC SOC step: pulse, rest, regen pulse, 10 % at 1 C, 1 h rest
HEADER = "time_s,current_a,voltage_v"


def _hppc_log(path, cell_file="lg_m50.toml", steps=9, dt_s=1.0, soc0=1.0, current_scale=1.0):
    cell = load_cell(CELLS / cell_file)
    current_a = PROFILES["hppc"](duration_s=steps * STEP_S, dt_s=dt_s, capacity_ah=cell.capacity_ah,
                                 pulse_current_a=2 * cell.capacity_ah).demand
    result = simulate(cell, current_a, dt_s, soc0)
    table = np.column_stack([result["time_s"], current_a * current_scale, result["cell_voltage_v"][:, 0]])
    np.savetxt(path, table, fmt="%.10g", delimiter=",", header=HEADER, comments="")
    return cell, path


@pytest.fixture(scope="module")
def m50_log(tmp_path_factory):
    return _hppc_log(tmp_path_factory.mktemp("hppc") / "m50.csv")


@pytest.fixture(scope="module")
def m50_fit(m50_log):
    cell, path = m50_log
    return cell, fit_hppc(read_log(path), cell.capacity_ah, 1.0)


def test_the_ocv_is_read_at_every_rest(m50_fit):
    cell, fit = m50_fit
    assert fit.ocv_points == 9
    fitted = fit.cell
    measured = (fitted.ocv_soc > 0) & (fitted.ocv_soc < 1)   # the two ends are extrapolated
    # an hour's rest leaves 38 s branches at exp(-95): the rest's end is the OCV, to the model's rounding
    np.testing.assert_allclose(fitted.ocv_v[measured], cell.ocv(fitted.ocv_soc[measured]), atol=0.5e-3)
    assert fitted.ocv_soc[0] == 0 and fitted.ocv_soc[-1] == 1 and np.all(np.diff(fitted.ocv_v) >= 0)


def test_r0_and_its_soc_dependence_are_recovered(m50_fit):
    cell, fit = m50_fit
    fitted = fit.cell
    soc = fitted.r_factor_soc
    assert fit.r0_steps == 8 and soc.size == 8   # the first pulse starts the log, from no rest
    true_r0 = cell.r0_ohm * cell.resistance_factor(soc, 25.0)
    fitted_r0 = fitted.r0_ohm * fitted.r_factor
    # one 1 s row of the 8.7 s branch (+1.3 %) rides on the step
    np.testing.assert_allclose(fitted_r0, true_r0, rtol=0.03)
    assert fitted.r_factor[0] > 1.05 and fitted.r_factor[-1] > 1.05, "the U shape over SOC is lost"


def test_rc_branches_are_recovered(m50_fit):
    cell, fit = m50_fit
    taus = [r * c for r, c in zip(fit.cell.rc_r_ohm, fit.cell.rc_c_f)]
    true_taus = [r * c for r, c in zip(cell.rc_r_ohm, cell.rc_c_f)]
    # the 1 C step warms the cell a few kelvin, and its resistances (so its time constants) fall with it
    np.testing.assert_allclose(taus, true_taus, rtol=0.2)
    np.testing.assert_allclose(fit.cell.rc_r_ohm, cell.rc_r_ohm, rtol=0.2)
    assert fit.relaxation_rms_mv < 0.5 and 0.4 < fit.relaxation_soc < 0.6


def test_the_fitted_cell_reproduces_the_log(m50_fit):
    _, fit = m50_fit
    # the worst rows are the first pulse at SOC 1 and the last step, below the lowest rest: the OCV's ends
    # are extrapolated there
    assert fit.rms_mv < 8.0 and fit.max_mv < 80.0, (fit.rms_mv, fit.max_mv)
    header = fit.cell_text.replace("\n# ", " ")   # the comment lines are wrapped
    assert f"voltage error {fit.rms_mv:.2f} mV RMS" in header and "thermal keys (the model's defaults)" in header


def _with_temperature(tmp_path, temperature_c=None):
    """The M50's HPPC log with the cell's temperature, as the model has it (or `temperature_c`)."""
    cell = load_cell(CELLS / "lg_m50.toml")
    current_a = PROFILES["hppc"](duration_s=4 * STEP_S, dt_s=1.0, capacity_ah=5.0, pulse_current_a=10.0).demand
    result = simulate(cell, current_a, 1.0, 1.0)
    updated = np.searchsorted(result["temperature_time_s"], result["time_s"] + 1e-9, side="right") - 1
    measured_c = (result["temperature_c"][updated, 0] if temperature_c is None
                  else np.full(current_a.size, temperature_c))
    path = tmp_path / "m50_t.csv"
    np.savetxt(path, np.column_stack([result["time_s"], current_a, result["cell_voltage_v"][:, 0], measured_c]),
               fmt="%.10g", delimiter=",", header=HEADER + ",temperature_c", comments="")
    return cell, path


def test_thermal_keys_from_a_temperature_column(tmp_path):
    cell, path = _with_temperature(tmp_path)
    fit = fit_hppc(read_log(path), 5.0, 1.0)
    # the model's heat is I^2 R0 plus each branch's V^2 / R; the fit's, I (OCV - V): the same energy over a window
    assert fit.cell.heat_capacity_j_per_k == pytest.approx(cell.heat_capacity_j_per_k, rel=0.05)
    assert fit.cell.h_ambient_w_per_k == pytest.approx(cell.h_ambient_w_per_k, rel=0.1)
    assert fit.temperature_rms_c < 0.3 and "[thermal]" in fit.cell_text
    assert f"temperature {fit.temperature_rms_c:.2f} degC RMS" in fit.cell_text.replace("\n# ", " ")


def test_a_temperature_that_does_not_follow_the_heat_is_refused(tmp_path):
    _, path = _with_temperature(tmp_path, temperature_c=25.0)   # a chamber's, or a sensor off the cell
    message = _error(lambda: fit_hppc(read_log(path), 5.0, 1.0))
    assert str(path) in message and "does not rise with the cell's heat" in message


def test_one_rc_branch(m50_log):
    cell, path = m50_log
    fit = fit_hppc(read_log(path), cell.capacity_ah, 1.0, n_rc=1)
    assert len(fit.cell.rc_r_ohm) == 1
    assert fit.rms_mv < 15.0


def _run_cli(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["model", "fit", *argv])
    return args.func(args)


def test_cli_writes_a_cell_file_a_rig_loads(m50_log, tmp_path, capsys):
    _, path = m50_log
    out = tmp_path / "mycell.toml"
    assert _run_cli(str(path), "--capacity-ah", "5", "--name", "My 21700", "-o", str(out)) == 0
    loaded = load_cell(out)
    assert loaded.name == "My 21700" and loaded.capacity_ah == 5.0
    printed = capsys.readouterr().out
    assert str(out) in printed and "OCV from 9 rests" in printed and "mV RMS" in printed


def test_a_log_with_extra_columns_in_another_order(m50_log, tmp_path):
    cell, path = m50_log
    rows = np.loadtxt(path, delimiter=",", skiprows=1)
    other = tmp_path / "cycler.csv"
    np.savetxt(other, np.column_stack([rows[:, 2], np.full(len(rows), 25.0), rows[:, 0], rows[:, 1]]),
               fmt="%.10g", delimiter=",", header="voltage_v,chamber_c,time_s,current_a", comments="")
    assert fit_hppc(read_log(other), cell.capacity_ah, 1.0).r0_steps == 8


def test_a_log_sparse_in_its_rests(m50_log, m50_fit, tmp_path):
    """A cycler logging rests every 10 s, steps every second, and a row at every step change."""
    (cell, path), (_, dense) = m50_log, m50_fit
    rows = np.loadtxt(path, delimiter=",", skiprows=1)
    current = rows[:, 1]
    change = np.r_[False, current[1:] != current[:-1]]
    keep = (current != 0) | change | np.r_[change[1:], False] | (np.arange(len(rows)) % 10 == 0)
    sparse = tmp_path / "sparse.csv"
    np.savetxt(sparse, rows[keep], fmt="%.10g", delimiter=",", header=HEADER, comments="")
    fit = fit_hppc(read_log(sparse), cell.capacity_ah, 1.0)
    assert keep.sum() < 0.2 * len(rows)
    np.testing.assert_allclose(fit.cell.ocv_v, dense.cell.ocv_v, atol=1e-4)
    assert fit.cell.r0_ohm == pytest.approx(dense.cell.r0_ohm, rel=1e-3)
    np.testing.assert_allclose(fit.cell.rc_r_ohm, dense.cell.rc_r_ohm, rtol=0.25)
    # the RMS is over rows, now mostly the steps' (where the error lives): compare the largest instead
    assert fit.max_mv < dense.max_mv + 5.0, (fit.max_mv, dense.max_mv)


# Bad input: a clear error naming the file and what was expected, never a traceback or a wrong cell.
def _error(call) -> str:
    with pytest.raises(ConfigError) as caught:
        call()
    return str(caught.value)


def test_a_missing_column_is_named(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("time_s,current_a,volts\n0,1,3.7\n1,1,3.6\n2,1,3.5\n")
    message = _error(lambda: read_log(path))
    assert str(path) in message and "line 1" in message and "no column voltage_v" in message


def test_a_bad_row_is_named_by_its_line(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(f"{HEADER}\n0,1,3.7\n1,x,3.6\n2,1,3.5\n")
    assert "line 3: expected numbers" in _error(lambda: read_log(path))
    path.write_text(f"{HEADER}\n0,1,3.7\n2,1,3.6\n1,1,3.5\n")
    assert "line 4: time_s 1 goes back" in _error(lambda: read_log(path))
    path.write_text(f"{HEADER}\n0,0,3.7\n1,0,3.7\n1,5,3.6\n2,5,3.5\n")   # a step change logged twice
    assert read_log(path).dt_s.tolist() == [1, 1, 0, 1]


def test_a_log_without_long_rests_says_what_it_saw(tmp_path):
    _, path = _hppc_log(tmp_path / "short.csv", steps=1)   # one step: one rest
    message = _error(lambda: fit_hppc(read_log(path), 5.0, 1.0))
    assert "1 rest(s) of at least 600 s" in message and "lower --min-rest" in message and str(path) in message


def test_a_log_in_milliamps_is_caught(tmp_path):
    _, path = _hppc_log(tmp_path / "ma.csv", steps=3, current_scale=1000.0)
    message = _error(lambda: fit_hppc(read_log(path), 5.0, 1.0))
    assert str(path) in message and "reaches -" in message and "is current_a in A" in message


def test_discharge_counted_negative_is_caught(tmp_path):
    _, path = _hppc_log(tmp_path / "sign.csv", steps=3, current_scale=-1.0)
    message = _error(lambda: fit_hppc(read_log(path), 5.0, 0.0))
    # the regen pulse, now positive, reads as a discharge step from rest during which the voltage rises
    assert "the voltage rises" in message and "is current_a > 0 for discharge?" in message and str(path) in message


@pytest.mark.parametrize("kwargs,expected", [
    ({"capacity_ah": 0.0}, "--capacity-ah 0"), ({"capacity_ah": float("nan")}, "--capacity-ah nan"),
    ({"soc0": 1.5}, "--soc0 1.5"), ({"n_rc": 3}, "--rc 3")])
def test_bad_arguments(m50_log, kwargs, expected):
    _, path = m50_log
    arguments = {"capacity_ah": 5.0, "soc0": 1.0} | kwargs
    message = _error(lambda: fit_hppc(read_log(path), arguments.pop("capacity_ah"), arguments.pop("soc0"),
                                      **arguments))
    assert message.startswith(expected)


@pytest.mark.pybamm
@pytest.mark.slow
def test_a_fit_to_pybamms_dfn(tmp_path):
    """A log from physics the circuit only approximates: PyBaMM's DFN with Chen2020 (the LG M50's own source),
    the same HPPC, 1 s rows. Measured: 7.5 mV RMS with two branches, 14 mV with one."""
    pybamm = pytest.importorskip("pybamm", minversion="26", reason="PyBaMM >= 26 (the `pybamm` extra) is not installed")
    step = ["Discharge at 10 A for 10 seconds", "Rest for 40 seconds", "Charge at 7.5 A for 10 seconds",
            "Discharge at 5 A for 6 minutes", "Rest for 1 hour"]
    experiment = pybamm.Experiment(["Rest for 10 minutes"] + step * 8, period="1 second")
    solution = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=pybamm.ParameterValues("Chen2020"),
                                 experiment=experiment).solve(initial_soc=1.0)
    time_s, current_a, voltage_v = (solution[name].entries for name in ("Time [s]", "Current [A]", "Voltage [V]"))
    new = np.r_[True, np.diff(time_s) > 1e-9]   # a step's first point repeats the last one's time
    path = tmp_path / "dfn.csv"
    np.savetxt(path, np.column_stack([time_s[new] + 1.0, current_a[new], voltage_v[new]]), fmt="%.10g",
               delimiter=",", header=HEADER, comments="")
    fit = fit_hppc(read_log(path), 5.0, 1.0)
    assert fit.ocv_points == 9 and fit.rms_mv < 10.0, (fit.ocv_points, fit.rms_mv)
    assert fit_hppc(read_log(path), 5.0, 1.0, n_rc=1).rms_mv > fit.rms_mv   # the second branch earns its place


@pytest.fixture(scope="module")
def m50_other_temperatures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hppc-t")
    cell = load_cell(CELLS / "lg_m50.toml")
    current_a = PROFILES["hppc"](duration_s=9 * STEP_S, dt_s=1.0, capacity_ah=5.0, pulse_current_a=10.0).demand
    logs = []
    for ambient_c in (0.0, 40.0):
        result = simulate(cell, current_a, 1.0, 1.0, ambient_c=ambient_c)
        path = folder / f"m50_{ambient_c:g}C.csv"
        np.savetxt(path, np.column_stack([result["time_s"], current_a, result["cell_voltage_v"][:, 0]]),
                   fmt="%.10g", delimiter=",", header=HEADER, comments="")
        logs.append((read_log(path), ambient_c))
    return tuple(logs)


def test_temperature_terms_from_the_same_test_at_other_temperatures(m50_log, m50_other_temperatures):
    cell, path = m50_log
    fit = fit_hppc(read_log(path), 5.0, 1.0, ambient_c=25.0, others=m50_other_temperatures)
    fitted = fit.cell
    assert fitted.activation_energy_j_per_mol == pytest.approx(cell.activation_energy_j_per_mol, rel=0.1)
    assert fitted.resistance_reference_c == 25.0 and fitted.ocv_reference_c == 25.0
    measured = (fitted.ocv_soc > 0.15) & (fitted.ocv_soc < 0.95)   # between the rests; the ends are the nearest's
    np.testing.assert_allclose(fitted.ocv_dv_dt_v_per_k[measured],
                               np.interp(fitted.ocv_soc[measured], cell.ocv_soc, cell.ocv_dv_dt_v_per_k), atol=3e-5)
    # each log replayed at its own temperature, and the reference log better than without the terms
    assert len(fit.other_errors_mv) == 2 and all(rms < 8.0 for rms, _ in fit.other_errors_mv), fit.other_errors_mv
    assert fit.rms_mv < fit_hppc(read_log(path), 5.0, 1.0).rms_mv
    assert "# from R0 at 16 steps of m50_0C.csv (0 degC), m50_40C.csv (40 degC)" in fit.cell_text


def test_a_second_log_at_the_same_temperature_is_refused(m50_log, m50_other_temperatures):
    _, path = m50_log
    (cold, _), _ = m50_other_temperatures
    message = _error(lambda: fit_hppc(read_log(path), 5.0, 1.0, ambient_c=25.0, others=((cold, 24.5),)))
    assert "m50_0C.csv: at 24.5 degC, within 1 K of m50.csv's 25 degC" in message


def test_cli_needs_one_temperature_per_log(m50_log, tmp_path):
    _, path = m50_log
    message = _error(lambda: _run_cli(str(path), str(path), "--capacity-ah", "5", "-o", str(tmp_path / "c.toml")))
    assert message.startswith("--ambient: 2 log(s) need 2 temperature(s)")


@pytest.mark.slow
def test_hysteresis_from_a_charge_staircase_after_the_discharge_one(tmp_path):
    """The model's own LFP cell (M = 10 mV, rate 60) through nine discharge and eight charge steps (2 s rows):
    its rests after charge sit 2 M above those after discharge. The gap is read to a few percent and the OCV is
    the branches' middle; the rate is seen only where the current reverses (once, and the short regen pulses),
    so it comes back within a factor of three; and the fitted cell reproduces the log better than a fit of
    the discharge staircase alone reproduces its own."""
    cell = load_cell(CELLS / "a123_lfp_26650.toml")
    assert cell.hysteresis_v == 0.010 and cell.hysteresis_rate == 60.0

    def log(name, steps, charge_steps=0):
        current_a = PROFILES["hppc"](duration_s=steps * STEP_S - charge_steps * 60, dt_s=2.0,
                                     capacity_ah=cell.capacity_ah, pulse_current_a=2 * cell.capacity_ah,
                                     charge_steps=charge_steps).demand
        result = simulate(cell, current_a, 2.0, 1.0)
        np.savetxt(tmp_path / name, np.column_stack([result["time_s"], current_a, result["cell_voltage_v"][:, 0]]),
                   fmt="%.10g", delimiter=",", header=HEADER, comments="")
        return read_log(tmp_path / name)

    both = fit_hppc(log("both.csv", 17, charge_steps=8), cell.capacity_ah, 1.0)
    assert both.hysteresis_pairs >= 10
    assert both.cell.hysteresis_v == pytest.approx(0.010, rel=0.05)
    assert 20.0 <= both.cell.hysteresis_rate <= 180.0
    plateau = (both.cell.ocv_soc > 0.3) & (both.cell.ocv_soc < 0.9)
    np.testing.assert_allclose(both.cell.ocv_v[plateau], cell.ocv(both.cell.ocv_soc[plateau]), atol=1e-3)
    assert "[hysteresis]" in both.cell_text and "Not fitted: hysteresis" not in both.cell_text.replace("\n# ", " ")
    discharge_only = fit_hppc(log("discharge.csv", 9), cell.capacity_ah, 1.0)
    assert discharge_only.hysteresis_pairs == 0 and discharge_only.cell.hysteresis_v == 0.0
    assert "hysteresis (no rests after charging" in discharge_only.cell_text.replace("\n# ", " ")
    assert both.rms_mv < discharge_only.rms_mv
