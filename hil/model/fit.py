"""Fit a cell parameter file to an HPPC test: a cycler's log of one cell's time, current and voltage.

    hil model fit hppc_log.csv --capacity-ah 5.0 --soc0 1.0 -o fixtures/cells/mycell.toml

A team validating a new cell runs the FreedomCAR HPPC test on it (`hil profile export hppc` writes the
current) at one temperature and gets the file the rigs load, as data. The input is a CSV whose header names
`time_s`, `current_a` (> 0 discharges) and `voltage_v`, in any order; other columns (the `soc` of
`hil model simulate`, a cycler's own) are ignored. A row's current is taken to have flowed over the interval
that ends at its time, as `hil model simulate` writes it, so the charge and the SOC follow from the rows. A
log may be sparse where nothing changes (a rest every 10 s) if, as cyclers do, it has a row at each step
change; two rows at one time (a step change logged twice) are fine.

What is fitted, and from what:
- **OCV(SOC):** the voltage at the end of each rest of at least `min_rest_s` (default 600 s), at its SOC.
- **R0 and how it varies with SOC:** at each discharge step that starts from rest, the voltage step over
  the current step between the last rest row and the step's first row. That includes what the RC branches
  move in one row period, so a log at 10 ms gives R0 as the shipped cells state it; a 1 s log adds the
  fastest branch's first second. `r0_ohm` is the step nearest SOC 0.5, `[resistance] factor` the others
  relative to it.
- **RC branches (1 or 2):** the relaxation through the rest after the discharge segment nearest SOC 0.5,
  V(t) = V_inf - sum_k A_k exp(-t / tau_k): each tau on a logarithmic grid, then a finer one around the
  best, the amplitudes by linear least squares (the residual decides). For the segment's mean current I and
  length T, R_k = A_k / (I (1 - exp(-T / tau_k))), taking its branches to have started at rest (HPPC's SOC
  steps follow a long rest), and C_k = tau_k / R_k.

The fitted cell is then simulated on the log's current, from the same SOC, and the voltage error (RMS and
largest) printed and written at the head of the file: whether the model fits this cell, in mV.

Measured (tests/model/test_fit.py): on the model's own HPPC of `fixtures/cells/lg_m50.toml` (1 s rows, nine
steps from full) R0 comes back within 3 % at every step, the time constants within 20 % (the cell warms in
each 1 C step), 4.9 mV RMS over the log; on PyBaMM's DFN with Chen2020 (the LG M50's source, physics the
circuit only approximates), 7.5 mV RMS with two branches, 14 mV with one.

The same test at other temperatures (`hil model fit log25.csv log0.csv log40.csv --ambient 25 0 40`) adds the
temperature terms, the first log staying the reference for everything else: the Arrhenius activation energy
from their steps' R0 over the first log's at the same SOC (ln of the ratio against 1/T, through the origin),
and the entropic coefficient dU/dT at each OCV point from their rests' OCV (interpolated) against the first
log's. Measured on the model's own LG M50 at 0, 25 and 40 degC: 19.3 kJ/mol for the file's 20, dU/dT within
0.03 mV/K of its table between the rests.

With a `temperature_c` column (the cell's surface, as cyclers log it with a thermocouple), the thermal keys
are fitted too: the lumped cell's C dT/dt = I (OCV - V) - h (T - ambient), over 60 s windows by least squares.
Measured on the model's own LG M50 log: heat capacity and conductance within 10 % of the file's.

With a charge staircase after the discharge one (`hil profile export hppc --dt 1 --duration 67860 --set
charge_steps=8`: nine steps down, eight back up), the hysteresis is fitted too: the rests after charging
sit on the OCV's upper branch. Each rest is set against the other branch at its SOC (interpolated), M is the
median half-gap, and the OCV table is the branches' middle. The rate is the one whose simulation of the log
fits best (a grid, then the geometric middles either side of the best). Measured on the model's own A123 LFP
cell (M = 10 mV, rate 60), at 1 s and at 2 s rows: M 10.03 mV; the rate 30, less sure, as the current
reverses only once (and in the short regen pulses), where it shows.

Limits: from one log, no Arrhenius term and no entropic coefficient; without a charge staircase, no
hysteresis (an LFP cell's gap between charge and discharge shows as a larger error); without temperatures,
the thermal keys are the model's defaults; a surface sensor lags the core, which the lumped cell does not
have. The OCV below the lowest rest and above the highest is extrapolated linearly from the two nearest
points, kept inside the log's voltage range: a rest at empty and at full replaces the guess.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.errors import ConfigError
from hil.model.batch import run
from hil.model.cell import (
    GAS_CONSTANT_J_PER_MOL_K,
    KELVIN_OFFSET,
    CellParams,
    load_cell,
)
from hil.model.pack import Pack

COLUMNS = ("time_s", "current_a", "voltage_v")
TEMPERATURE_COLUMN = "temperature_c"   # optional: with it, the thermal keys are fitted too
# The thermal fit compares the temperature's change over windows this long with the heat and the loss to
# ambient over them: long enough that a sensor's 0.1 degC steps average out, short next to a 1 h rest.
THERMAL_WINDOW_S = 60.0
COMMENT_WIDTH = 108   # the written file's comment lines, wrapped
SECONDS_PER_HOUR = 3600.0
# A row counts as rest below this fraction of the 1 C current: a cycler's zero reads a few mA.
REST_C = 0.01
# How far the counted SOC may leave 0..1 (a capacity a little off) before the log or the arguments are wrong.
SOC_SLACK = 0.02
# A discharge step smaller than this (in C) moves the voltage too little for its R0 to be read.
MIN_STEP_C = 0.1
# The relaxation fit: the grid's size, the rows it uses at most (log-spaced, so the first seconds, where the
# fast branch lives, keep every row), and the rows per time constant it needs at least.
TAU_GRID_POINTS = 48
TAU_REFINE_POINTS = 9
RELAXATION_ROWS = 1500
MIN_ROWS_PER_TAU = 2
# A row logged at the same time as the one before (a step change) is simulated as this long: the ohmic step.
ZERO_ROW_S = 1e-6
# The hysteresis rate (Plett's gamma, per unit of SOC moved) whose simulation of the log fits best: first of
# these (1 takes a whole cycle to switch branches, 300 a third of a percent of SOC), then the geometric middles
# either side of the best.
HYSTERESIS_RATES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


@dataclass(frozen=True)
class Log:
    path: Path
    time_s: np.ndarray
    current_a: np.ndarray
    voltage_v: np.ndarray
    temperature_c: np.ndarray | None = None   # the cell's surface temperature, when the cycler logged it

    @property
    def dt_s(self) -> np.ndarray:
        """Each row's interval (the one ending at its time); the first row takes the next non-zero one's."""
        steps_s = np.diff(self.time_s)
        first_s = steps_s[steps_s > 0][:1] if np.any(steps_s > 0) else np.ones(1)
        return np.concatenate([first_s, steps_s])


@dataclass(frozen=True)
class Fit:
    cell_text: str        # the cell file, ready to write
    cell: CellParams      # that file, loaded back
    ocv_points: int       # rests read, before the table's ends were extrapolated
    r0_steps: int
    relaxation_soc: float
    relaxation_rms_mv: float
    rms_mv: float
    max_mv: float
    other_errors_mv: tuple[tuple[float, float], ...] = ()   # (RMS, largest) on each log at another temperature
    temperature_rms_c: float | None = None   # the fitted cell's temperature against the log's, when it has one
    hysteresis_pairs: int = 0   # rests after charge set against rests after discharge at the same SOC


def read_log(path: str | Path) -> Log:
    """The log's three columns; a ConfigError names the file, the line and what was expected."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the HPPC log: {error}") from None
    rows = ((n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1)
            if row and "".join(row).strip() and not row[0].lstrip().startswith("#"))
    header = next(rows, None)
    if header is None:
        raise ConfigError(f"{path}: empty; expected a header naming {', '.join(COLUMNS)}, then one row per sample")
    line_no, names = header[0], [name.strip() for name in header[1]]
    missing = [column for column in COLUMNS if column not in names]
    if missing:
        raise ConfigError(f"{path}: line {line_no}: no column {', '.join(missing)} in header {','.join(names)!r}; "
                          f"expected {', '.join(COLUMNS)} (current_a > 0 discharges)")
    columns = [*COLUMNS, *([TEMPERATURE_COLUMN] if TEMPERATURE_COLUMN in names else [])]
    index = [names.index(column) for column in columns]
    values = []
    for line_no, row in rows:
        try:
            numbers = [float(row[i]) for i in index]
        except (ValueError, IndexError):
            raise ConfigError(f"{path}: line {line_no}: expected numbers in columns {', '.join(columns)}, "
                              f"got {','.join(row)!r}") from None
        if not all(math.isfinite(x) for x in numbers):
            raise ConfigError(f"{path}: line {line_no}: every value must be finite, got {','.join(row)!r}")
        if values and numbers[0] < values[-1][0]:   # equal is fine: a cycler logs a step change twice
            raise ConfigError(f"{path}: line {line_no}: time_s {numbers[0]:g} goes back (previous row "
                              f"{values[-1][0]:g}); rows must be in time order")
        values.append(numbers)
    if len(values) < 3:
        raise ConfigError(f"{path}: {len(values)} data rows; an HPPC log has thousands")
    table = np.array(values).T
    return Log(path, *table[:3], temperature_c=table[3] if len(table) > 3 else None)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True in `mask`, stop exclusive."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


@dataclass(frozen=True)
class _Reading:
    """What one log gives on its own: each row's SOC, its long rests, their OCV points, its steps' R0."""
    log: Log
    ambient_c: float
    soc: np.ndarray
    long_rests: list[tuple[int, int]]
    rest_soc: np.ndarray      # the OCV points measured, sorted by SOC
    rest_v: np.ndarray
    rest_after: np.ndarray    # what each rest followed: +1 a discharge, -1 a charge, 0 nothing (the log's start)
    r0_soc: np.ndarray
    r0_ohm: np.ndarray


def fit_hppc(log: Log, capacity_ah: float, soc0: float = 1.0, *, n_rc: int = 2, min_rest_s: float = 600.0,
             name: str = "", ambient_c: float = 25.0, others: tuple[tuple[Log, float], ...] = ()) -> Fit:
    """Fit a cell to `log` (see the module's docstring); the file is checked by loading it back.

    `others`: the same test at other temperatures, as (log, its ambient in degC). They add the Arrhenius
    activation energy (their steps' R0 against this log's at the same SOC) and the entropic coefficient
    (their rests' OCV against this log's); everything else comes from `log`, whose temperature is the
    reference."""
    if not (math.isfinite(capacity_ah) and capacity_ah > 0):
        raise ConfigError(f"--capacity-ah {capacity_ah:g}: expected the cell's capacity in Ah, > 0")
    if not 0.0 <= soc0 <= 1.0:
        raise ConfigError(f"--soc0 {soc0:g}: expected the SOC at the log's start, 0..1")
    if n_rc not in (1, 2):
        raise ConfigError(f"--rc {n_rc}: expected 1 or 2 RC branches")
    main = _read(log, capacity_ah, soc0, min_rest_s, ambient_c)
    readings = [_read(other, capacity_ah, soc0, min_rest_s, other_c) for other, other_c in others]
    for reading in readings:
        if abs(reading.ambient_c - ambient_c) < 1.0:
            raise ConfigError(f"{reading.log.path}: at {reading.ambient_c:g} degC, within 1 K of {log.path.name}'s "
                              f"{ambient_c:g} degC; a log at another temperature must be at least that far from it")
    hysteresis = _hysteresis(main)
    # Each rest's voltage moved onto the branches' middle, the model's OCV (without hysteresis, rests at one SOC
    # merged).
    shift_v = hysteresis.volts if hysteresis is not None else 0.0
    main, readings = _centred(main, shift_v), [_centred(reading, shift_v) for reading in readings]
    ocv_soc, ocv_v, raised = _ocv_table(main)
    reference = int(np.argmin(np.abs(main.r0_soc - 0.5)))
    rc, relaxation_soc, relaxation_rms_v = _relaxation(log, main.soc, main.long_rests, n_rc, min_rest_s)
    temperature = _temperature_terms(main, readings, ocv_soc) if readings else None
    thermal = _thermal(main, ocv_soc, ocv_v) if log.temperature_c is not None else None

    def text(check: str, fitted_hysteresis: _Hysteresis | None) -> str:
        return _cell_text(log, name or log.path.stem, capacity_ah, soc0, check, (ocv_soc, ocv_v, raised),
                          (main.r0_soc, main.r0_ohm, reference), rc, relaxation_soc, relaxation_rms_v, ambient_c,
                          temperature, thermal, fitted_hysteresis)

    if hysteresis is not None:
        hysteresis = _hysteresis_rate(hysteresis, lambda candidate: _load_text(text("", candidate), log.path),
                                      log, soc0, ambient_c)
    cell = _load_text(text("Not yet simulated.", hysteresis), log.path)
    checks, lines = [], []
    for reading in (main, *readings):
        voltage_v, temperature_c = _simulate(cell, reading.log, soc0, reading.ambient_c)
        error_v = voltage_v - reading.log.voltage_v
        rms_mv, max_mv = float(np.sqrt(np.mean(error_v ** 2)) * 1e3), float(np.abs(error_v).max() * 1e3)
        line = (f"Simulated on {reading.log.path.name}'s current from SOC {soc0:g} at {reading.ambient_c:g} degC: "
                f"voltage error {rms_mv:.2f} mV RMS, {max_mv:.1f} mV at most")
        rms_c = None
        if reading.log.temperature_c is not None:
            rms_c = float(np.sqrt(np.mean((temperature_c - reading.log.temperature_c) ** 2)))
            line += f"; temperature {rms_c:.2f} degC RMS"
        checks.append((rms_mv, max_mv, rms_c))
        lines.append(line + ".")
    (rms_mv, max_mv, rms_c), others_checked = checks[0], checks[1:]
    return Fit(text("\n".join(lines), hysteresis), cell, len(main.rest_soc), len(main.r0_soc), relaxation_soc,
               relaxation_rms_v * 1e3, rms_mv, max_mv, tuple((rms, peak) for rms, peak, _ in others_checked), rms_c,
               hysteresis.pairs if hysteresis is not None else 0)


def _read(log: Log, capacity_ah: float, soc0: float, min_rest_s: float, ambient_c: float) -> _Reading:
    dt_s = log.dt_s
    soc = soc0 - np.cumsum(log.current_a * dt_s) / (SECONDS_PER_HOUR * capacity_ah)
    outside = np.flatnonzero((soc < -SOC_SLACK) | (soc > 1 + SOC_SLACK))
    if outside.size:
        k = int(outside[0])
        raise ConfigError(f"{log.path}: at time_s {log.time_s[k]:g} the SOC counted from --soc0 {soc0:g} with "
                          f"--capacity-ah {capacity_ah:g} reaches {soc[k]:.3f}, outside 0..1: is current_a in A "
                          "(> 0 discharging), and are the capacity and the starting SOC right?")
    rest = np.abs(log.current_a) <= REST_C * capacity_ah
    runs = _runs(rest)
    long_rests = [(a, b) for a, b in runs if dt_s[a:b].sum() >= min_rest_s]
    rest_soc, rest_v, rest_after = _rest_points(log, soc, long_rests, min_rest_s, runs, rest)
    r0_soc, r0_ohm = _step_resistances(log, soc, rest, capacity_ah)
    return _Reading(log, ambient_c, soc, long_rests, rest_soc, rest_v, rest_after, r0_soc, r0_ohm)


def _rest_points(log: Log, soc: np.ndarray, long_rests, min_rest_s: float, runs, rest: np.ndarray):
    """(SOC, voltage, what the rest followed: +1 discharge, -1 charge, 0 nothing) at the end of each long rest,
    sorted by SOC."""
    if len(long_rests) < 2:
        longest = max(runs, key=lambda r: log.time_s[r[1] - 1] - log.time_s[r[0]], default=None)
        seen = (f"the longest is {log.time_s[longest[1] - 1] - log.time_s[longest[0]]:g} s from time_s "
                f"{log.time_s[longest[0]]:g}" if longest else "the current never rests")
        raise ConfigError(f"{log.path}: {len(long_rests)} rest(s) of at least {min_rest_s:g} s; the OCV needs two or "
                          f"more at different SOC ({seen}); lower --min-rest, or rest the cell longer between steps")
    ends = [b - 1 for _, b in long_rests]
    # The last row with current before each rest: its sign is the branch of the hysteresis the rest sits on.
    last_active = np.maximum.accumulate(np.where(rest, -1, np.arange(rest.size)))
    before = [int(last_active[a - 1]) if a > 0 else -1 for a, _ in long_rests]
    after = [int(np.sign(log.current_a[k])) if k >= 0 else 0 for k in before]
    points = sorted(zip(soc[ends].tolist(), log.voltage_v[ends].tolist(), after))
    ocv_soc, ocv_v, ocv_after = [], [], []
    for s, v, a in points:   # two rests at one SOC (within 0.01 %) and on one branch: the later-sorted one stands
        if ocv_soc and s - ocv_soc[-1] < 1e-4 and a == ocv_after[-1]:
            ocv_soc[-1], ocv_v[-1] = s, v
        else:
            ocv_soc.append(s)
            ocv_v.append(v)
            ocv_after.append(a)
    if max(ocv_soc) - min(ocv_soc) < 1e-4:
        raise ConfigError(f"{log.path}: every rest of at least {min_rest_s:g} s is at SOC {ocv_soc[0]:.4f}; the OCV "
                          "needs rests at two or more SOCs")
    return np.clip(ocv_soc, 0.0, 1.0), np.array(ocv_v), np.array(ocv_after)


@dataclass(frozen=True)
class _Hysteresis:
    volts: float          # M: half the gap between the rests after charge and after discharge
    pairs: int            # the rests it was read from, each set against the other branch at its SOC
    rate: float = 0.0     # gamma, chosen by simulating the log
    rate_rms_mv: float = math.nan


def _hysteresis(reading: _Reading) -> _Hysteresis | None:
    """Half the gap between the OCV branches, when the log rests after both charge and discharge over a common
    range of SOC (a charge staircase after the discharge one): each rest against the other branch, interpolated
    at its SOC; the median of those half-gaps. None without both branches, or with no gap between them."""
    soc, volts, after = reading.rest_soc, reading.rest_v, reading.rest_after
    branches = [(soc[after == sign], volts[after == sign]) for sign in (1, -1)]
    if min(branch_soc.size for branch_soc, _ in branches) < 2:
        return None
    half_gaps = []
    for (own_soc, own_v), (other_soc, other_v), sign in (branches[0], branches[1], 1), (branches[1], branches[0], -1):
        inside = (own_soc >= other_soc.min()) & (own_soc <= other_soc.max())
        half_gaps += (sign * (np.interp(own_soc[inside], other_soc, other_v) - own_v[inside]) / 2).tolist()
    if not half_gaps or np.median(half_gaps) <= 0:
        return None
    return _Hysteresis(float(np.median(half_gaps)), len(half_gaps))


def _centred(reading: _Reading, hysteresis_v: float) -> _Reading:
    """The reading with each rest's voltage moved by the hysteresis onto the middle of the two branches: after
    a discharge a cell rests M below it, after a charge M above."""
    moved = reading.rest_v + reading.rest_after * hysteresis_v
    order = np.lexsort((moved, reading.rest_soc))
    soc, volts = reading.rest_soc[order], moved[order]
    keep = np.r_[np.diff(soc) >= 1e-4, True]   # the two branches' rests at one SOC: one point, their middle
    merged_v = np.array([volts[(soc >= s - 1e-4) & (soc <= s)].mean() for s in soc[keep]])
    return dataclasses.replace(reading, rest_soc=soc[keep], rest_v=merged_v, rest_after=np.zeros(keep.sum(), int))


def _hysteresis_rate(hysteresis: _Hysteresis, cell_for, log: Log, soc0: float, ambient_c: float) -> _Hysteresis:
    """The rate whose cell (`cell_for(candidate)`) simulates the log with the least RMS error, of HYSTERESIS_RATES
    and then the geometric middles either side of the best: how fast the cell moves from one branch to the
    other is seen where the current reverses."""
    def tried(rate: float) -> _Hysteresis:
        candidate = dataclasses.replace(hysteresis, rate=rate)
        voltage_v, _ = _simulate(cell_for(candidate), log, soc0, ambient_c)
        rms_mv = float(np.sqrt(np.mean((voltage_v - log.voltage_v) ** 2)) * 1e3)
        return dataclasses.replace(candidate, rate_rms_mv=rms_mv)

    grid = [tried(rate) for rate in HYSTERESIS_RATES]
    k = min(range(len(grid)), key=lambda i: grid[i].rate_rms_mv)
    middles = [tried(math.sqrt(grid[k].rate * grid[j].rate)) for j in (k - 1, k + 1) if 0 <= j < len(grid)]
    return min([grid[k], *middles], key=lambda candidate: candidate.rate_rms_mv)


def _ocv_table(reading: _Reading) -> tuple[np.ndarray, np.ndarray, int]:
    """The rests' OCV, kept non-decreasing and extended to SOC 0 and 1; and how many points were raised for
    it (noise between two close points)."""
    soc_points, volts = reading.rest_soc, reading.rest_v
    monotone = np.maximum.accumulate(volts)
    raised = int(np.count_nonzero(monotone > volts))
    low_v, high_v = float(reading.log.voltage_v.min()), float(reading.log.voltage_v.max())
    if soc_points[0] > 0:
        slope = (monotone[1] - monotone[0]) / (soc_points[1] - soc_points[0])
        soc_points, monotone = np.r_[0.0, soc_points], np.r_[np.clip(monotone[0] - slope * soc_points[0], low_v,
                                                                      monotone[0]), monotone]
    if soc_points[-1] < 1:
        slope = (monotone[-1] - monotone[-2]) / (soc_points[-1] - soc_points[-2])
        soc_points, monotone = np.r_[soc_points, 1.0], np.r_[monotone, np.clip(
            monotone[-1] + slope * (1 - soc_points[-1]), monotone[-1], high_v)]
    return soc_points, monotone, raised


def _thermal(reading: _Reading, ocv_soc: np.ndarray, ocv_v: np.ndarray) -> tuple[float, float, int]:
    """(heat capacity J/K, conductance to ambient W/K, windows used) from the log's temperature.

    The lumped cell of the model: C dT/dt = Q - h (T - T_ambient), Q the heat the cell makes, I (OCV - V)
    (what the terminals lose to the OCV: the R0 and RC losses together). Over each window, the temperature's
    change is a ∫Q - b ∫(T - T_ambient) with a = 1/C and b = h/C, a least-squares fit through all windows."""
    log = reading.log
    dt_s, temperature_c = log.dt_s, log.temperature_c
    heat_w = log.current_a * (np.interp(reading.soc, ocv_soc, ocv_v) - log.voltage_v)
    heat_j = np.r_[0.0, np.cumsum(heat_w * dt_s)][1:]
    excess_ks = np.r_[0.0, np.cumsum((temperature_c - reading.ambient_c) * dt_s)][1:]
    starts = np.searchsorted(log.time_s, np.arange(log.time_s[0], log.time_s[-1] - THERMAL_WINDOW_S, THERMAL_WINDOW_S))
    ends = np.searchsorted(log.time_s, log.time_s[starts] + THERMAL_WINDOW_S)
    keep = ends < log.time_s.size
    starts, ends = starts[keep], ends[keep]
    if starts.size < 3:
        raise ConfigError(f"{log.path}: {starts.size} windows of {THERMAL_WINDOW_S:g} s; the thermal fit needs a log "
                          "of minutes, with the temperature rising under load and falling at rest")
    design = np.column_stack([heat_j[ends] - heat_j[starts], -(excess_ks[ends] - excess_ks[starts])])
    rise_k = temperature_c[ends] - temperature_c[starts]
    (a, b), *_ = np.linalg.lstsq(design, rise_k, rcond=None)
    if not (a > 0 and b >= 0):
        raise ConfigError(f"{log.path}: the temperature_c column does not rise with the cell's heat and fall back "
                          f"to --ambient {reading.ambient_c:g} degC (fit: 1/C = {a:.3g}, h/C = {b:.3g}); is it the "
                          "cell's temperature, and the ambient right?")
    return 1.0 / a, b / a, int(starts.size)


@dataclass(frozen=True)
class _Temperature:
    activation_energy_j_per_mol: float
    dv_dt_v_per_k: np.ndarray     # at each point of the OCV table
    steps: int                    # the steps of the other logs the activation energy comes from
    logs: str                     # those logs, for the file's comments


def _temperature_terms(main: _Reading, others: list[_Reading], table_soc: np.ndarray) -> _Temperature:
    """Arrhenius: ln(R0_T / R0_ref) = Ea / R_gas (1/T - 1/T_ref) at each step of another log inside this log's
    SOC range (R0 read at the same SOC), fitted through the origin. Entropic: dU/dT at each table point, the
    slope of the other logs' rest OCV (interpolated) minus this log's, over the temperature difference."""
    x, y = [], []
    kelvin_ref = main.ambient_c + KELVIN_OFFSET
    for other in others:
        inside = (other.r0_soc >= main.r0_soc[0]) & (other.r0_soc <= main.r0_soc[-1])
        ratio = other.r0_ohm[inside] / np.interp(other.r0_soc[inside], main.r0_soc, main.r0_ohm)
        x += [1.0 / (other.ambient_c + KELVIN_OFFSET) - 1.0 / kelvin_ref] * int(inside.sum())
        y += np.log(ratio).tolist()
    if not x:
        raise ConfigError(f"{others[0].log.path}: no discharge step at an SOC inside {main.log.path.name}'s "
                          f"({main.r0_soc[0]:.2f}..{main.r0_soc[-1]:.2f}); the Arrhenius term compares R0 at the "
                          "same SOC")
    x, y = np.array(x), np.array(y)
    activation_j_per_mol = float(GAS_CONSTANT_J_PER_MOL_K * (x @ y) / (x @ x))
    ref_v = np.interp(table_soc, main.rest_soc, main.rest_v)
    shifts, deltas = [], []
    for other in others:
        covered = (table_soc >= max(other.rest_soc[0], main.rest_soc[0])) & (
            table_soc <= min(other.rest_soc[-1], main.rest_soc[-1]))
        shifts.append(np.where(covered, np.interp(table_soc, other.rest_soc, other.rest_v) - ref_v, np.nan))
        deltas.append(other.ambient_c - main.ambient_c)
    shifts, deltas = np.array(shifts), np.array(deltas)[:, None]
    known = ~np.isnan(shifts)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.nansum(shifts * deltas, axis=0) / np.sum(np.where(known, deltas ** 2, 0.0), axis=0)
    measured = known.any(axis=0)
    # Table points no other log's rests reach (the extrapolated ends) take the nearest measured slope.
    dv_dt = np.interp(table_soc, table_soc[measured], slope[measured]) if measured.any() else np.zeros_like(table_soc)
    names = ", ".join(f"{o.log.path.name} ({o.ambient_c:g} degC)" for o in others)
    return _Temperature(activation_j_per_mol, dv_dt, len(y), names)


def _step_resistances(log: Log, soc: np.ndarray, rest: np.ndarray, capacity_ah: float):
    """(SOC, R0) of each discharge step from rest, sorted by SOC."""
    current, voltage = log.current_a, log.voltage_v
    starts = np.flatnonzero(rest[:-1] & (current[1:] >= MIN_STEP_C * capacity_ah)) + 1
    if starts.size == 0:
        raise ConfigError(f"{log.path}: no discharge step from rest of at least {MIN_STEP_C * capacity_ah:g} A "
                          f"({MIN_STEP_C:g} C); R0 is read off the voltage step of one (HPPC's 10 s pulses)")
    r0_ohm = (voltage[starts - 1] - voltage[starts]) / (current[starts] - current[starts - 1])
    bad = np.flatnonzero(r0_ohm <= 0)
    if bad.size:
        k = int(starts[bad[0]])
        raise ConfigError(f"{log.path}: at time_s {log.time_s[k]:g} the voltage rises from {voltage[k - 1]:.4f} to "
                          f"{voltage[k]:.4f} V as a {current[k]:g} A discharge starts; expected it to fall "
                          "(is current_a > 0 for discharge?)")
    order = np.argsort(soc[starts - 1])
    step_soc, step_r = soc[starts - 1][order], r0_ohm[order]
    keep = np.r_[True, np.diff(step_soc) > 1e-4]   # the table's SOC must increase strictly
    return np.clip(step_soc[keep], 0.0, 1.0), step_r[keep]


def _relaxation(log: Log, soc: np.ndarray, long_rests, n_rc: int, min_rest_s: float):
    """((R_k, C_k) per branch, the SOC, the fit's RMS error in V) from the rest after the discharge segment
    nearest SOC 0.5."""
    candidates = [(a, b) for a, b in long_rests if a > 0 and log.current_a[a - 1] > 0]
    if not candidates:
        raise ConfigError(f"{log.path}: no rest of at least {min_rest_s:g} s follows a discharge; the RC branches are "
                          "fitted to the voltage's relaxation after one (HPPC's SOC steps)")
    start, stop = min(candidates, key=lambda r: abs(soc[r[0]] - 0.5))
    # The segment: the rows before the rest at the current its last row had (within 5 %).
    last_a, segment = log.current_a[start - 1], start - 1
    while segment > 0 and abs(log.current_a[segment - 1] - last_a) <= 0.05 * last_a:
        segment -= 1
    current_a = float(np.mean(log.current_a[segment:start]))
    length_s = float(log.dt_s[segment:start].sum())
    t = log.time_s[start:stop] - log.time_s[start - 1]
    v = log.voltage_v[start:stop]
    pick = np.unique(np.geomspace(1, t.size, min(RELAXATION_ROWS, t.size)).astype(int) - 1)
    t, v = t[pick], v[pick]
    # The fastest branch that can be told apart is a few times the first row's delay after the segment's end
    # (a cycler may log a rest more sparsely as it goes on); the slowest, half the rest.
    tau_min_s, tau_max_s = MIN_ROWS_PER_TAU * float(t[0]), float(t[-1]) / 2
    where = f"{log.path}: the rest from time_s {log.time_s[start]:g} at SOC {soc[start]:.3f}"
    if not tau_max_s > tau_min_s:
        raise ConfigError(f"{where} lasts {t[-1]:g} s, too short for time constants above {tau_min_s:g} s; "
                          "rest longer, or log the rest's first seconds more densely")
    fitted = _fit_exponentials(t, v, n_rc, tau_min_s, tau_max_s)
    if fitted is None:
        raise ConfigError(f"{where}: the voltage does not rise back after the discharge ({v[0]:.4f} V, then "
                          f"{v[-1]:.4f} V); no relaxation with positive amplitudes fits")
    taus, amplitudes, rms_v = fitted
    rc = []
    for tau_s, amplitude_v in zip(taus, amplitudes):
        r_ohm = amplitude_v / (current_a * (1.0 - math.exp(-length_s / tau_s)))
        rc.append((r_ohm, tau_s / r_ohm, tau_s))
    return rc, float(soc[start]), rms_v


def _fit_exponentials(t: np.ndarray, v: np.ndarray, n: int, tau_min_s: float, tau_max_s: float):
    """(taus, amplitudes, RMS error) of V_inf - sum A_k exp(-t / tau_k) fitted to (t, v), every A_k > 0; None
    when no such fit exists (the voltage does not relax upwards)."""
    grid = np.geomspace(tau_min_s, tau_max_s, TAU_GRID_POINTS)
    best = _best_taus(t, v, itertools.combinations(grid, n))
    if best is None:
        return None
    ratio = grid[1] / grid[0]
    finer = [np.geomspace(tau / ratio, tau * ratio, TAU_REFINE_POINTS) for tau in best[0]]
    refined = _best_taus(t, v, (taus for taus in itertools.product(*finer) if np.all(np.diff(taus) > 0)))
    taus, amplitudes, sse = min((best, refined or best), key=lambda b: b[2])
    return taus, amplitudes, math.sqrt(sse / t.size)


def _best_taus(t, v, candidates):
    best = None
    for taus in candidates:
        basis = np.column_stack([np.ones_like(t)] + [-np.exp(-t / tau) for tau in taus])
        coef = np.linalg.lstsq(basis, v, rcond=None)[0]
        if np.any(coef[1:] <= 0):
            continue
        sse = float(np.sum((basis @ coef - v) ** 2))
        if best is None or sse < best[2]:
            best = (tuple(float(tau) for tau in taus), coef[1:].tolist(), sse)
    return best


def _numbers(values, digits: int) -> str:
    return "[" + ", ".join(f"{x:.{digits}g}" for x in values) + "]"


def _cell_text(log: Log, name: str, capacity_ah: float, soc0: float, check: str, ocv, r0, rc,
               relaxation_soc: float, relaxation_rms_v: float, ambient_c: float,
               temperature: _Temperature | None, thermal: tuple[float, float, int] | None,
               hysteresis: _Hysteresis | None) -> str:
    """The cell file: where each value came from in comments, `check` (the voltage error) at its head."""
    ocv_soc, ocv_v, raised = ocv
    r0_soc, r0_ohm, reference = r0
    missing = [] if temperature is not None else ["the Arrhenius term and entropic coefficient (one temperature)"]
    if hysteresis is None:
        missing.append("hysteresis (no rests after charging to set against those after discharging)")
    if thermal is None:
        missing.append("thermal keys (the model's defaults)")
    limits = "Not fitted: " + "; ".join(missing) if missing else "Every table fitted"
    hours = (log.time_s[-1] - log.time_s[0]) / 3600
    source = (f"Fitted by `hil model fit` (hil/model/fit.py) to the HPPC log {log.path.name} at {ambient_c:g} degC: "
              f"{log.time_s.size} rows over {hours:.2f} h, from SOC {soc0:g}, capacity {capacity_ah:g} Ah as given.")
    ends = "Check the OCV ends: below and above the rests they are extrapolated."
    header = [source, *check.splitlines(), f"{limits}. {ends}"]
    lines = [
        *(f"# {line}" for text in header for line in textwrap.wrap(text, COMMENT_WIDTH)),
        f"name = {_toml_string(name)}",
        f"capacity_ah = {capacity_ah:g}",
        f"r0_ohm = {r0_ohm[reference]:.6g}             # the discharge step at SOC {r0_soc[reference]:.3f}",
        "",
        f"[ocv]   # the end of each rest of the log{_raised_note(raised)}"
        + ("; the middle of the charge and discharge branches" if hysteresis is not None else ""),
        f"soc   = {_numbers(ocv_soc, 6)}",
        f"volts = {_numbers(ocv_v, 6)}",
    ]
    if temperature is not None:
        lines += [f"# dU/dT from the rests of {temperature.logs} against this log's",
                  f"dv_dt_v_per_k = {_numbers(temperature.dv_dt_v_per_k, 3)}", f"reference_c = {ambient_c:g}"]
    for r_ohm, c_f, tau_s in rc:
        source = (f"tau {tau_s:.3g} s, from the relaxation at SOC {relaxation_soc:.3f} "
                  f"({relaxation_rms_v * 1e3:.2f} mV RMS)")
        lines += ["", f"[[rc]]   # {source}", f"r_ohm = {r_ohm:.6g}", f"c_f = {c_f:.6g}"]
    if r0_soc.size >= 2 or temperature is not None:
        lines += ["", "[resistance]   # it scales r0_ohm and the RC branches"]
    if r0_soc.size >= 2:
        lines += ["# R0 of each discharge step over r0_ohm", f"soc    = {_numbers(r0_soc, 6)}",
                  f"factor = {_numbers(r0_ohm / r0_ohm[reference], 6)}"]
    if temperature is not None:
        arrhenius = f"{temperature.activation_energy_j_per_mol:.5g}"
        lines += [f"# from R0 at {temperature.steps} steps of {temperature.logs}",
                  f"activation_energy_j_per_mol = {arrhenius}", f"reference_c = {ambient_c:g}"]
    if hysteresis is not None:
        lines += ["", f"[hysteresis]   # volts: the median half-gap of {hysteresis.pairs} rests against the other "
                      "branch at their SOC",
                  f"# rate: the one whose simulation of the log fits best ({hysteresis.rate_rms_mv:.2f} mV RMS)",
                  f"volts = {hysteresis.volts:.4g}", f"rate = {hysteresis.rate:.3g}"]
    if thermal is not None:
        heat_capacity, h_ambient, windows = thermal
        how = (f"from temperature_c over {windows} windows of {THERMAL_WINDOW_S:g} s: "
               "C dT/dt = I (OCV - V) - h (T - ambient)")
        lines += ["", f"[thermal]   # {how}", f"heat_capacity_j_per_k = {heat_capacity:.4g}",
                  f"h_ambient_w_per_k = {h_ambient:.4g}"]
    return "\n".join(lines) + "\n"


def _raised_note(raised: int) -> str:
    return f"; {raised} point(s) raised to keep it non-decreasing" if raised else ""


def _toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _load_text(text: str, source: Path) -> CellParams:
    """The fitted file, loaded as a rig would: a fit the loader refuses (say, an implausible resistance from a
    log in mA) fails here, naming the log, instead of when a rig loads it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fitted.toml"
        path.write_text(text)
        try:
            return load_cell(path)
        except ConfigError as error:
            raise ConfigError(f"{source}: the fitted cell is not valid: {str(error).replace(str(path), 'fit')}; "
                              "are current_a in A and voltage_v in V?") from None


def _simulate(cell: CellParams, log: Log, soc0: float, ambient_c: float) -> tuple[np.ndarray, np.ndarray]:
    """The fitted cell's voltage and temperature at each row, on the log's current."""
    pack, dt_s = Pack(cell, 1, soc0, ambient_c), log.dt_s
    if np.ptp(dt_s) <= 1e-6 * dt_s.mean():
        result = run(pack, log.current_a, float(dt_s.mean()))
        # temperatures move at the thermal updates only: each row holds the last one's
        updated = np.searchsorted(result["temperature_time_s"], result["time_s"] + 1e-9, side="right") - 1
        return result["cell_voltage_v"][:, 0], result["temperature_c"][updated, 0]
    voltage_v, temperature_c = np.empty(log.current_a.size), np.empty(log.current_a.size)
    for k, (current_a, step_s) in enumerate(zip(log.current_a.tolist(), dt_s.tolist())):
        pack.step(current_a, max(step_s, ZERO_ROW_S))
        voltage_v[k], temperature_c[k] = pack.cell_voltage_v[0], pack.temperature_c[0]
    return voltage_v, temperature_c
