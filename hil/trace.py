"""Per-test trace of the closed loop, written to CSV as it runs.

Rows are buffered and flushed every `flush_rows`, so a killed run loses at most one flush interval. No
wall-clock column: on a virtual clock two runs with one seed write byte-identical files.
"""
from __future__ import annotations

from pathlib import Path

COLUMNS = ("time_s", "demand", "pack_current_a", "cell_v_min", "cell_v_mean", "cell_v_max",
           "temperature_max_c", "soc_true", "soc_bms", "bms_state", "contactors_closed")


class Trace:
    def __init__(self, path: str | Path | None, flush_rows: int = 100):
        self.path = Path(path) if path is not None else None
        self.flush_rows = flush_rows
        self.rows: list[tuple] = []
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
