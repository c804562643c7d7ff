"""Exact piecewise-linear lookup on a uniform SOC grid, cheap enough for the real-time step.

`np.interp` searches and allocates on every call. Here a table is resampled once onto a uniform grid
whose spacing divides every breakpoint (a table written to 0.01 or 0.005 in SOC gets 101 or 201 points), so
the linear interpolation is unchanged, and a lookup is index arithmetic into preallocated buffers:

    x = soc * (n - 1) + 1            the lookup coordinate, carried by the model next to the SOC
    k = int(x)                       np.copyto(index, x, casting="unsafe"): truncation
    value = intercept[k] + slope[k] * x

Rows 0 and n are flat guard segments, and `np.take(..., mode="clip")` keeps any index inside them, so values
are clamped at the table ends like `np.interp` (SOC outside 0..1 reads the end values). A caller that knows
how far x can have moved since its last lookup (the model: at most the largest coefficient times the current)
lets `Lookup` skip the search while every x is provably still inside its segment. When no grid up to
`MAX_POINTS` holds every breakpoint, the table is resampled on `MAX_POINTS` points; the lookup then differs
from the linear interpolation by at most |slope change| / (4 (MAX_POINTS - 1)) near the off-grid breakpoints.
"""
from __future__ import annotations

import math

import numpy as np

from hil.reductions import amax, amin

MAX_POINTS = 100_001
BLOCK_ROWS = 8192   # interval counts tried in one numpy pass: 8192 x 200 breakpoints is 13 MB a temporary


def _grid_points(soc: np.ndarray) -> int:
    """The smallest uniform grid over 0..1 (point count) with a point on every breakpoint.

    Interval counts are tried a block at a time, the blocks growing fourfold up to BLOCK_ROWS: a table written
    to 0.01 is settled in the first, and one with a breakpoint off every grid (a fitted table's) in a few
    dozen numpy passes, not 100,000 passes of one row each (about 1 s a table)."""
    first = 1
    while first < MAX_POINTS:
        last = min(first + min(3 * first, BLOCK_ROWS), MAX_POINTS)
        intervals = np.arange(first, last, dtype=float)[:, None]
        scaled = soc[None, :] * intervals
        on_grid = np.all(np.abs(scaled - np.rint(scaled)) < 1e-9 * intervals, axis=1)
        if on_grid.any():
            return int(intervals[on_grid.argmax(), 0]) + 1
        first = last
    return MAX_POINTS


class UniformTable:
    """y(soc) from breakpoints `soc` (strictly increasing, within 0..1) and values `y`."""

    def __init__(self, soc: np.ndarray, y: np.ndarray):
        self.points = _grid_points(np.asarray(soc, dtype=float))
        grid_y = np.interp(np.linspace(0.0, 1.0, self.points), soc, y)
        slope = np.diff(grid_y)  # per unit of x
        segment = np.arange(1, self.points)
        coefficients = np.empty((self.points + 1, 2))
        coefficients[1:-1, 0] = grid_y[:-1] - slope * segment
        coefficients[1:-1, 1] = slope
        coefficients[0] = (grid_y[0], 0.0)
        coefficients[-1] = (grid_y[-1], 0.0)
        # Rows are (intercept, slope), so one np.take fetches both; `Lookup` takes each column on its own
        # into contiguous arrays, which numpy multiplies and adds in about half the time of strided ones.
        self.coefficients = coefficients
        self.intercepts = np.ascontiguousarray(coefficients[:, 0])
        self.slopes = np.ascontiguousarray(coefficients[:, 1])

    @property
    def x_per_soc(self) -> float:
        """How far the lookup coordinate x moves per unit of SOC."""
        return float(self.points - 1)

    def x(self, soc):
        """The lookup coordinate for `soc`."""
        return np.asarray(soc, dtype=float) * self.x_per_soc + 1.0

    def __call__(self, x) -> np.ndarray:
        """y at coordinate `x` (any shape), in new arrays: for occasional lookups that `Lookup` is not set up for."""
        rows = np.take(self.coefficients, np.asarray(x).astype(np.intp), axis=0, mode="clip")
        return rows[..., 1] * x + rows[..., 0]


class Lookup:
    """Preallocated buffers for repeated lookups of a fixed-shape `x` array: no allocation per call."""

    def __init__(self, table: UniformTable, shape: tuple[int, ...]):
        self.table = table
        self.index = np.zeros(shape, dtype=np.intp)
        self.intercept = np.zeros(shape)
        self.slope = np.zeros(shape)
        self._distance = np.zeros(shape)
        # How far every x may still move and stay inside the segment found by the last search (-inf: search
        # at the next lookup). Each lookup without a search takes off the caller's bound on the move, plus
        # a slack for x's own rounding: half an ulp of the largest interior x, doubled.
        self._headroom = -math.inf
        self._slack = 2.0 * math.ulp(float(table.points))

    def __call__(self, x: np.ndarray, out: np.ndarray, moved: float | None = None) -> np.ndarray:
        """`out` = y at coordinate `x`; `self.slope` then holds dy/dx of the segment used.

        `moved`: a bound on how far any x has moved since the previous lookup (None: unknown). While every
        x is provably still inside the segment found before, the search (three numpy calls) is skipped: it
        would find the same segments."""
        if moved is None:
            self._search(x)
            self._headroom = -math.inf
        else:
            self._headroom -= moved + self._slack
            if not self._headroom > 0.0:
                self._search(x)
                self._headroom = self._interior_headroom(x)
        np.multiply(self.slope, x, out)  # `out` positional: parsed faster than the keyword, every model step
        np.add(out, self.intercept, out)
        return out

    def forget_segments(self) -> None:
        """x changed other than by the moves reported (e.g. resynchronised): search at the next lookup."""
        self._headroom = -math.inf

    def _search(self, x: np.ndarray) -> None:
        np.copyto(self.index, x, casting="unsafe")
        # The methods, not np.take: the same calls without numpy's Python wrapper.
        self.table.intercepts.take(self.index, out=self.intercept, mode="clip")
        self.table.slopes.take(self.index, out=self.slope, mode="clip")

    def _interior_headroom(self, x: np.ndarray) -> float:
        """The least distance from any x to an edge of its segment [k, k + 1) when every k is an interior
        row (1 .. points - 1); -inf otherwise (a guard row, or NaN: searched at every lookup). Both
        differences are exact (k <= x < k + 1 <= 2 k)."""
        index = self.index
        if not (amin(index) >= 1 and amax(index) < self.table.points):
            return -math.inf
        distance = self._distance
        np.subtract(x, index, out=distance)
        below = float(amin(distance))
        np.subtract(index, x, out=distance)
        distance += 1.0
        return min(below, float(amin(distance)))

    def find_segments(self, x: np.ndarray) -> None:
        """Only find the segments for coordinate `x`: `index` (the row of `coefficients`, clamped to the guard
        rows), `intercept` and `slope`. Where `index` agrees at two coordinates, every lookup between them is
        intercept + slope * x, the same arithmetic as `__call__`: the index never decreases as x grows."""
        self._headroom = -math.inf
        np.copyto(self.index, x, casting="unsafe")
        np.maximum(self.index, 0, out=self.index)
        np.minimum(self.index, self.table.points, out=self.index)
        np.take(self.table.intercepts, self.index, out=self.intercept)
        np.take(self.table.slopes, self.index, out=self.slope)
