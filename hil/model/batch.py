"""Batch mode: run a whole current profile through a pack at once, vectorised over time.

    result = simulate(cell, current_a, dt_s=0.001, soc0=0.8, n_series=16)
    result["cell_voltage_v"]          # shape (n_steps, n_series): terminal voltage at the end of each step
    result["temperature_c"]           # one row per thermal update (see `run`)

Same physics as `Pack.step`, to rounding: sample k of the result is the state after `step(current_a[k],
dt_s)`. Between two thermal updates (an interval, `pack.thermal_dt_s`) every cell parameter is constant, so
the coulomb count and the RC voltages are fixed linear functions of the currents, and so is the OCV while a
cell's lookup coordinate x stays inside one segment of its table (linear interpolation is affine there).
The interval is cut into blocks of B steps (B divides the interval where it can; about 20). At step j of
block b the terminal voltage of a cell is

    V = c0 + c1 Q(b) + sum_{m<=j} H(j - m) i(m) - sum_r a_r^(j+1) v_r(b)

with Q(b) the charge drawn before the block, i(m) the block's currents, v_r(b) the RC voltages at its start
and H the cell's step response (OCV slope times charge, minus R0, minus each branch's g_r a_r^d). One matrix
product [1, Q(b), i(block), v(block)] @ kernel therefore writes every voltage of the interval straight into
the output array, and another the SOC. The block-start voltages follow v(b+1) = A v(b) + e(b), A = a^B,
whose closed form

    v(b) = A^b (v(0) + sum_{c<b} e(c) / A^(c+1))

is a product with a triangular matrix; it is split into pieces where A^b would underflow. Each branch's
Joule heat needs sum_k v_r(k)^2, a quadratic form in the same inputs, so it comes from their Gram matrices
without forming v_r(k). A cell whose x crosses a table breakpoint inside an interval (the min and max of the
charge tell) gets its OCV looked up step by step instead. The thermal update then runs once per interval,
exactly as in the step API.

Limits, stated plainly: the vectorised path covers packs of one cell per block without an active internal
short (n_parallel > 1 or a short couple the cells' currents to their voltages step by step), with at least
50 steps per thermal interval (fewer cost more per interval than stepping). Anything else runs `Pack.step`
in a loop, with the same result at real-time-step speed. Hysteresis (which depends on |i|, so is not linear
in the current) takes a slower cumulative-sum scan per interval. Measurement faults act on the pack's
`measured_*` arrays at the end of the run, not on the recorded series, which are all true values.
"""
from __future__ import annotations

import math
import mmap

import numpy as np

from hil.errors import ConfigError
from hil.model.cell import CellParams
from hil.model.pack import Pack
from hil.model.tables import Lookup

# exp(-600) is far from float64 underflow (about exp(-708)); a piece of a scan never decays by more.
_MAX_DECAY_LOG = 600.0
# A decay per step (or per block) below exp(-36) is lost in rounding next to any input (float64 epsilon is
# exp(-36)), so it is clipped there: one block then never decays by more than a scan piece allows.
_MIN_STEP_LOG = -36.0
# Below this many steps per thermal interval the per-interval overhead of the vectorised path costs more
# than stepping.
_MIN_VECTOR_STEPS = 50
# Block length: the voltage product costs about (2 + B + rc states) multiply-adds per output, the block scan
# and the per-block bookkeeping favour long blocks; 20 measured best for 16S at 1000 steps per interval.
_BLOCK_STEPS = 20
_BLOCK_RANGE = range(8, 33)
# Up to this many blocks in series the block-start RC voltages join the voltage product as inputs. Each has a
# kernel row that is zero except at its own cell, a waste that grows as n_series^2, so larger packs add them
# with a broadcast multiply-add instead (measured: 7 % faster folded at 16S, 40 % slower at 24S).
_MAX_FOLDED_SERIES = 16


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
        "pack_voltage_v": np.empty(n_steps),
    }
    for name in ("cell_voltage_v", "soc", "pack_voltage_v"):
        _fault_in(result[name])
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
        np.sum(result["cell_voltage_v"], axis=1, out=result["pack_voltage_v"])
    else:
        if dt_s != pack._dt_s:
            pack._change_dt(dt_s)
        work = _Workspace(pack, min(pack._steps_per_update, n_steps))
        start = 0
        while start < n_steps:
            stop = min(start + pack._steps_per_update - pack._steps_pending, n_steps)
            voltage = result["cell_voltage_v"][start:stop]
            _advance(pack, work, current[start:stop], voltage, result["soc"][start:stop])
            # Summed here, while the interval's voltages are still in cache.
            np.matmul(voltage, work.ones, out=result["pack_voltage_v"][start:stop])
            if pack._steps_pending == 0:
                temperature_time_s.append(pack.time_s)
                temperature_c.append(pack.temperature_c.copy())
            start = stop
        _finish(pack, current[-1], result["cell_voltage_v"][-1])
    result["temperature_time_s"] = np.array(temperature_time_s)
    result["temperature_c"] = np.array(temperature_c)
    return result


def _fault_in(array: np.ndarray) -> None:
    """Touch one element per memory page of a new output array, in one sweep.

    The run writes its outputs interval by interval, over most of a second for an hour at 1 ms. Measured on
    a shared VM, repeated 1 h 16S runs faulted in this way paid 0.5-1 s of extra kernel time in 10 of 20
    calls (the host supplying the memory again), touched up front in 1 of 20; the sweep itself is cheap.
    """
    array.reshape(-1)[::max(1, mmap.PAGESIZE // array.itemsize)] = 0.0


def _scan(cum_log: np.ndarray, b: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x(k+1) = a(k) x(k) + b(k) along the last axis, given cum_log(k) = sum_{m<=k} log a(m) (non-increasing).

    Rows are independent (one per cell). Returns x(1..n) with the shape of `b`. Allocates: for the paths
    that are not the common case.
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


def _block_steps(steps_per_interval: int) -> int:
    """A block length that divides the interval (no short last block) near `_BLOCK_STEPS`, else that."""
    divisors = [b for b in _BLOCK_RANGE if steps_per_interval % b == 0]
    return min(divisors, key=lambda b: abs(b - _BLOCK_STEPS)) if divisors else _BLOCK_STEPS


class _Workspace:
    """Buffers and fixed matrices for `_advance`, allocated once per run: fresh memory is slow to fault in.

    Names: `block` = B steps per block; `states` = the n_rc * n_series RC voltages, branch-major like
    `Pack._state[1:1 + n_rc]` flattened; lag d = j - m from the step m of a current to a later step j.
    """

    def __init__(self, pack: Pack, max_steps: int):
        n_series, n_rc = pack.n_series, pack._n_drop - 1
        block = _block_steps(pack._steps_per_update)
        states = n_rc * n_series
        max_blocks = -(-max_steps // block)
        self.n_series, self.n_rc, self.block, self.states = n_series, n_rc, block, states
        self.table = pack._ocv_table
        self.fold_states = n_series <= _MAX_FOLDED_SERIES
        self._pack_views(pack)

        # One row per block: 1, the charge drawn before the block, the block's currents (zero past the end
        # of a short last block), the RC voltages at its start. One more row for the RC voltages after the
        # last block.
        self.inputs = np.zeros((max_blocks + 1, 2 + block + states))
        self.inputs[:, 0] = 1.0
        self.block_charge = self.inputs[:, 1]
        self.block_current = self.inputs[:, 2:2 + block]
        self.block_rc_v = self.inputs[:, 2 + block:]
        self.voltage_inputs = 2 + block + (states if self.fold_states else 0)

        # Voltage kernel: input -> (step in block, cell). Rows: constant, charge before the block, current
        # at each step, then (folded) each RC state, non-zero only at its own cell.
        self.kernel = np.zeros((self.voltage_inputs, block * n_series))
        self.kernel_constant = self.kernel[0].reshape(block, n_series)
        self.kernel_charge = self.kernel[1].reshape(block, n_series)
        self.kernel_current = self.kernel[2:2 + block].reshape(block, block, n_series)
        if self.fold_states:
            step, state = np.meshgrid(np.arange(block), np.arange(states), indexing="ij")
            self.state_entries = (2 + block + state) * self.kernel.shape[1] + step * n_series + state % n_series
        else:
            self.state_term = np.empty((max_blocks, block, n_series))
        self.negative_after = np.empty((block, states))  # [j, s] = -a_s^(j + 1)

        # Toeplitz matrices as a gather from a table indexed by lag: its rows 0..B-2 stay zero (negative
        # lags, the future), row B-1+d holds lag d.
        self.lag = (block - 1) + np.arange(block)[None, :] - np.arange(block)[:, None]
        self.response = np.zeros((2 * block - 1, n_series))
        self.rc_response = np.zeros((2 * block, states))  # row B-1+d: g a^d, d up to B
        # Powers a^e of every RC state in one exp: e = 0..B inside a block, then 0, B, 2B, ... across blocks.
        self.exponents = np.concatenate([np.arange(block + 1.0), block * np.arange(max_blocks + 1.0)])
        self.log_a = np.empty(states)
        self.all_powers = np.empty((self.exponents.size, states))
        self.powers = self.all_powers[:block + 1]  # [d, s] = a_s^d
        self.decay = self.all_powers[block + 1:]  # [b, s] = a_s^(B b)

        # Charge: cumulative sums inside each block (a product with a triangular matrix: np.cumsum is slow),
        # then across blocks. Column 0 of `charge` is 1 for the SOC product.
        self.upper = np.triu(np.ones((block, block)))
        self.within = np.empty((max_blocks, block))
        self.charge = np.ones((max_blocks * block, 2))
        self.charge_blocks = self.charge[:, 1].reshape(max_blocks, block)
        self.soc_kernel = np.empty((2, n_series))
        self.ocv_ends = Lookup(self.table, (2, n_series))
        self.x_ends = np.empty((2, n_series))
        self.x_start = np.empty(n_series)
        self.one_segment = np.empty(n_series, dtype=bool)

        # Block scan: the product of the block currents with `drive_kernel` gives, per block and state, what
        # the block's currents leave at its end, then twice their share of the heat cross term (`_add_rc_heat`).
        self.drive_kernel = np.empty((block, 2 * states))
        self.drive = np.empty((max_blocks, 2 * states))
        self.before = np.tri(max_blocks + 1, max_blocks, -1)  # [b, c] = 1 for c < b
        self.scaled = np.empty((max_blocks, states))

        # Heat: squared powers, their running sums, and the Gram matrix of the block currents binned by
        # (lag d, later step M): bin [d, M] holds the pairs (M - d, M) and (M, M - d).
        self.squares = np.empty((block, states))
        self.double_sum_to_end = 2.0 * np.flipud(np.tril(np.ones((block, block))))  # [M, k] = 2 for k <= B-1-M
        self.double_square_sums = np.empty((block, states))  # [M, s] = 2 sum_{k <= B-1-M} a_s^(2k)
        self.alpha = np.empty(states)
        self.gram_weight = np.empty((block, states))
        later = np.arange(block)[None, :]
        distance = np.arange(block)[:, None]
        self.bin_index = np.where(distance <= later, (later - distance) * block + later, 0)
        # Weights 1 and 2 (one pair or two), halved against the doubled square sums.
        self.bin_weight = np.where(distance <= later, np.where(distance == 0, 0.5, 1.0), 0.0)
        self.gram = np.empty((block, block))
        self.binned = np.empty((block, block))
        self.binned_sums = np.empty((block, states))
        self.heat_terms = np.empty((max_blocks + block, states))
        self.heat_v2 = np.empty(states)
        self.heat_r0 = np.empty(n_series)
        self.last_block_v = np.empty((1, block * n_series))
        self.ones = np.ones(n_series)

    def _pack_views(self, pack: Pack) -> None:
        """Per-cell views of the pack's state and coefficients, which the pack updates in place."""
        drops = slice(1, pack._n_drop)

        def flat(array: np.ndarray) -> np.ndarray:
            view = array.reshape(-1)
            assert np.shares_memory(view, array), "a pack array is not contiguous"
            return view

        self.rc_v = flat(pack._state[drops, :, 0])
        self.a_rc = flat(pack._a[drops, :, 0])
        self.g_rc = flat(pack._g[drops, :, 0])
        self.heat_sum_rc = flat(pack._heat_sum_v2[drops, :, 0])
        self.heat_sum_r0 = pack._heat_sum_v2[0, :, 0]
        self.r0_drop, self.g_r0 = pack._state[0, :, 0], pack._g[0, :, 0]
        self.x, self.g_x = pack._state[-2, :, 0], pack._g[-2, :, 0]
        self.soc, self.g_soc = pack._state[-1, :, 0], pack._g[-1, :, 0]
        self.ocv_offset_v = pack._ocv_offset_v[:, 0]


def _advance(pack: Pack, work: _Workspace, current: np.ndarray, voltage_out: np.ndarray,
             soc_out: np.ndarray) -> None:
    """Advance `pack` by len(current) steps inside one thermal interval; write the series (time, block)."""
    n, n_series, block = current.size, pack.n_series, work.block
    full, short = divmod(n, block)
    blocks = full + (short > 0)
    charge = _load_current(work, current, full, short)
    work.soc_kernel[0] = work.soc
    work.soc_kernel[1] = work.g_soc
    np.matmul(work.charge[:n], work.soc_kernel, out=soc_out)
    crossing = _ocv_kernel(work, work.charge_blocks[:blocks])
    _rc_kernels(work)
    _block_rc_voltages(work, blocks)
    _voltages(work, 0, full, voltage_out[:full * block].reshape(full, block, n_series))
    if short:
        last = work.last_block_v.reshape(1, block, n_series)
        _voltages(work, full, 1, last)
        voltage_out[full * block:] = last[0, :short]
    if crossing is not None:
        x = work.x_start[crossing] + np.multiply.outer(charge, work.g_x[crossing])
        voltage_out[:, crossing] += work.table(x)
    if pack._has_hysteresis:
        _add_hysteresis(pack, current, voltage_out)

    work.rc_v[:] = _add_rc_heat(work, full, short)
    np.multiply(work.g_r0, work.g_r0, out=work.heat_r0)
    work.heat_r0 *= np.dot(current, current)
    work.heat_sum_r0 += work.heat_r0
    np.multiply(work.g_r0, current[-1], out=work.r0_drop)
    np.multiply(work.g_x, charge[-1], out=work.x)
    work.x += work.x_start
    work.soc[:] = soc_out[-1]
    pack.time_s += n * pack._dt_s
    pack._steps_pending += n
    if pack._steps_pending >= pack._steps_per_update:
        pack._update_slow()


def _load_current(work: _Workspace, current: np.ndarray, full: int, short: int) -> np.ndarray:
    """Put the currents into the block inputs; the charge before each block and after each step follow.

    Returns the charge after each of the len(current) steps (a view of `work.charge`).
    """
    n, block = current.size, work.block
    blocks = full + (short > 0)
    block_current = work.block_current[:blocks]
    block_current[:full] = current[:full * block].reshape(full, block)
    if short:
        block_current[full, :short] = current[full * block:]
        block_current[full, short:] = 0.0
    within = work.within[:blocks]
    np.matmul(block_current, work.upper, out=within)
    # block_charge[0] stays 0.
    np.add.accumulate(within[:blocks - 1, -1], out=work.block_charge[1:blocks])
    np.add(within, work.block_charge[:blocks, None], out=work.charge_blocks[:blocks])
    return work.charge[:n, 1]


def _ocv_kernel(work: _Workspace, charge: np.ndarray) -> np.ndarray | None:
    """The constant and charge rows of the voltage kernel: OCV = intercept + slope (x0 + g_x Q) + offset.

    The lookup coordinate x = x0 + g_x Q is monotonic in the charge Q, so a cell stays in one table segment
    (where the OCV is exactly affine) if the segments at the smallest and the largest charge agree. Returns
    the cells that fail (None if none do): their rows hold the offset only, and `_advance` adds their OCV
    step by step.
    """
    x_start, x_ends = work.x_start, work.x_ends
    np.copyto(x_start, work.x)
    x_ends[0] = np.minimum.reduce(charge, axis=None)
    x_ends[1] = np.maximum.reduce(charge, axis=None)
    x_ends *= work.g_x
    x_ends += x_start
    ends = work.ocv_ends
    ends.find_segments(x_ends)
    one_segment = np.equal(ends.index[0], ends.index[1], out=work.one_segment)
    # Written straight into every step's column of the kernel rows (broadcast over the block).
    constant, per_charge = work.kernel_constant, work.kernel_charge
    np.multiply(ends.slope[0], x_start, out=constant)
    constant += ends.intercept[0]
    constant += work.ocv_offset_v
    np.multiply(ends.slope[0], work.g_x, out=per_charge)
    if one_segment.all():
        return None
    crossing = np.flatnonzero(~one_segment)
    constant[:, crossing] = work.ocv_offset_v[crossing]
    per_charge[:, crossing] = 0.0
    return crossing


def _rc_kernels(work: _Workspace) -> None:
    """Everything that depends on this interval's RC parameters: the powers of a, the current rows of the
    voltage kernel, and the weights of the block scan and the heat sums."""
    block, states, g_rc = work.block, work.states, work.g_rc
    np.maximum(work.a_rc, math.exp(_MIN_STEP_LOG), out=work.log_a)
    np.log(work.log_a, out=work.log_a)
    np.multiply.outer(work.exponents, work.log_a, out=work.all_powers)
    np.exp(work.all_powers, out=work.all_powers)
    powers = work.powers
    rc_response = work.rc_response[block - 1:]
    np.multiply(powers, g_rc, out=rc_response)

    # Terminal voltage per amp at lag d: OCV slope times charge, minus each RC branch, minus R0 at lag 0.
    response = work.response[block - 1:]
    np.add.reduce(rc_response[:block].reshape(block, work.n_rc, work.n_series), axis=1, out=response)
    np.subtract(work.kernel_charge[0], response, out=response)
    response[0] -= work.g_r0
    np.take(work.response, work.lag, axis=0, out=work.kernel_current, mode="clip")
    np.negative(powers[1:], out=work.negative_after)
    if work.fold_states:
        np.put(work.kernel, work.state_entries, work.negative_after, mode="clip")

    # Block scan: a block's currents leave sum_m g a^(B-1-m) i(m) at its end.
    drive_kernel = work.drive_kernel
    drive_kernel[:, :states] = rc_response[block - 1::-1]
    # Heat weights (see `_add_rc_heat`): w[m] = sum_{j>=m} g a^(j-m) a^(j+1) = g a^(m+1) sum_{k<=B-1-m} a^(2k),
    # stored doubled next to the drive, and alpha = sum_j a^(2j+2) = a^2 sum_{k<=B-1} a^(2k).
    squares, double_sums = work.squares, work.double_square_sums
    np.multiply(powers[:block], powers[:block], out=squares)
    np.matmul(work.double_sum_to_end, squares, out=double_sums)
    np.multiply(rc_response[1:], double_sums, out=drive_kernel[:, states:])
    np.multiply(squares[1], double_sums[0], out=work.alpha)
    work.alpha *= 0.5
    np.multiply(rc_response[:block], g_rc, out=work.gram_weight)  # g^2 a^d


def _block_rc_voltages(work: _Workspace, blocks: int) -> None:
    """RC voltages at the start of each block and after the last one, into `work.block_rc_v`."""
    block, states, v0 = work.block, work.states, work.rc_v
    carried = work.block_rc_v[:blocks + 1]
    drive = work.drive[:blocks]
    np.matmul(work.block_current[:blocks], work.drive_kernel, out=drive)
    drive = drive[:, :states]
    if -blocks * block * np.minimum.reduce(work.log_a) > _MAX_DECAY_LOG:
        # Decays past float range: the scan in pieces, with each block's decay clipped like a step's.
        block_log = np.maximum(block * work.log_a, _MIN_STEP_LOG)
        carried[0] = v0
        carried[1:] = _scan(np.multiply.outer(block_log, np.arange(1, blocks + 1)), drive.T.copy(), v0).T
        return
    decay = work.decay[:blocks + 1]
    scaled = work.scaled[:blocks]
    np.divide(drive, decay[1:], out=scaled)
    np.matmul(work.before[:blocks + 1, :blocks], scaled, out=carried)
    carried += v0
    carried *= decay


def _voltages(work: _Workspace, first: int, count: int, out: np.ndarray) -> None:
    """Terminal voltages (without hysteresis, and without the OCV of cells that cross a breakpoint) of
    blocks first..first+count-1 into `out`, shape (count, block, n_series)."""
    if count == 0:
        return
    rows = slice(first, first + count)
    np.matmul(work.inputs[rows, :work.voltage_inputs], work.kernel, out=out.reshape(count, -1))
    if not work.fold_states:
        rc_v = work.block_rc_v[rows].reshape(count, work.n_rc, work.n_series)
        negative_after = work.negative_after.reshape(work.block, work.n_rc, work.n_series)
        term = work.state_term[:count]
        for branch in range(work.n_rc):
            np.multiply(rc_v[:, None, branch], negative_after[:, branch], out=term)
            out += term


def _add_rc_heat(work: _Workspace, full: int, short: int) -> np.ndarray:
    """Add each RC voltage squared, summed over the interval's steps, to the pack's heat sums; return the
    RC voltages at the end of the interval.

    In block b, v(j) = a^(j+1) v(b) + sum_{m<=j} g a^(j-m) i(m), so summed over its steps
    sum_j v(j)^2 = alpha v(b)^2 + 2 v(b) sum_m w[m] i(m) + sum_{m,m'} i(m) i(m') g^2 a^d sum_{k<=B-1-M} a^(2k)
    with d = |m - m'| and M = max(m, m'); for the last term the Gram matrix of the block currents is summed
    over all full blocks first, then binned by (d, M). A short last block is summed directly.
    """
    block, states = work.block, work.states
    if full:
        terms = work.heat_terms[:full + block]
        state_terms, gram_terms = terms[:full], terms[full:]
        start_v = work.block_rc_v[:full]
        np.multiply(start_v, work.alpha, out=state_terms)
        state_terms += work.drive[:full, states:]
        state_terms *= start_v
        currents = work.block_current[:full]
        np.matmul(currents.T, currents, out=work.gram)
        np.take(work.gram, work.bin_index, out=work.binned, mode="clip")
        work.binned *= work.bin_weight
        np.matmul(work.binned, work.double_square_sums, out=work.binned_sums)
        np.multiply(work.binned_sums, work.gram_weight, out=gram_terms)
        work.heat_sum_rc += np.add.reduce(terms, axis=0, out=work.heat_v2)
    if not short:
        return work.block_rc_v[full]
    rc_kernel = np.take(work.rc_response, work.lag[:short, :short], axis=0)  # [m, j, s] = g a^(j-m), m <= j
    v = work.powers[1:short + 1] * work.block_rc_v[full] \
        + np.tensordot(work.block_current[full, :short], rc_kernel, axes=1)
    work.heat_sum_rc += np.einsum("js,js->s", v, v)
    return v[-1]


def _add_hysteresis(pack: Pack, current: np.ndarray, voltage_out: np.ndarray) -> None:
    """h relaxes towards -M sign(i) by exp(-rate |i|) per step: a scan with a varying factor."""
    rate_per_amp = pack._hysteresis_rate[:, 0]
    step_log = np.maximum(np.multiply.outer(-rate_per_amp, np.abs(current)), _MIN_STEP_LOG)
    target = -pack.cell.hysteresis_v * np.sign(current)
    h = _scan(np.cumsum(step_log, axis=1), -np.expm1(step_log) * target, pack.cell_hysteresis_v[:, 0])
    voltage_out += h.T
    pack.cell_hysteresis_v[:, 0] = h[:, -1]
    pack._hysteresis_current = None


def _finish(pack: Pack, last_current_a: float, last_voltage_v: np.ndarray) -> None:
    """The per-step state that only the end of the run needs."""
    pack.pack_current_a = float(last_current_a)
    pack.cell_current_a.fill(last_current_a)
    pack.cell_voltage_v[:] = last_voltage_v
    pack._lookup(pack._x, out=pack._ocv)  # no `moved`: the run moved x, so the next step searches again
    pack.faults.measure_cell_voltage(pack.cell_voltage_v, pack.measured_cell_voltage_v)
