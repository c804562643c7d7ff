"""Fault injection: what can go wrong in a cell, and in the BMS front end that measures it.

A fault is keyed by (name, block, cell) and switched on or off at any time during a run:

    pack.faults.set("internal_short", block=3, r_ohm=50.0)
    pack.faults.set("voltage_noise", block=0, rms_v=0.002)
    pack.faults.clear("internal_short", block=3)      # or clear() for all, clear(block=3) for one block

Setting a fault that is already active replaces its values. Cell faults change the physics (what the
model computes) and take a `cell` index inside the parallel block (default 0):

- `internal_short` (`r_ohm` > 0): a resistor across the block, inside that cell. It drains the block and heats
  that cell by V^2 / r_ohm. Solved implicitly with the block each step.
- `high_resistance` (`factor` > 0): multiplies R0 and every RC resistance of that cell (a corroded weld,
  a lifted tab).
- `runaway_heating` (`power_w` >= 0): extra heat into that cell, the onset of a thermal runaway.

Measurement faults change only what the BMS front end reads (`measured_cell_voltage_v`,
`measured_temperature_c`); the true voltages, SOC and temperatures are untouched. They apply per block:

- `open_sense_wire`: the wire to the block's positive terminal is open. The front-end input then follows
  the next connected node below it, so this block reads 0 V and the block above reads the sum of both
  (sense wires of the lowest block's negative terminal never open here). Real front ends read
  something between these, depending on their input filter; the sum over the string is preserved.
- `voltage_offset` (`offset_v`): a constant error added to the reading.
- `voltage_noise` (`rms_v` >= 0): Gaussian noise on every reading, from a generator seeded by the pack seed.
- `thermistor_open` / `thermistor_short` (`reads_c`, default -40 / 125 degC): an NTC to ground with a
  pull-up reads as its coldest value when open and its hottest when shorted, the ends of a typical
  -40..125 degC conversion table.
"""
from __future__ import annotations

import math

import numpy as np

CELL = "cell"
BLOCK = "block"

# name: (scope, {parameter: default or None if required}, check for each parameter, what it expects)
_POSITIVE = (lambda v: v > 0, "> 0")
_NON_NEGATIVE = (lambda v: v >= 0, ">= 0")
_ANY = (lambda v: True, "a finite number")
FAULTS = {
    "internal_short": (CELL, {"r_ohm": (None, _POSITIVE)}),
    "high_resistance": (CELL, {"factor": (None, _POSITIVE)}),
    "runaway_heating": (CELL, {"power_w": (None, _NON_NEGATIVE)}),
    "open_sense_wire": (BLOCK, {}),
    "voltage_offset": (BLOCK, {"offset_v": (None, _ANY)}),
    "voltage_noise": (BLOCK, {"rms_v": (None, _NON_NEGATIVE)}),
    "thermistor_open": (BLOCK, {"reads_c": (-40.0, _ANY)}),
    "thermistor_short": (BLOCK, {"reads_c": (125.0, _ANY)}),
}


class Faults:
    """The active faults of one pack, and the effects the pack and its front end read each step."""

    def __init__(self, n_series: int, n_parallel: int, rng: np.random.Generator, on_change=None):
        self.n_series = n_series
        self.n_parallel = n_parallel
        self._rng = rng
        self._on_change = on_change
        self._active: dict[tuple[str, int, int], dict[str, float]] = {}
        shape = (n_series, n_parallel)
        # Effects on the cells.
        self.resistance_factor = np.ones(shape)
        self.short_conductance_s = np.zeros(shape)
        # Passive-balancing bleed resistors across blocks (not a fault, but the same physics as a short).
        self.bleed_conductance_s = np.zeros(n_series)
        self.block_short_conductance_s = np.zeros(n_series)
        self.heating_w = np.zeros(shape)
        self.has_short = False
        # Effects on the front end.
        self.voltage_offset_v = np.zeros(n_series)
        self.voltage_noise_v = np.zeros(n_series)
        self.thermistor_c = np.full(n_series, np.nan)
        self._open_wire = False
        self._offset = False
        self._noise = False
        self._noise_buffer = np.zeros(n_series)
        self._node_v = np.zeros(n_series + 1)  # node 0 is the string's negative end
        self._node_index = np.arange(n_series + 1)  # node each front-end input actually sees
        self._seen_v = np.zeros(n_series + 1)

    @property
    def active(self) -> list[tuple[str, int, int, dict[str, float]]]:
        """(name, block, cell, values) for each active fault, in the order they were set."""
        return [(name, block, cell, dict(values)) for (name, block, cell), values in self._active.items()]

    def set_bleed(self, mask: np.ndarray, r_ohm: float) -> None:
        """Connect a bleed resistor of `r_ohm` across each block where `mask` is True (BMS balancing)."""
        conductance_s = np.where(mask[:self.n_series], 1.0 / r_ohm, 0.0)
        if not np.array_equal(conductance_s, self.bleed_conductance_s):
            self.bleed_conductance_s[:] = conductance_s
            self._rebuild()

    def set(self, name: str, block: int, *, cell: int = 0, **values: float) -> None:
        """Switch on fault `name` at `block` (0 = most negative series block), replacing earlier values."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; expected one of {sorted(FAULTS)}")
        scope, parameters = FAULTS[name]
        if not (isinstance(block, (int, np.integer)) and 0 <= block < self.n_series):
            raise ValueError(f"fault {name!r}: block {block!r} is outside 0..{self.n_series - 1}")
        if scope == BLOCK and cell != 0:
            raise ValueError(f"fault {name!r} acts on a whole block's measurement; drop cell={cell!r}")
        if not (isinstance(cell, (int, np.integer)) and 0 <= cell < self.n_parallel):
            raise ValueError(f"fault {name!r}: cell {cell!r} is outside 0..{self.n_parallel - 1}")
        unknown = sorted(set(values) - set(parameters))
        if unknown:
            raise ValueError(f"fault {name!r}: unknown value {unknown[0]!r}; expected {sorted(parameters) or 'none'}")
        checked = {}
        for key, (default, (ok, expected)) in parameters.items():
            value = values.get(key, default)
            if value is None:
                raise ValueError(f"fault {name!r}: missing value {key!r} ({expected})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ValueError(f"fault {name!r}: {key} = {value!r}, expected {expected}")
            checked[key] = float(value)
        self._active.pop((name, int(block), int(cell)), None)
        self._active[(name, int(block), int(cell))] = checked
        self._rebuild()

    def clear(self, name: str | None = None, block: int | None = None, cell: int | None = None) -> None:
        """Switch off every active fault that matches all the given arguments (all faults if none given)."""
        if name is not None and name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; expected one of {sorted(FAULTS)}")
        self._active = {key: values for key, values in self._active.items()
                        if not ((name is None or key[0] == name) and (block is None or key[1] == block)
                                and (cell is None or key[2] == cell))}
        self._rebuild()

    def _rebuild(self) -> None:
        self.resistance_factor.fill(1.0)
        self.short_conductance_s.fill(0.0)
        self.heating_w.fill(0.0)
        self.voltage_offset_v.fill(0.0)
        self.voltage_noise_v.fill(0.0)
        self.thermistor_c.fill(np.nan)
        open_wire = np.zeros(self.n_series, dtype=bool)
        for (name, block, cell), values in self._active.items():
            if name == "internal_short":
                self.short_conductance_s[block, cell] = 1.0 / values["r_ohm"]
            elif name == "high_resistance":
                self.resistance_factor[block, cell] = values["factor"]
            elif name == "runaway_heating":
                self.heating_w[block, cell] = values["power_w"]
            elif name == "open_sense_wire":
                open_wire[block] = True
            elif name == "voltage_offset":
                self.voltage_offset_v[block] = values["offset_v"]
            elif name == "voltage_noise":
                self.voltage_noise_v[block] = values["rms_v"]
            else:  # thermistor_open, thermistor_short: the later one set wins
                self.thermistor_c[block] = values["reads_c"]
        self.short_conductance_s[:, 0] += self.bleed_conductance_s
        self.short_conductance_s.sum(axis=1, out=self.block_short_conductance_s)
        self.has_short = bool(self.short_conductance_s.any())
        # An open input follows the nearest connected node below it (node 0, the string's negative end, is
        # always connected).
        connected = np.concatenate(([True], ~open_wire))
        self._node_index[:] = np.maximum.accumulate(np.where(connected, np.arange(self.n_series + 1), 0))
        self._open_wire = bool(open_wire.any())
        self._offset = bool(self.voltage_offset_v.any())
        self._noise = bool(self.voltage_noise_v.any())
        if self._on_change is not None:
            self._on_change()

    def measure_cell_voltage(self, true_v: np.ndarray, out: np.ndarray) -> None:
        """`out` = what the front end reads for each block whose true terminal voltage is `true_v`."""
        if self._open_wire:
            np.cumsum(true_v, out=self._node_v[1:])
            np.take(self._node_v, self._node_index, out=self._seen_v)
            np.subtract(self._seen_v[1:], self._seen_v[:-1], out=out)
        else:
            out[:] = true_v  # np.copyto's work without its dispatch, once a model step
        if self._offset:
            np.add(out, self.voltage_offset_v, out=out)
        if self._noise:
            self._rng.standard_normal(out=self._noise_buffer)
            np.multiply(self._noise_buffer, self.voltage_noise_v, out=self._noise_buffer)
            np.add(out, self._noise_buffer, out=out)

    def measure_temperature(self, true_c: np.ndarray, out: np.ndarray) -> None:
        """`out` = what the front end reads for each block's thermistor when the block is at `true_c`."""
        np.copyto(out, true_c)
        np.copyto(out, self.thermistor_c, where=~np.isnan(self.thermistor_c))
