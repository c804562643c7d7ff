"""`hil model simulate`: run a current profile through one cell in batch mode and write a CSV.
`hil model fit`: fit a cell file to an HPPC log (`hil.model.fit`).

    hil model simulate --cell fixtures/cells/lg_m50.toml --current profile.csv --soc0 0.9 -o out.csv

The input is a trace CSV (`time_s,current_a`, > 0 discharges; read by `hil.profiles.csv_trace`, which
names the file, line and problem for a missing column, a non-number or a time that does not increase).
It is resampled onto the `--dt` grid by zero-order hold; without `--dt` the trace's own step is used, so
it must then be uniform. Each output row `time_s,current_a,voltage_v,soc` is the state at `time_s`, the end
of a step over which `current_a` flowed for `dt`.

The run stops, as a cycler does at a limit, at the first step where the SOC leaves 0..1 (the profile draws
more charge than the cell holds, or charges it past full) or the terminal voltage leaves 0..5.5 V (no cell
has such a voltage; the current is far beyond what the model describes). The rows before that step are
written, the error names the time, and the exit status is 2.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from hil.errors import ConfigError
from hil.model import fit as fit_module
from hil.model.batch import simulate
from hil.model.cell import (
    OCV_MAX_V,
    TEMPERATURE_MAX_C,
    TEMPERATURE_MIN_C,
    CellParams,
    load_cell,
)
from hil.profiles.csv_trace import csv_trace, read_trace

# Below a microsecond nothing in a cell or a BMS moves and the rows run into the millions per second; above
# an hour the temperature and the resistances would change once per step, as coarse as they get.
MIN_DT_S, MAX_DT_S = 1e-6, 3600.0


def register(subparsers) -> argparse.ArgumentParser:
    """Add `model` and its `simulate` command to an argparse subparsers object; return the `model` parser."""
    parser = subparsers.add_parser("model", help="run the cell model offline; fit a cell file to an HPPC log", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    sim = commands.add_parser("simulate", help="simulate one cell on a current profile CSV, write a CSV",
                              description=__doc__.split("\n\n", 1)[1],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sim.add_argument("--cell", type=Path, required=True, metavar="CELL.toml", help="cell parameter file")
    sim.add_argument("--current", type=Path, required=True, metavar="PROFILE.csv",
                     help="time_s,current_a (A, > 0 discharges)")
    sim.add_argument("--dt", dest="dt_s", type=float, metavar="S",
                     help=f"step in s, {MIN_DT_S:g}..{MAX_DT_S:g} (default: the CSV's step)")
    sim.add_argument("--soc0", type=float, default=0.5, help="initial SOC, 0..1 (default 0.5)")
    sim.add_argument("--ambient", dest="ambient_c", type=float, default=25.0, metavar="DEGC",
                     help=f"ambient and initial cell temperature in degC, "
                          f"{TEMPERATURE_MIN_C:g}..{TEMPERATURE_MAX_C:g} (default 25)")
    sim.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.csv")
    sim.set_defaults(func=_simulate)
    fit = commands.add_parser("fit", help="fit a cell file to an HPPC log (time_s,current_a,voltage_v)",
                              description=fit_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fit.add_argument("logs", type=Path, nargs="+", metavar="LOG.csv",
                     help="time_s,current_a,voltage_v (A > 0 discharges, V); more than one: the same test at other "
                          "temperatures (the first is the reference), for the Arrhenius and entropic terms")
    fit.add_argument("--capacity-ah", dest="capacity_ah", type=float, required=True,
                     help="the cell's capacity, from its capacity test (the SOC is counted against it)")
    fit.add_argument("--soc0", type=float, default=1.0, help="SOC at the log's first row, 0..1 (default 1: full)")
    fit.add_argument("--rc", dest="n_rc", type=int, default=2, choices=(1, 2), help="RC branches (default 2)")
    fit.add_argument("--min-rest", dest="min_rest_s", type=float, default=600.0, metavar="S",
                     help="shortest rest read as an OCV point, in s (default 600)")
    fit.add_argument("--name", default="", help="the cell's name in the file (default: the log's file name)")
    fit.add_argument("--ambient", dest="ambient_c", type=float, nargs="+", default=[25.0], metavar="DEGC",
                     help="each log's test temperature in degC, in the logs' order (default 25)")
    fit.add_argument("-o", "--output", type=Path, required=True, metavar="CELL.toml")
    fit.set_defaults(func=_fit)
    return parser


def _uniform_step_s(path: Path, times_s: np.ndarray) -> float:
    if times_s.size < 2:
        raise ConfigError(f"{path}: one data row has no time step; pass --dt")
    steps_s = np.diff(times_s)
    if np.ptp(steps_s) > 1e-6 * steps_s.mean():
        raise ConfigError(f"{path}: time_s steps vary from {steps_s.min():g} to {steps_s.max():g} s; "
                          "pass --dt to resample")
    step_s = float(steps_s.mean())
    if not MIN_DT_S <= step_s <= MAX_DT_S:
        raise ConfigError(f"{path}: time_s step {step_s:g} s is outside {MIN_DT_S:g}..{MAX_DT_S:g} s; pass --dt "
                          "to resample")
    return step_s


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse a bad argument before the run, naming it: argparse takes nan and inf as floats."""
    if args.dt_s is not None and not MIN_DT_S <= args.dt_s <= MAX_DT_S:
        raise ConfigError(f"--dt {args.dt_s:g}: expected a step in {MIN_DT_S:g}..{MAX_DT_S:g} s")
    if not 0.0 <= args.soc0 <= 1.0:
        raise ConfigError(f"--soc0 {args.soc0:g}: expected an initial SOC in 0..1")
    if not TEMPERATURE_MIN_C <= args.ambient_c <= TEMPERATURE_MAX_C:
        raise ConfigError(f"--ambient {args.ambient_c:g}: expected degC in {TEMPERATURE_MIN_C:g}.."
                          f"{TEMPERATURE_MAX_C:g}, the range a rig's pack.ambient_c allows")
    if args.output.is_dir():
        raise ConfigError(f"-o {args.output}: is a folder; expected the path of the CSV file to write")
    if not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: folder {args.output.parent} does not exist")


def _first_unphysical_step(result: dict) -> tuple[int, str] | None:
    """(index, what) of the first step whose SOC leaves 0..1 or whose terminal voltage leaves 0..OCV_MAX_V."""
    soc, voltage_v = result["soc"][:, 0], result["cell_voltage_v"][:, 0]
    # A charge count that ends exactly at empty or full may round a few ulps past it.
    soc_bad = ~((soc >= -1e-9) & (soc <= 1.0 + 1e-9))
    voltage_bad = ~((voltage_v >= 0.0) & (voltage_v <= OCV_MAX_V))
    bad = np.flatnonzero(soc_bad | voltage_bad)
    if bad.size == 0:
        return None
    k = int(bad[0])
    if soc_bad[k]:
        direction = "draws more charge than the cell holds" if soc[k] < 0 else "charges the cell past full"
        return k, f"the SOC reaches {soc[k]:.4g}, outside 0..1: the profile {direction}"
    return k, (f"the terminal voltage reaches {voltage_v[k]:.4g} V, outside 0..{OCV_MAX_V:g} V: no cell has it, "
               "the current is far beyond what the model describes")


def _write(path: Path, table: np.ndarray) -> None:
    try:
        np.savetxt(path, table, fmt="%.10g", delimiter=",", header="time_s,current_a,voltage_v,soc", comments="")
    except OSError as error:
        raise ConfigError(f"-o {path}: cannot write: {error.strerror}") from None


def _simulate(args: argparse.Namespace) -> int:
    _check_arguments(args)
    cell = load_cell(args.cell)
    kind, times_s, _ = read_trace(args.current)
    if kind != "current":
        raise ConfigError(f"{args.current}: has a power_w column; `hil model simulate` needs time_s,current_a "
                          "(one cell's current). Export a current profile (hppc, cccv, constant-current), or "
                          "run a power profile on a whole pack with `hil run`")
    dt_s = args.dt_s if args.dt_s is not None else _uniform_step_s(args.current, times_s)
    profile = csv_trace(dt_s=dt_s, path=str(args.current))
    result = simulate(cell, profile.demand, dt_s, args.soc0, ambient_c=args.ambient_c)
    table = np.column_stack([times_s[0] + result["time_s"], result["current_a"], result["cell_voltage_v"][:, 0],
                             result["soc"][:, 0]])
    stop = _first_unphysical_step(result)
    if stop is not None:
        _stop_at(args, cell, table, *stop)
    _write(args.output, table)
    print(f"{args.output}: {len(table)} rows, {cell.name}, dt {dt_s:g} s, "
          f"voltage {table[:, 2].min():.4f}..{table[:, 2].max():.4f} V, final SOC {table[-1, 3]:.4f}")
    return 0


def _stop_at(args: argparse.Namespace, cell: CellParams, table: np.ndarray, k: int, what: str) -> None:
    """Write the rows before step `k` and raise the error that stops the run there."""
    _write(args.output, table[:k])
    raise ConfigError(f"{args.current}: at time_s {table[k, 0]:g} (current {table[k, 1]:g} A) {what} "
                      f"({cell.name}, {cell.capacity_ah:g} Ah, --soc0 {args.soc0:g}); stopped there, the {k} rows "
                      f"before it are in {args.output}")


def _fit(args: argparse.Namespace) -> int:
    if not 0 < args.min_rest_s < math.inf:
        raise ConfigError(f"--min-rest {args.min_rest_s:g}: expected seconds > 0")
    if args.output.is_dir() or not args.output.parent.is_dir():
        raise ConfigError(f"-o {args.output}: expected the path of the cell file to write, in a folder that exists")
    if len(args.ambient_c) != len(args.logs):
        raise ConfigError(f"--ambient: {len(args.logs)} log(s) need {len(args.logs)} temperature(s), one per log in "
                          f"the same order; got {len(args.ambient_c)}")
    for ambient_c in args.ambient_c:
        if not TEMPERATURE_MIN_C <= ambient_c <= TEMPERATURE_MAX_C:
            raise ConfigError(f"--ambient {ambient_c:g}: expected degC in {TEMPERATURE_MIN_C:g}..{TEMPERATURE_MAX_C:g}")
    logs = [fit_module.read_log(path) for path in args.logs]
    fit = fit_module.fit_hppc(logs[0], args.capacity_ah, args.soc0, n_rc=args.n_rc, min_rest_s=args.min_rest_s,
                              name=args.name, ambient_c=args.ambient_c[0],
                              others=tuple(zip(logs[1:], args.ambient_c[1:])))
    try:
        args.output.write_text(fit.cell_text)
    except OSError as error:
        raise ConfigError(f"-o {args.output}: cannot write: {error.strerror}") from None
    cell = fit.cell
    print(f"{args.output}: {cell.name}, {cell.capacity_ah:g} Ah; OCV from {fit.ocv_points} rests, R0 {cell.r0_ohm * 1e3:.2f} "
          f"mOhm from {fit.r0_steps} steps; RC " + ", ".join(
              f"{r * 1e3:.2f} mOhm tau {r * c:.3g} s" for r, c in zip(cell.rc_r_ohm, cell.rc_c_f))
          + f" at SOC {fit.relaxation_soc:.2f}")
    if cell.activation_energy_j_per_mol:
        print(f"temperature: activation energy {cell.activation_energy_j_per_mol / 1000:.1f} kJ/mol, dU/dT "
              f"{cell.ocv_dv_dt_v_per_k.min() * 1e3:.3f}..{cell.ocv_dv_dt_v_per_k.max() * 1e3:.3f} mV/K")
    if fit.hysteresis_pairs:
        print(f"hysteresis: {cell.hysteresis_v * 1e3:.2f} mV (half the charge/discharge gap, {fit.hysteresis_pairs} "
              f"rests), rate {cell.hysteresis_rate:.3g}")
    errors = [(fit.rms_mv, fit.max_mv), *fit.other_errors_mv]
    for path, ambient_c, (rms_mv, max_mv) in zip(args.logs, args.ambient_c, errors):
        print(f"simulated on {path.name}'s current at {ambient_c:g} degC: voltage error {rms_mv:.2f} mV RMS, "
              f"{max_mv:.1f} mV at most")
    return 0
