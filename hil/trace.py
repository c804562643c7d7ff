"""Per-test trace of the closed loop, written to CSV as it runs, and read back for plots and reports.

Rows are buffered and flushed every `flush_rows`, so a killed run loses at most one flush interval. No
wall-clock column: on a virtual clock two runs with one seed write byte-identical files.

Events (a fault injected, a relay switched) go to `<name>.events.csv` next to the trace, written on close,
so plots can mark the stimulus as well as the BMS's reaction.
"""
from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# cell_v_*: the model's cells. output_v_*: what the cell emulator drives onto the BMS's sense lines, the model's
# cells as measured (sense faults) with any forced channel: the voltage a protection test puts to the BMS.
COLUMNS = ("time_s", "demand", "pack_current_a", "cell_v_min", "cell_v_mean", "cell_v_max",
           "temperature_max_c", "soc_true", "soc_bms", "bms_state", "contactors_closed",
           "output_v_min", "output_v_max")
FORMATS = ("{:.3f}", "{:.4f}", "{:.4f}", "{:.5f}", "{:.5f}", "{:.5f}", "{:.3f}", "{:.6f}", "{:.4f}", "{}", "{:d}",
           "{:.5f}", "{:.5f}")  # per column, for the CSV
EVENT_COLUMNS = ("time_s", "event")
_NUMERIC = tuple(c for c in COLUMNS if c != "bms_state")
_STATE = COLUMNS.index("bms_state")
# Where soc_bms and contactors_closed sit among the numeric columns (the packed store leaves the state out).
_SOC_BMS, _CLOSED = (_NUMERIC.index(c) for c in ("soc_bms", "contactors_closed"))
_BLOCK_ROWS = 4096


class Rows(Sequence):
    """The trace's rows as tuples in COLUMNS order, kept as packed doubles: about 90 bytes a row instead of
    about 350 as Python tuples, so an hour at 100 Hz holds 32 MB rather than 120 MB.

    With `max_rows`, only the newest `max_rows` rows are kept (a ring, allocated up front), so a soak's
    memory does not grow with its length; index 0 is then the oldest row still held. The CSV keeps them all.

    A BMS SOC of None is stored as NaN and read back as None; `contactors_closed` reads back as a bool.
    """

    def __init__(self, max_rows: int | None = None) -> None:
        if max_rows is not None and max_rows < 1:
            raise ValueError(f"max_rows = {max_rows!r}, expected a positive number of rows or None")
        self.max_rows = max_rows
        self._values = array("d", bytes(8 * len(_NUMERIC) * max_rows)) if max_rows else array("d")
        self._states = array("H", bytes(2 * max_rows)) if max_rows else array("H")
        self._count = 0    # rows recorded in all, including those the ring has overwritten
        self._state_names: list[str] = []
        self._state_codes: dict[str, int] = {}

    def append(self, row: tuple) -> None:
        if len(row) != len(COLUMNS):
            raise ValueError(f"a trace row has {len(row)} values, expected {len(COLUMNS)}: {', '.join(COLUMNS)}")
        values = list(row)
        state = values.pop(_STATE)
        if values[_SOC_BMS] is None:
            values[_SOC_BMS] = float("nan")
        values[_CLOSED] = 1.0 if values[_CLOSED] else 0.0
        code = self._state_codes.get(state)
        if code is None:
            code = self._state_codes[state] = len(self._state_names)
            self._state_names.append(state)
        if self.max_rows is None:
            self._values.extend(values)
            self._states.append(code)
        else:
            slot = self._count % self.max_rows
            self._values[slot * len(_NUMERIC):(slot + 1) * len(_NUMERIC)] = array("d", values)
            self._states[slot] = code
        self._count += 1

    @property
    def recorded(self) -> int:
        """Rows recorded since the start, including any the ring no longer holds."""
        return self._count

    def __len__(self) -> int:
        return self._count if self.max_rows is None else min(self._count, self.max_rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return list(self._tuples(range(len(self))[index]))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"trace row {index} out of range ({len(self)} rows)")
        return next(self._tuples(range(index, index + 1)))

    def __iter__(self):
        return self._tuples(range(len(self)))

    def _slots(self, indices) -> np.ndarray:
        """Storage positions of logical rows `indices` (0 = the oldest held)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.max_rows is None or self._count <= self.max_rows:
            return indices
        return (indices + self._count) % self.max_rows

    def _tuples(self, indices: range):
        """Rows at `indices` as tuples, converted a block at a time (row by row is about 50x slower).

        No buffer view outlives a block, so rows can still be recorded while an iteration is paused.
        """
        names = self._state_names
        for k in range(0, len(indices), _BLOCK_ROWS):
            picked = self._slots(indices[k:k + _BLOCK_ROWS])
            rows = np.frombuffer(self._values, dtype=np.float64).reshape(-1, len(_NUMERIC))[picked].tolist()
            states = np.frombuffer(self._states, dtype=np.uint16)[picked].tolist()
            for values, code in zip(rows, states):
                if math.isnan(values[_SOC_BMS]):
                    values[_SOC_BMS] = None
                values[_CLOSED] = values[_CLOSED] > 0.5
                values.insert(_STATE, names[code])
                yield tuple(values)

    def column(self, name: str) -> np.ndarray:
        """One column as an array (a copy), oldest row first: floats with NaN for a missing BMS SOC, or
        strings for `bms_state`."""
        slots = self._slots(range(len(self)))
        if name == "bms_state":
            codes = np.frombuffer(self._states, dtype=np.uint16)[slots]
            return np.array(self._state_names or [""], dtype=str)[codes]
        if name not in _NUMERIC:
            raise KeyError(f"trace has no column {name!r}; columns: {', '.join(COLUMNS)}")
        values = np.frombuffer(self._values, dtype=np.float64).reshape(-1, len(_NUMERIC))
        return values[slots, _NUMERIC.index(name)]


class Trace:
    """Rows to `path` (None: memory only), flushed every `flush_rows`; in memory all rows, or the newest
    `memory_rows` (see `Rows`)."""

    def __init__(self, path: str | Path | None, flush_rows: int = 100, memory_rows: int | None = None):
        self.path = Path(path) if path is not None else None
        self.flush_rows = flush_rows
        self.rows = Rows(memory_rows)
        self.events: list[tuple[float, str]] = []
        self._pending: list[str] = []
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="ascii", newline="")
            self._file.write(",".join(COLUMNS) + "\n")
            self._file.flush()

    def record(self, row: tuple) -> None:
        self.rows.append(row)
        if self._file is not None:
            self._pending.append(",".join("" if value is None else form.format(value)
                                          for form, value in zip(FORMATS, row)) + "\n")
            if len(self._pending) >= self.flush_rows:
                self.flush()

    def mark(self, t_s: float, event: str) -> None:
        """Note an event at bench time `t_s`, e.g. "cell 15 forced to 4.253 V"."""
        self.events.append((t_s, event))

    def flush(self) -> None:
        if self._file is not None and self._pending:
            self._file.write("".join(self._pending))
            self._file.flush()
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.events:
                with open(events_path(self.path), "w", encoding="utf-8", newline="") as f:
                    f.write(",".join(EVENT_COLUMNS) + "\n")
                    csv.writer(f, lineterminator="\n").writerows((f"{t:.3f}", text) for t, text in self.events)


def events_path(trace_path: str | Path) -> Path:
    trace_path = Path(trace_path)
    return trace_path.with_name(f"{trace_path.stem}.events.csv")


def read_trace(path: str | Path) -> dict[str, np.ndarray]:
    """A trace CSV as one array per column: floats (an empty BMS SOC is NaN), `bms_state` as strings.

    Raises ValueError naming the file when its header is not the trace's.
    """
    path = Path(path)
    with open(path, encoding="ascii", newline="") as f:
        header = tuple(f.readline().strip().split(","))
        if header != COLUMNS:
            raise ValueError(f"{path}: not a trace file; header {header!r}, expected {COLUMNS!r}")
        lines = f.readlines()
    state_column = COLUMNS.index("bms_state")
    numeric = [COLUMNS.index(name) for name in _NUMERIC]
    soc_bms = COLUMNS.index("soc_bms")
    if not lines:  # a test that ended before its first row
        values = np.zeros((0, len(numeric)))
    else:
        values = np.loadtxt(lines, delimiter=",", usecols=numeric, ndmin=2,
                            converters={soc_bms: lambda text: float(text) if text else np.nan})
    data = {COLUMNS[i]: values[:, k] for k, i in enumerate(numeric)}
    data["bms_state"] = np.array([line.split(",")[state_column] for line in lines], dtype=str)
    return data


def read_events(trace_path: str | Path) -> list[tuple[float, str]]:
    """The events noted next to a trace, or [] when there were none."""
    path = events_path(trace_path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(float(t), text) for t, text in rows]
