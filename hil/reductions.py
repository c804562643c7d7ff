"""ndarray.min/max/any/all/mean and np.clip for hot paths: the same ufuncs, without numpy's Python wrappers.

`v.max()` goes through `numpy._core._methods` (Python) before it reaches `np.maximum.reduce`; on the 16
values of a pack that wrapper (~2 µs) costs more than the arithmetic, and the 1 ms bench tick and the
emulated firmware's 10 ms task make a dozen such calls. Results are the same values: these are the
reductions the methods run, over every axis (`axis=None`), and `amean` is ndarray.mean's sum divided by
the count. `aclip` is np.clip's arithmetic, maximum then minimum, without its ~3 µs of dispatch; `clip`
is the same for one Python float (a frame's few values need no array call at all). `least` and
`greatest` are amin and amax of a 1-D array read off argmin and argmax, a third of a reduction's cost.
"""
from __future__ import annotations

import math

import numpy as np


def amin(values: np.ndarray):
    return np.minimum.reduce(values, axis=None)


def amax(values: np.ndarray):
    return np.maximum.reduce(values, axis=None)


def least(values: np.ndarray):
    """amin(values), for a 1-D array in a third of the time: the element argmin (a method with no Python
    wrapper and no reduction set-up) points at. That element is the minimum itself but where numpy's
    reduction may answer with another bit pattern of an equal value, a zero (-0.0 or 0.0) or a NaN (which
    one): those, empty arrays and other shapes take amin."""
    if values.ndim == 1 and values.size:
        low = values[values.argmin()]
        if low != 0.0 and not math.isnan(low):
            return low
    return amin(values)


def greatest(values: np.ndarray):
    """amax(values), as `least` is amin (argmax points at the maximum, or at the first NaN)."""
    if values.ndim == 1 and values.size:
        high = values[values.argmax()]
        if high != 0.0 and not math.isnan(high):
            return high
    return amax(values)


def aany(values: np.ndarray) -> bool:
    return bool(np.logical_or.reduce(values, axis=None))


def aall(values: np.ndarray) -> bool:
    return bool(np.logical_and.reduce(values, axis=None))


def amean(values: np.ndarray) -> float:
    return float(np.add.reduce(values, axis=None)) / values.size


def aclip(values: np.ndarray, low: float, high: float, out: np.ndarray | None = None) -> np.ndarray:
    """np.clip(values, low, high, out=out) for low <= high: NaN stays NaN."""
    return np.minimum(np.maximum(values, low, out=out), high, out=out)


def clip(value: float, low: float, high: float) -> float:
    """`value` limited to low..high (low <= high), as `aclip` limits each element: NaN stays NaN."""
    return low if value < low else min(value, high)  # min keeps a NaN `value`, as it is the first
