"""Lumped thermal network: one node per cell on the pack's n_series x n_parallel grid.

    C dT/dt = heat_w - h_ambient (T - T_ambient) - h_neighbour sum over adjacent cells (T - T_adjacent)

Adjacent means the next cell in the same parallel block and the same position in the next series block,
which is how cylindrical cells sit in a module row. The ambient (or coolant) node is held at a set
temperature. Integration is explicit Euler, sub-stepped at half the stability limit, so any `dt_s` is stable;
the pack calls it at its thermal interval (about 1 s), far below the thermal time constants (minutes). A step
that would need more than `MAX_SUBSTEPS` sub-steps is refused with a ConfigError instead of running for minutes:
a heat capacity far too small for its conductances, or a step far too long for them.
"""
from __future__ import annotations

import math

import numpy as np

from hil.errors import ConfigError

# About 5 us per sub-step for a small pack, so 50 ms per call. Shipped cells need 1 sub-step at the 1 s
# thermal interval; any cell file inside cell.py's plausible ranges needs at most 2000.
MAX_SUBSTEPS = 10_000


class ThermalNetwork:
    def __init__(self, heat_capacity_j_per_k: float, h_ambient_w_per_k: float, h_neighbour_w_per_k: float):
        if not (heat_capacity_j_per_k > 0 and math.isfinite(heat_capacity_j_per_k)):
            raise ConfigError(f"thermal: heat_capacity_j_per_k = {heat_capacity_j_per_k!r}, expected a positive "
                              "number of J/K")
        for name, value in (("h_ambient_w_per_k", h_ambient_w_per_k), ("h_neighbour_w_per_k", h_neighbour_w_per_k)):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"thermal: {name} = {value!r}, expected a number of W/K >= 0")
        self.heat_capacity_j_per_k = heat_capacity_j_per_k
        self.h_ambient_w_per_k = h_ambient_w_per_k
        self.h_neighbour_w_per_k = h_neighbour_w_per_k
        # Explicit Euler is stable below C / (sum of conductances); at most four neighbours.
        total_w_per_k = h_ambient_w_per_k + 4.0 * h_neighbour_w_per_k
        self.max_dt_s = 0.5 * heat_capacity_j_per_k / total_w_per_k if total_w_per_k > 0 else math.inf

    def _flow_in_w(self, temperature_c: np.ndarray, heat_w: np.ndarray, ambient_c: float) -> np.ndarray:
        flow_w = heat_w - self.h_ambient_w_per_k * (temperature_c - ambient_c)
        if self.h_neighbour_w_per_k:
            # Heat from the next series block, then from the next cell in the block; each leaves one and
            # enters the other.
            between_w = self.h_neighbour_w_per_k * (temperature_c[1:] - temperature_c[:-1])
            flow_w[:-1] += between_w
            flow_w[1:] -= between_w
            if temperature_c.shape[1] > 1:
                between_w = self.h_neighbour_w_per_k * (temperature_c[:, 1:] - temperature_c[:, :-1])
                flow_w[:, :-1] += between_w
                flow_w[:, 1:] -= between_w
        return flow_w

    def advance(self, temperature_c: np.ndarray, heat_w: np.ndarray, ambient_c: float, dt_s: float) -> None:
        """Advance `temperature_c` (shape (n_series, n_parallel)) in place by `dt_s` with `heat_w` held."""
        substeps = dt_s / self.max_dt_s
        if not substeps <= MAX_SUBSTEPS:
            raise ConfigError(
                f"thermal: a step of {dt_s:g} s needs {substeps:.3g} sub-steps, more than {MAX_SUBSTEPS}: "
                f"heat_capacity_j_per_k = {self.heat_capacity_j_per_k:g} with h_ambient_w_per_k = "
                f"{self.h_ambient_w_per_k:g} and h_neighbour_w_per_k = {self.h_neighbour_w_per_k:g} (to each of "
                f"up to 4 neighbours) takes sub-steps of at most {self.max_dt_s:.3g} s (half the stability limit); "
                "expected a cell's heat capacity (tens of J/K for a 21700) or a shorter step")
        n_sub = max(1, math.ceil(substeps))
        sub_dt_s = dt_s / n_sub
        for _ in range(n_sub):
            temperature_c += sub_dt_s / self.heat_capacity_j_per_k * self._flow_in_w(temperature_c, heat_w, ambient_c)
