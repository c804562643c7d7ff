"""Equivalent-circuit pack model: nS series blocks of one cell each, R0 plus RC branches per cell.

Current > 0 discharges (the PyBaMM convention). State lives in preallocated arrays that `step` updates in
place; the RC branches use the exact zero-order-hold discretisation, so any `dt_s` is stable.
"""
from __future__ import annotations

import numpy as np

from hil.model.cell import CellParams


class Pack:
    def __init__(self, cell: CellParams, n_series: int, soc0: float = 0.5, ambient_c: float = 25.0):
        self.cell = cell
        self.n_series = n_series
        self.ambient_c = ambient_c
        n_rc = len(cell.rc_r_ohm)
        self.soc = np.full(n_series, float(soc0))
        self.temperature_c = np.full(n_series, float(ambient_c))
        self.rc_current_a = np.zeros((n_rc, n_series))  # current through each RC resistor
        self.cell_voltage_v = np.empty(n_series)
        self.pack_current_a = 0.0
        self._rc_r = np.asarray(cell.rc_r_ohm)[:, None]
        self._tau_s = self._rc_r * np.asarray(cell.rc_c_f)[:, None]
        self._dt_s = None
        self._decay = np.empty((n_rc, 1))
        self._ocv = np.empty(n_series)
        self._update_voltage()

    def _update_voltage(self) -> None:
        self._ocv[:] = np.interp(self.soc, self.cell.ocv_soc, self.cell.ocv_v)
        rc_drop = (self._rc_r * self.rc_current_a).sum(axis=0)
        np.subtract(self._ocv, rc_drop + self.cell.r0_ohm * self.pack_current_a, out=self.cell_voltage_v)

    def step(self, current_a: float, dt_s: float) -> None:
        """Advance by `dt_s` with `current_a` held constant over the step (zero-order hold)."""
        if dt_s != self._dt_s:
            self._dt_s = dt_s
            np.exp(-dt_s / self._tau_s, out=self._decay)
        self.pack_current_a = float(current_a)
        # i_rc(k+1) = a * i_rc(k) + (1 - a) * i  is exact for a step-held current.
        self.rc_current_a *= self._decay
        self.rc_current_a += (1.0 - self._decay) * current_a
        self.soc -= current_a * dt_s / (3600.0 * self.cell.capacity_ah)
        heat_w = current_a * current_a * self.cell.r0_ohm + (self._rc_r * self.rc_current_a ** 2).sum(axis=0)
        self.temperature_c += dt_s * (heat_w - self.cell.h_ambient_w_per_k * (self.temperature_c - self.ambient_c)) \
            / self.cell.heat_capacity_j_per_k
        self._update_voltage()

    @property
    def pack_voltage_v(self) -> float:
        return float(self.cell_voltage_v.sum())
