"""`hil model simulate`: run a current profile through one cell in batch mode and write a CSV.

    hil model simulate --cell fixtures/cells/lg_m50.toml --current profile.csv --soc0 0.9 -o out.csv

The input is a trace CSV (`time_s,current_a`, > 0 discharges; read by `hil.profiles.csv_trace`, which
names the file, line and problem for a missing column, a non-number or a time that does not increase).
It is resampled onto the `--dt` grid by zero-order hold; without `--dt` the trace's own step is used, so
it must then be uniform. Each output row `time_s,current_a,voltage_v,soc` is the state at `time_s`, the end
of a step over which `current_a` flowed for `dt`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hil.errors import ConfigError
from hil.model.batch import simulate
from hil.model.cell import load_cell
from hil.profiles.csv_trace import csv_trace, read_trace


def register(subparsers) -> argparse.ArgumentParser:
    """Add `model` and its `simulate` command to an argparse subparsers object; return the `model` parser."""
    parser = subparsers.add_parser("model", help="run the cell model offline", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    sim = commands.add_parser("simulate", help="simulate one cell on a current profile CSV, write a CSV")
    sim.add_argument("--cell", type=Path, required=True, metavar="CELL.toml", help="cell parameter file")
    sim.add_argument("--current", type=Path, required=True, metavar="PROFILE.csv",
                     help="time_s,current_a (A, > 0 discharges)")
    sim.add_argument("--dt", dest="dt_s", type=float, metavar="S", help="step in s (default: the CSV's step)")
    sim.add_argument("--soc0", type=float, default=0.5, help="initial SOC, 0..1 (default 0.5)")
    sim.add_argument("--ambient", dest="ambient_c", type=float, default=25.0, metavar="DEGC",
                     help="ambient and initial cell temperature in degC (default 25)")
    sim.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.csv")
    sim.set_defaults(func=_simulate)
    return parser


def _uniform_step_s(path: Path, times_s: np.ndarray) -> float:
    if times_s.size < 2:
        raise ConfigError(f"{path}: one data row has no time step; pass --dt")
    steps_s = np.diff(times_s)
    if np.ptp(steps_s) > 1e-6 * steps_s.mean():
        raise ConfigError(f"{path}: time_s steps vary from {steps_s.min():g} to {steps_s.max():g} s; "
                          "pass --dt to resample")
    return float(steps_s.mean())


def _simulate(args: argparse.Namespace) -> int:
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
    np.savetxt(args.output, table, fmt="%.10g", delimiter=",", header="time_s,current_a,voltage_v,soc",
               comments="")
    print(f"{args.output}: {len(table)} rows, {cell.name}, dt {dt_s:g} s, "
          f"voltage {table[:, 2].min():.4f}..{table[:, 2].max():.4f} V, final SOC {table[-1, 3]:.4f}")
    return 0
