"""Speed of the cell and pack model.

`python benchmarks/model.py --json` ends with one JSON line:

- step_us_16, step_us_1000: median microseconds per real-time `Pack.step` (1 ms) for 16S1P and 1000S1P;
- step_us_100s10p: the same for 100 blocks of 10 parallel cells (the parallel solve);
- cell_steps_per_s_10000: cells times steps per second for 10000S1P (from the median step);
- batch_1h_16s_s: wall seconds for one `simulate` call of 1 h at 1 ms on 16S, all outputs kept (1 GB), the
  median of three after one warm-up call. The warm-up matters on a VM: the first time a process touches
  that much memory the host must supply it, which alone took 0.5-1 s here. Later calls reuse it (about
  0.1 s of page faults; `batch.run` touches its outputs up front, see `_fault_in`), though on a shared VM
  one now and then still pays 0.5-1 s of kernel time: hence the median. The rest, about 0.7 s of CPU, is
  the model: 3600 thermal intervals of about 0.17 ms (a few small matrix products and some 60 small numpy
  calls each, 0.03 ms of it the pack's thermal and resistance update);
- pybamm_step_ratio: PyBaMM Thevenin `sim.step` time over ours for one cell at 1 ms (null without PyBaMM).

All runs use the LG M50 file (two RC branches, Arrhenius, SOC-dependent resistance, entropic OCV) with
5 % resistance and 2 % capacity spread, and a 2 s / 2 s square-wave current like an AI-training load.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from hil.model.batch import simulate
from hil.model.cell import load_cell
from hil.model.pack import Pack

CELL = Path(__file__).resolve().parents[1] / "fixtures" / "cells" / "lg_m50.toml"
VARIATION = dict(resistance_spread=0.05, capacity_spread=0.02, seed=1)


def _square_wave_a(n_steps: int, high_a: float, low_a: float, dt_s: float = 0.001) -> np.ndarray:
    return np.where((np.arange(n_steps) * dt_s // 2.0) % 2 == 0, high_a, low_a)


def step_us(cell, n_series: int, n_parallel: int = 1, n_steps: int = 20_000) -> float:
    pack = Pack(cell, n_series, 0.8, n_parallel=n_parallel, **VARIATION)
    current = _square_wave_a(n_steps, 10.0 * n_parallel, 5.0 * n_parallel)
    for amps in current[:2000]:
        pack.step(amps, 0.001)
    clock = time.perf_counter_ns
    times = np.empty(n_steps)
    for k, amps in enumerate(current):
        start = clock()
        pack.step(amps, 0.001)
        times[k] = clock() - start
    return float(np.median(times)) / 1e3


def batch_s(cell, repeats: int = 3) -> float:
    current = _square_wave_a(3_600_000, 10.0, 5.0)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        simulate(cell, current, 0.001, 0.8, n_series=16, **VARIATION)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def pybamm_step_us(n_steps: int = 300) -> float | None:
    try:
        import pybamm
    except ImportError:
        return None
    pybamm.set_logging_level("ERROR")
    values = pybamm.ParameterValues("ECM_Example")
    values["Current function [A]"] = 10.0
    simulation = pybamm.Simulation(pybamm.equivalent_circuit.Thevenin(), parameter_values=values)
    for _ in range(20):
        simulation.step(dt=0.001)
    times = []
    for _ in range(n_steps):
        start = time.perf_counter_ns()
        simulation.step(dt=0.001)
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="end with one JSON line (the only output)")
    args = parser.parse_args()
    cell = load_cell(CELL)
    ours_1_us = step_us(cell, 1)
    theirs_us = pybamm_step_us()
    step_10000_us = step_us(cell, 10_000, n_steps=3000)
    result = {
        "step_us_16": round(step_us(cell, 16), 2),
        "step_us_1000": round(step_us(cell, 1000), 2),
        "step_us_100s10p": round(step_us(cell, 100, n_parallel=10), 2),
        "cell_steps_per_s_10000": round(10_000 / (step_10000_us * 1e-6)),
        "batch_1h_16s_s": round(batch_s(cell), 3),
        "pybamm_step_ratio": None if theirs_us is None else round(theirs_us / ours_1_us, 1),
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key:28s} {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
