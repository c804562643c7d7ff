"""Equivalent-circuit pack model for the real-time loop: n_series blocks of n_parallel cells each.

Each cell is a Thevenin circuit: OCV(SOC, T) plus hysteresis, R0, and 1 to 3 RC branches (see `cell.py` for
the parameter file). Current > 0 discharges (the PyBaMM convention). `step(current_a, dt_s)` advances every
cell by `dt_s` with the current held (zero-order hold); the RC branches, the coulomb count and the
hysteresis are discretised exactly for a held current, so any `dt_s` is stable and exact for a piecewise
constant current.

Parallel cells share their block's current according to their impedance and state: each step solves
sum_j (E_j - V) / R_j = I for the block voltage V, vectorised over all blocks, where E_j and R_j are the
cell's open-circuit part and effective resistance over the step (including the OCV slope times the charge
moved, so the solution is exact while the SOC stays in one OCV-table segment). An internal short
fault joins that solve. Cells in one block share the block's terminal voltage.

State lives in preallocated arrays that `step` updates in place; callers may keep references to them:

- per block, shape (n_series,): `cell_voltage_v` (true terminal voltage), `soc` (capacity-weighted mean of
  the block's cells), `temperature_c` (the block's hottest cell), `measured_cell_voltage_v` and
  `measured_temperature_c` (what the BMS front end reads, after measurement faults);
- per cell, shape (n_series, n_parallel): `cell_soc`, `cell_temperature_c`, `cell_current_a`,
  `cell_heat_w`, `cell_r0_ohm`, `capacity_ah`; `rc_voltage_v` is (n_rc, n_series, n_parallel).

Slow effects run at `thermal_dt_s` (1 s by default, rounded to whole steps): the thermal network
(`thermal.py`) integrates the Joule heat averaged over the interval (I^2 R0 plus each RC branch's V^2 / R),
then the resistances follow the new temperature (Arrhenius) and SOC, and the OCV its entropic term. The
temperature readings therefore move once per interval. Hysteresis enters the parallel solve one step late.

Cell-to-cell variation (normal, clipped at 3 sigma) in capacity, resistance and initial SOC is drawn from
`seed`, so a seed always builds the same pack; voltage noise uses an independent stream of the same seed.
`pack_seed`, when given, draws the variation instead, so one pack can be run under other noise.
Ageing is given as state of health: `soh_capacity` (remaining capacity fraction) and `soh_resistance`
(resistance growth factor), scalars or arrays that broadcast to (n_series, n_parallel).
"""
from __future__ import annotations

import math

import numpy as np

from hil.errors import ConfigError
from hil.model.cell import CellParams
from hil.model.faults import Faults
from hil.model.tables import Lookup, UniformTable
from hil.model.thermal import ThermalNetwork
from hil.reductions import amax

SECONDS_PER_HOUR = 3600.0


def _per_cell(value, shape: tuple[int, int], name: str, *, low: float, high: float | None = None) -> np.ndarray:
    try:
        array = np.broadcast_to(np.asarray(value, dtype=float), shape).copy()
    except ValueError:
        raise ConfigError(f"pack: {name} has shape {np.shape(value)}, which does not fit the pack's "
                          f"(n_series, n_parallel) = {shape}") from None
    if not np.all(np.isfinite(array)) or np.any(array < low) or (high is not None and np.any(array > high)):
        raise ConfigError(f"pack: {name} = {value!r}, expected values in {low}..{high if high is not None else 'inf'}")
    return array


class Pack:
    def __init__(self, cell: CellParams, n_series: int, soc0=0.5, ambient_c: float = 25.0, *,
                 n_parallel: int = 1, seed: int = 0, pack_seed: int | None = None, capacity_spread: float = 0.0,
                 resistance_spread: float = 0.0, soc_spread: float = 0.0, soh_capacity=1.0,
                 soh_resistance=1.0, h_ambient_w_per_k: float | None = None, thermal_dt_s: float = 1.0):
        for name, value in (("n_series", n_series), ("n_parallel", n_parallel)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ConfigError(f"pack: {name} = {value!r}, expected a whole number >= 1")
        for name, value in (("capacity_spread", capacity_spread), ("resistance_spread", resistance_spread)):
            # Three sigma must stay above -100 %, or a cell would get a negative capacity or resistance.
            if not 0.0 <= value < 0.3:
                raise ConfigError(f"pack: {name} = {value!r}, expected a relative standard deviation in 0..0.3")
        if not 0.0 <= soc_spread <= 0.2:
            raise ConfigError(f"pack: soc_spread = {soc_spread!r}, expected a standard deviation in 0..0.2")
        if not (thermal_dt_s > 0 and math.isfinite(thermal_dt_s)):
            raise ConfigError(f"pack: thermal_dt_s = {thermal_dt_s!r}, expected a positive number of seconds")
        self.cell = cell
        self.n_series = int(n_series)
        self.n_parallel = int(n_parallel)
        self.ambient_c = float(ambient_c)
        self.thermal_dt_s = float(thermal_dt_s)
        shape = (self.n_series, self.n_parallel)
        variation_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        if pack_seed is not None:   # the first stream of `pack_seed`: the pack `seed = pack_seed` would build
            variation_rng = np.random.default_rng(np.random.SeedSequence(pack_seed).spawn(2)[0])
        z_capacity, z_resistance, z_soc = np.clip(variation_rng.standard_normal((3,) + shape), -3.0, 3.0)

        self.capacity_ah = cell.capacity_ah * (1.0 + capacity_spread * z_capacity) \
            * _per_cell(soh_capacity, shape, "soh_capacity", low=0.05, high=1.0)
        self._resistance_scale = (1.0 + resistance_spread * z_resistance) \
            * _per_cell(soh_resistance, shape, "soh_resistance", low=0.1)
        soc_initial = _per_cell(soc0, shape, "soc0", low=0.0, high=1.0) + soc_spread * z_soc
        np.clip(soc_initial, 0.0, 1.0, out=soc_initial)

        self.thermal = ThermalNetwork(
            cell.heat_capacity_j_per_k,
            cell.h_ambient_w_per_k if h_ambient_w_per_k is None else float(h_ambient_w_per_k),
            cell.h_neighbour_w_per_k)
        self._ocv_table = UniformTable(cell.ocv_soc, cell.ocv_v)
        self._rc_c_f = np.asarray(cell.rc_c_f)[:, None, None]
        self._rc_r_ohm = np.asarray(cell.rc_r_ohm)[:, None, None]
        n_rc = len(cell.rc_r_ohm)
        self._n_drop = 1 + n_rc  # rows that are voltage drops: R0, then each RC branch

        # Linear state, one row each: R0 drop, RC voltages, lookup coordinate x, SOC. Every row follows
        # s(k+1) = A s(k) + G i(k) for a held current i, so one multiply-add advances them all.
        rows = self._n_drop + 2
        self._state = np.zeros((rows,) + shape)
        self._a = np.zeros((rows,) + shape)
        self._g = np.zeros((rows,) + shape)
        self._scratch = np.zeros((rows,) + shape)
        self._drop_rows = self._state[:self._n_drop]
        self._drop_row_list = list(self._drop_rows)  # R0 drop, then every RC branch (at least one)
        self._drop_rows_after_two = self._drop_row_list[2:]
        self._x = self._state[-2]
        self.cell_soc = self._state[-1]
        self.rc_voltage_v = self._state[1:self._n_drop]
        self.cell_soc[:] = soc_initial
        np.multiply(self.cell_soc, self._ocv_table.x_per_soc, out=self._x)
        self._x += 1.0

        self.cell_r0_ohm = np.zeros(shape)
        self._heat_sum_v2 = np.zeros((self._n_drop,) + shape)  # sum over steps of each drop squared
        self._heat_square = np.zeros((self._n_drop,) + shape)
        self._inverse_r = np.ones((self._n_drop,) + shape)
        self.cell_heat_w = np.zeros(shape)
        self.cell_temperature_c = np.full(shape, self.ambient_c)
        self.cell_current_a = np.zeros(shape)
        self.cell_hysteresis_v = np.zeros(shape)
        self._has_hysteresis = cell.hysteresis_v > 0 and cell.hysteresis_rate > 0
        self._has_entropic_shift = cell.ocv_dv_dt_v_per_k is not None
        self._hysteresis_decay = np.ones(shape)
        self._hysteresis_target = np.zeros(shape)
        self._hysteresis_current = None
        self._ocv_offset_v = np.zeros(shape)
        self._ocv = np.zeros(shape)
        self._lookup = Lookup(self._ocv_table, shape)

        # Per block. With one cell per block, the block arrays are views of the cell arrays.
        self.cell_voltage_v = np.zeros(self.n_series)
        self._block_voltage = self.cell_voltage_v[:, None]
        if self.n_parallel == 1:
            self.soc = self.cell_soc[:, 0]
            self.temperature_c = self.cell_temperature_c[:, 0]
        else:
            self.soc = np.zeros(self.n_series)
            self.temperature_c = np.zeros(self.n_series)
            self.cell_temperature_c.max(axis=1, out=self.temperature_c)
        self._block_charge = np.zeros(shape)
        self._block_capacity_ah = self.capacity_ah.sum(axis=1)
        self.measured_cell_voltage_v = np.zeros(self.n_series)
        self.measured_temperature_c = np.zeros(self.n_series)
        # Parallel-solve buffers.
        self._open_v = np.zeros(shape)
        self._step_r = np.zeros(shape)
        self._step_g = np.zeros(shape)
        self._weighted = np.zeros(shape)
        self._sum_weighted = np.zeros(self.n_series)
        self._sum_g = np.zeros(self.n_series)
        self._drop_g_sum = np.zeros(shape)

        self.pack_current_a = 0.0
        self._step_current_a = np.zeros(())  # the step's current as a 0-d array (see `step`)
        self.time_s = 0.0
        self._dt_s = None
        self._steps_per_update = 1
        self._steps_pending = 0
        self._solve_blocks = self.n_parallel > 1
        self.faults = Faults(self.n_series, self.n_parallel, noise_rng, on_change=self._faults_changed)
        self._update_parameters()
        self._settle()

    # -- the real-time step ---------------------------------------------------------------------------

    def step(self, current_a: float, dt_s: float) -> None:
        """Advance by `dt_s` with `current_a` (pack current, > 0 discharges) held over the step."""
        # The per-step ufuncs take `out` positionally: numpy parses that faster than the keyword, and a
        # 16-cell step is a dozen such calls, each costing more than its arithmetic.
        if dt_s != self._dt_s:
            self._change_dt(dt_s)
        current_a = float(current_a)
        self.pack_current_a = current_a
        state = self._state
        np.multiply(state, self._a, state)
        if self._solve_blocks:
            self._solve_block_currents(current_a)
            np.multiply(self._g, self.cell_current_a, self._scratch)
            np.add(state, self._scratch, state)
            if self._has_hysteresis:
                self._advance_hysteresis(self.cell_current_a)
            self._lookup(self._x, self._ocv)
            if self.n_parallel > 1:
                self._update_block_soc()
        else:
            step_current_a = self._step_current_a
            step_current_a[()] = current_a  # numpy multiplies by a 0-d array faster than by a Python float
            np.multiply(self._g, step_current_a, self._scratch)
            np.add(state, self._scratch, state)
            if self._has_hysteresis:
                self._advance_hysteresis(current_a)
            self._lookup(self._x, self._ocv, moved=self._x_per_amp * abs(current_a))
            self._open_circuit_v(self._block_voltage)
            self.cell_current_a.fill(current_a)
        self.faults.measure_cell_voltage(self.cell_voltage_v, self.measured_cell_voltage_v)
        np.multiply(self._drop_rows, self._drop_rows, self._heat_square)
        np.add(self._heat_sum_v2, self._heat_square, self._heat_sum_v2)
        self.time_s += dt_s
        self._steps_pending += 1
        if self._steps_pending >= self._steps_per_update:
            self._update_slow()

    def _open_circuit_v(self, out: np.ndarray) -> np.ndarray:
        """OCV (with hysteresis and entropic shift) minus the drops the state rows hold now: after the step's
        current is added, a single-cell block's terminal voltage; before, a parallel block's open-circuit part.

        The drops are added in row order (R0, then each RC branch): np.add.reduce over the rows gives the
        same bits, as it adds them in that order too, but costs twice the two or three adds of a small pack."""
        rows = self._drop_row_list
        np.add(rows[0], rows[1], out)
        for row in self._drop_rows_after_two:
            np.add(out, row, out)
        np.subtract(self._ocv, out, out)
        if self._has_hysteresis:
            np.add(out, self.cell_hysteresis_v, out)
        if self._has_entropic_shift:
            np.add(out, self._ocv_offset_v, out)
        return out

    def _solve_block_currents(self, current_a: float) -> None:
        """Cell currents and block voltages for this step; the state rows already hold A s(k)."""
        # Open-circuit part of each cell's end-of-step voltage: OCV now, minus what the RC branches keep.
        open_v = self._open_circuit_v(self._open_v)
        # Effective resistance over the step: R0 + sum R_k (1 - a_k) + OCV slope times charge per amp.
        np.multiply(self._lookup.slope, self._g[-2], out=self._step_r)
        np.subtract(self._drop_g_sum, self._step_r, out=self._step_r)
        np.reciprocal(self._step_r, out=self._step_g)
        np.multiply(open_v, self._step_g, out=self._weighted)
        np.add.reduce(self._weighted, axis=1, out=self._sum_weighted)
        np.add.reduce(self._step_g, axis=1, out=self._sum_g)
        if self.faults.has_short:
            np.add(self._sum_g, self.faults.block_short_conductance_s, out=self._sum_g)
        voltage = self.cell_voltage_v
        np.subtract(self._sum_weighted, current_a, out=voltage)
        np.divide(voltage, self._sum_g, out=voltage)
        np.subtract(open_v, self._block_voltage, out=self.cell_current_a)
        np.multiply(self.cell_current_a, self._step_g, out=self.cell_current_a)

    def _advance_hysteresis(self, current_a) -> None:
        """h relaxes towards -M sign(i) by a factor exp(-gamma |i| dt / 3600 Q): exact for a held current."""
        decay = self._hysteresis_decay
        target = self._hysteresis_target
        if isinstance(current_a, float):
            if current_a != self._hysteresis_current:
                self._hysteresis_current = current_a
                np.multiply(self._hysteresis_rate, -abs(current_a), out=decay)
                np.exp(decay, out=decay)
                target.fill(-math.copysign(self.cell.hysteresis_v, current_a) if current_a else 0.0)
        else:
            self._hysteresis_current = None
            np.abs(current_a, out=decay)
            np.multiply(decay, self._hysteresis_rate, out=decay)
            np.negative(decay, out=decay)
            np.exp(decay, out=decay)
            np.sign(current_a, out=target)
            np.multiply(target, -self.cell.hysteresis_v, out=target)
        h = self.cell_hysteresis_v
        np.subtract(h, target, out=h)
        np.multiply(h, decay, out=h)
        np.add(h, target, out=h)

    def _update_block_soc(self) -> None:
        np.multiply(self.cell_soc, self.capacity_ah, out=self._block_charge)
        np.add.reduce(self._block_charge, axis=1, out=self.soc)
        np.divide(self.soc, self._block_capacity_ah, out=self.soc)

    # -- slow effects, dt changes and faults ----------------------------------------------------------

    def _change_dt(self, dt_s: float) -> None:
        if not (dt_s > 0 and math.isfinite(dt_s)):
            raise ValueError(f"dt_s = {dt_s!r}, expected a positive number of seconds")
        if self._steps_pending:
            self._update_slow()
        self._dt_s = float(dt_s)
        self._steps_per_update = max(1, round(self.thermal_dt_s / self._dt_s))
        self._set_coefficients()

    def _update_slow(self) -> None:
        """Heat, temperatures and the parameters that depend on them, once per thermal interval."""
        steps = self._steps_pending
        self._steps_pending = 0
        np.multiply(self._heat_sum_v2, self._inverse_r, out=self._heat_sum_v2)
        np.add.reduce(self._heat_sum_v2, axis=0, out=self.cell_heat_w)
        self.cell_heat_w /= steps
        self._heat_sum_v2.fill(0.0)
        self._add_fault_heat()
        self.thermal.advance(self.cell_temperature_c, self.cell_heat_w, self.ambient_c, steps * self._dt_s)
        if self.n_parallel > 1:
            self.cell_temperature_c.max(axis=1, out=self.temperature_c)
        self.faults.measure_temperature(self.temperature_c, self.measured_temperature_c)
        # Carrying x next to the SOC saves a multiply per step; resynchronise it so rounding cannot drift.
        np.multiply(self.cell_soc, self._ocv_table.x_per_soc, out=self._x)
        self._x += 1.0
        self._lookup.forget_segments()
        self._update_parameters()

    def _add_fault_heat(self) -> None:
        self.cell_heat_w += self.faults.heating_w
        if self.faults.has_short:
            self.cell_heat_w += self._block_voltage ** 2 * self.faults.short_conductance_s

    def _update_parameters(self) -> None:
        """Resistances at the present SOC and temperature, with variation, ageing and faults."""
        scale = self._resistance_scale * self.faults.resistance_factor \
            * self.cell.resistance_factor(self.cell_soc, self.cell_temperature_c)
        np.multiply(scale, self.cell.r0_ohm, out=self.cell_r0_ohm)
        self._rc_ohm = self._rc_r_ohm * scale
        np.reciprocal(self.cell_r0_ohm, out=self._inverse_r[0])
        np.reciprocal(self._rc_ohm, out=self._inverse_r[1:])
        if self.cell.ocv_dv_dt_v_per_k is not None:
            self._ocv_offset_v[:] = self.cell.entropic_shift_v(self.cell_soc, self.cell_temperature_c)
        if self._dt_s is not None:
            self._set_coefficients()

    def _set_coefficients(self) -> None:
        """A and G of every state row for the present resistances and step."""
        dt_s = self._dt_s
        charge_per_amp = dt_s / (SECONDS_PER_HOUR * self.capacity_ah)  # SOC per A over one step
        self._a[0] = 0.0
        self._g[0] = self.cell_r0_ohm
        rc_a = np.exp(-dt_s / (self._rc_ohm * self._rc_c_f))
        self._a[1:self._n_drop] = rc_a
        self._g[1:self._n_drop] = self._rc_ohm * (1.0 - rc_a)
        self._a[-2:] = 1.0
        self._g[-2] = -self._ocv_table.x_per_soc * charge_per_amp
        # How far x can move in a step per amp: the bound the lookup needs to skip its segment search.
        self._x_per_amp = float(amax(np.abs(self._g[-2])))
        self._g[-1] = -charge_per_amp
        self._hysteresis_rate = self.cell.hysteresis_rate * charge_per_amp
        self._hysteresis_current = None
        self._g[:self._n_drop].sum(axis=0, out=self._drop_g_sum)

    def _faults_changed(self) -> None:
        self._solve_blocks = self.n_parallel > 1 or self.faults.has_short
        if self._steps_pending:
            self._update_slow()
        else:
            self._update_parameters()
        self.faults.measure_temperature(self.temperature_c, self.measured_temperature_c)
        self.faults.measure_cell_voltage(self.cell_voltage_v, self.measured_cell_voltage_v)

    def _settle(self) -> None:
        """Rest voltages at construction: each block at the conductance-weighted mean of its cells' OCV."""
        self._lookup(self._x, out=self._ocv)
        open_v = self._ocv + self._ocv_offset_v + self.cell_hysteresis_v
        weights = 1.0 / self.cell_r0_ohm
        self.cell_voltage_v[:] = (open_v * weights).sum(axis=1) / weights.sum(axis=1)
        if self.n_parallel > 1:
            self._update_block_soc()
        self.faults.measure_cell_voltage(self.cell_voltage_v, self.measured_cell_voltage_v)
        self.faults.measure_temperature(self.temperature_c, self.measured_temperature_c)

    @property
    def pack_voltage_v(self) -> float:
        return float(np.add.reduce(self.cell_voltage_v))  # what .sum() calls, without its Python wrapper
