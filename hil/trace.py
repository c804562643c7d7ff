"""Per-test trace of the closed loop, written to CSV as it runs, and read back for plots and reports.

Rows are buffered and flushed every `flush_rows`, so a killed run loses at most one flush interval. No
wall-clock column: on a virtual clock two runs with one seed write byte-identical files.

Events (a fault injected, a relay switched) go to `<name>.events.csv` next to the trace, written on close,
so plots can mark the stimulus as well as the BMS's reaction.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLUMNS = ("time_s", "demand", "pack_current_a", "cell_v_min", "cell_v_mean", "cell_v_max",
           "temperature_max_c", "soc_true", "soc_bms", "bms_state", "contactors_closed")
EVENT_COLUMNS = ("time_s", "event")


class Trace:
    def __init__(self, path: str | Path | None, flush_rows: int = 100):
        self.path = Path(path) if path is not None else None
        self.flush_rows = flush_rows
        self.rows: list[tuple] = []
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
            t, demand, i, vmin, vmean, vmax, tmax, soc, soc_bms, state, closed = row
            soc_bms_text = "" if soc_bms is None else f"{soc_bms:.4f}"
            self._pending.append(f"{t:.3f},{demand:.4f},{i:.4f},{vmin:.5f},{vmean:.5f},{vmax:.5f},{tmax:.3f},"
                                 f"{soc:.6f},{soc_bms_text},{state},{int(closed)}\n")
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
    numeric = [i for i in range(len(COLUMNS)) if i != state_column]
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
