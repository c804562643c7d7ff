"""Batch mode: run a whole current profile through a pack at once, vectorised over time.

    result = simulate(cell, current_a, dt_s=0.001, soc0=0.8, n_series=16)
    result["cell_voltage_v"]          # shape (n_steps, n_series): terminal voltage at the end of each step
    result["temperature_c"]           # one row per thermal update (see `run`)

Same physics as `Pack.step`, to rounding: sample k of the result is the state after `step(current_a[k],
dt_s)`. Between two thermal updates every cell parameter is constant, so each linear state (coulomb count,
RC voltages, hysteresis) has a closed form over the whole interval: for x(k+1) = a(k) x(k) + b(k),

    x(k+1) = P(k) (x(0) + sum_{m<=k} b(m) / P(m)),   P(k) = a(0) a(1) ... a(k)

computed with cumulative sums along time. P(m) is split into pieces before it underflows. The thermal
update then runs once per interval, exactly as in the step API.

Limits, stated plainly: the vectorised path covers packs of one cell per block without an active internal
short (n_parallel > 1 or a short couple the cells' currents to their voltages step by step), with at least
50 steps per thermal interval (fewer cost more per interval than stepping). Anything else runs `Pack.step`
in a loop, with the same result at real-time-step speed. Measurement faults act on the
pack's `measured_*` arrays at the end of the run, not on the recorded series, which are all true values.
"""
from __future__ import annotations

import math

import numpy as np

from hil.errors import ConfigError
from hil.model.cell import CellParams
from hil.model.pack import Pack
from hil.model.tables import Lookup

# exp(-600) is far from float64 underflow (about exp(-708)); a piece of a scan never decays by more.
_MAX_DECAY_LOG = 600.0
# A decay per step below exp(-36) is lost in rounding next to any input (float64 epsilon is exp(-36)).
_MIN_STEP_LOG = -36.0
# Steps per block of the RC scan's matrix products: small enough that the products stay cheap.
_BLOCK = 16
_LAG = np.maximum(np.arange(_BLOCK)[None, :] - np.arange(_BLOCK)[:, None], 0)
_CAUSAL = np.tri(_BLOCK).T
# Below this many steps per thermal interval the per-interval overhead of the vectorised path costs more
# than stepping.
_MIN_VECTOR_STEPS = 50


def simulate(cell: CellParams, current_a, dt_s: float, soc0=0.5, *, n_series: int = 1,
             ambient_c: float = 25.0, **pack_options) -> dict[str, np.ndarray]:
    """Build a fresh `Pack(cell, n_series, soc0, ambient_c, **pack_options)` and `run` the profile."""
    return run(Pack(cell, n_series, soc0, ambient_c, **pack_options), current_a, dt_s)


def run(pack: Pack, current_a, dt_s: float) -> dict[str, np.ndarray]:
    """Advance `pack` through `current_a` (A, > 0 discharges), one sample per step of `dt_s`.

    Returns, at the end of each step: `time_s`, `current_a` and `pack_voltage_v` (n_steps,), `cell_voltage_v`
    and `soc` (n_steps, n_series). Temperatures change only at thermal updates, so they are recorded there:
    `temperature_time_s` (the start, then each update) and `temperature_c` (that many rows, n_series).
    """
    current = np.asarray(current_a, dtype=float)
    if current.ndim != 1 or current.size == 0:
        raise ConfigError(f"current_a must be a 1-D profile with at least one sample, got shape {current.shape}")
    if not np.all(np.isfinite(current)):
        raise ConfigError(f"current_a sample {int(np.argmin(np.isfinite(current)))} is not a finite number")
    if not (dt_s > 0 and math.isfinite(dt_s)):
        raise ConfigError(f"dt_s = {dt_s!r}, expected a positive number of seconds")
    n_steps, n_series = current.size, pack.n_series
    result = {
        "time_s": pack.time_s + dt_s * np.arange(1, n_steps + 1),
        "current_a": current.copy(),
        "cell_voltage_v": np.empty((n_steps, n_series)),
        "soc": np.empty((n_steps, n_series)),
    }
    temperature_time_s, temperature_c = [pack.time_s], [pack.temperature_c.copy()]
    if pack.n_parallel > 1 or pack.faults.has_short or \
            round(pack.thermal_dt_s / dt_s) < _MIN_VECTOR_STEPS:
        for k in range(n_steps):
            pack.step(current[k], dt_s)
            result["cell_voltage_v"][k] = pack.cell_voltage_v
            result["soc"][k] = pack.soc
            if pack._steps_pending == 0:
                temperature_time_s.append(pack.time_s)
                temperature_c.append(pack.temperature_c.copy())
    else:
        if dt_s != pack._dt_s:
            pack._change_dt(dt_s)
        work = _Workspace(pack, min(pack._steps_per_update, n_steps))
        start = 0
        while start < n_steps:
            stop = min(start + pack._steps_per_update - pack._steps_pending, n_steps)
            _advance(pack, work, current[start:stop], result["cell_voltage_v"][start:stop],
                     result["soc"][start:stop])
            if pack._steps_pending == 0:
                temperature_time_s.append(pack.time_s)
                temperature_c.append(pack.temperature_c.copy())
            start = stop
    result["pack_voltage_v"] = result["cell_voltage_v"].sum(axis=1)
    result["temperature_time_s"] = np.array(temperature_time_s)
    result["temperature_c"] = np.array(temperature_c)
    return result


def _scan(cum_log: np.ndarray, b: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x(k+1) = a(k) x(k) + b(k) along the last axis, given cum_log(k) = sum_{m<=k} log a(m) (non-increasing).

    Rows are independent (one per cell). Returns x(1..n) with the shape of `b`.
    """
    n = b.shape[-1]
    out = np.empty_like(b)
    if -cum_log[:, -1].min() <= _MAX_DECAY_LOG:
        decay = np.exp(cum_log)
        np.divide(b, decay, out=out)
        np.cumsum(out, axis=1, out=out)
        out += x0[:, None]
        out *= decay
        return out
    # The most decayed row at each step says where a piece must end before P underflows.
    depth = -cum_log.min(axis=0)
    start, x, base = 0, x0, np.zeros_like(x0)
    while start < n:
        reached = depth[start - 1] if start else 0.0
        stop = max(start + 1, int(np.searchsorted(depth, reached + _MAX_DECAY_LOG, side="right")))
        decay = np.exp(cum_log[:, start:stop] - base[:, None])
        piece = out[:, start:stop]
        np.divide(b[:, start:stop], decay, out=piece)
        np.cumsum(piece, axis=1, out=piece)
        piece += x[:, None]
        piece *= decay
        x, base = piece[:, -1], cum_log[:, stop - 1]
        start = stop
    return out


class _Workspace:
    """Buffers for `_advance`, allocated once per run: fresh memory is slow to fault in."""

    def __init__(self, pack: Pack, max_steps: int):
        n_series, n_rc = pack.n_series, pack._n_drop - 1
        self.blocks = -(-max_steps // _BLOCK)
        padded = self.blocks * _BLOCK
        self.x = np.empty((max_steps, n_series))
        self._table = pack._ocv_table
        self._lookups: dict[int, Lookup] = {}
        self.drop = np.empty((max_steps, n_series))
        self.current = np.zeros(padded)
        self.inputs = np.empty((n_rc * n_series, self.blocks, _BLOCK + 1))  # carried state, then inputs
        self.local = np.empty((n_rc * n_series, self.blocks, _BLOCK))
        self.rc_sum = np.empty((n_series, padded))

    def lookup(self, steps: int) -> Lookup:
        """OCV lookup buffers for a chunk of `steps`: a run has at most three chunk lengths."""
        if steps not in self._lookups:
            self._lookups[steps] = Lookup(self._table, (steps, self.x.shape[1]))
        return self._lookups[steps]


def _rc_scan(a: np.ndarray, g: np.ndarray, steps: int, x0: np.ndarray, work: _Workspace) -> np.ndarray:
    """x(k+1) = a x(k) + g i(k) for constant a, g per row (shape (rows,)), i in `work.current`.

    Returns (rows, blocks, _BLOCK) in `work.local`; steps past `steps` are padding. Cumulative sums are slow
    (sequential); a small matrix product per block of `_BLOCK` steps is not. Inside a block, step k holds
    a^(k+1) times the state carried in plus the block's inputs times the triangular matrix of powers of a;
    the carried states come from a scan over blocks, which is `_BLOCK` times shorter.
    """
    blocks = -(-steps // _BLOCK)
    current = work.current[:blocks * _BLOCK].reshape(blocks, _BLOCK)
    inputs, local = work.inputs[:, :blocks], work.local[:, :blocks]
    drive = inputs[:, :, 1:]
    np.multiply(g[:, None, None], current, out=drive)
    log_a = np.log(np.maximum(a, math.exp(_MIN_STEP_LOG)))
    # kernel[r, 0, k] = a^(k + 1) acts on the carried state; kernel[r, 1 + m, k] = a^(k - m) for k >= m on
    # input m of the block.
    kernel = np.empty((a.size, _BLOCK + 1, _BLOCK))
    np.exp(np.multiply.outer(log_a, _LAG[0] + 1), out=kernel[:, 0])
    np.exp(np.multiply.outer(log_a, _LAG), out=kernel[:, 1:])
    kernel[:, 1:] *= _CAUSAL
    own_end = np.matmul(drive, kernel[:, 1:, -1:])[:, :, 0]
    ends = _scan(np.multiply.outer(_BLOCK * log_a, np.arange(1, blocks + 1)), own_end, x0)
    inputs[:, 0, 0] = x0
    inputs[:, 1:, 0] = ends[:, :-1]
    np.matmul(inputs, kernel, out=local)
    return local


def _advance(pack: Pack, work: _Workspace, current: np.ndarray, voltage_out: np.ndarray,
             soc_out: np.ndarray) -> None:
    """Advance `pack` by len(current) steps inside one thermal interval; write the series (time, block)."""
    cell = pack.cell
    n, n_series = current.size, pack.n_series
    state, a, g = pack._state[:, :, 0], pack._a[:, :, 0], pack._g[:, :, 0]
    charge = np.cumsum(current)
    np.multiply.outer(charge, g[-1], out=soc_out)
    soc_out += state[-1]
    x, drop = work.x[:n], work.drop[:n]
    np.multiply.outer(charge, g[-2], out=x)
    x += state[-2]
    work.lookup(n)(x, out=voltage_out)
    np.multiply.outer(current, g[0], out=drop)
    voltage_out -= drop
    pack._heat_sum_v2[0, :, 0] += g[0] ** 2 * np.dot(current, current)

    rc = slice(1, pack._n_drop)
    work.current[:n] = current
    work.current[n:] = 0.0
    rc_v = _rc_scan(a[rc].ravel(), g[rc].ravel(), n, state[rc].ravel(), work)
    rc_v = rc_v.reshape(pack._n_drop - 1, n_series, -1)[:, :, :n]
    rc_sum = work.rc_sum[:, :n]
    np.sum(rc_v, axis=0, out=rc_sum)
    voltage_out -= rc_sum.T
    pack._heat_sum_v2[rc, :, 0] += np.einsum("rij,rij->ri", rc_v, rc_v)
    state[rc] = rc_v[:, :, -1]

    if pack._has_hysteresis:
        rate_per_amp = pack._hysteresis_rate[:, 0]
        step_log = np.maximum(np.multiply.outer(-rate_per_amp, np.abs(current)), _MIN_STEP_LOG)
        target = -cell.hysteresis_v * np.sign(current)
        h = _scan(np.cumsum(step_log, axis=1), -np.expm1(step_log) * target, pack.cell_hysteresis_v[:, 0])
        voltage_out += h.T
        pack.cell_hysteresis_v[:, 0] = h[:, -1]
        pack._hysteresis_current = None
    if cell.ocv_dv_dt_v_per_k is not None:
        voltage_out += pack._ocv_offset_v[:, 0]
    state[-1] = soc_out[-1]
    state[-2] = x[-1]
    pack.pack_current_a = float(current[-1])
    pack.cell_current_a.fill(current[-1])
    pack.cell_voltage_v[:] = voltage_out[-1]
    pack._lookup(pack._x, out=pack._ocv)
    pack.time_s += n * pack._dt_s
    pack._steps_pending += n
    if pack._steps_pending >= pack._steps_per_update:
        pack._update_slow()
    pack.faults.measure_cell_voltage(pack.cell_voltage_v, pack.measured_cell_voltage_v)
