"""Lumped thermal network: one node per cell on the pack's n_series x n_parallel grid.

    C dT/dt = heat_w - h_ambient (T - T_ambient) - h_neighbour sum over adjacent cells (T - T_adjacent)

Adjacent means the next cell in the same parallel block and the same position in the next series block,
which is how cylindrical cells sit in a module row. The ambient (or coolant) node is held at a set
temperature. Integration is explicit Euler, sub-stepped at half the stability limit, so any `dt_s` is stable;
the pack calls it at its thermal interval (about 1 s), far below the thermal time constants (minutes).
"""
from __future__ import annotations

import math

import numpy as np


class ThermalNetwork:
    def __init__(self, heat_capacity_j_per_k: float, h_ambient_w_per_k: float, h_neighbour_w_per_k: float):
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
        n_sub = max(1, math.ceil(dt_s / self.max_dt_s))
        sub_dt_s = dt_s / n_sub
        for _ in range(n_sub):
            temperature_c += sub_dt_s / self.heat_capacity_j_per_k * self._flow_in_w(temperature_c, heat_w, ambient_c)
