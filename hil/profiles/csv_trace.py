"""CSV traces: write a profile, read a recorded trace, and replay it on the loop's time grid.

Format: one header row `time_s,current_a` or `time_s,power_w`, then one row per sample. Lines starting with
`#` are comments (say where the trace came from); blank lines are skipped. Times must strictly increase
and every value must be a finite number; the first error found is reported with its file and line.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from hil.errors import ConfigError
from hil.profiles.base import COLUMNS, Profile, n_samples

_KIND_BY_COLUMN = {column: kind for kind, column in COLUMNS.items()}


def write_csv(profile: Profile, path: str | Path) -> None:
    """Write `time_s` and the profile's column (`current_a` or `power_w`), 10 significant digits."""
    table = np.column_stack([profile.times_s(), profile.demand])
    np.savetxt(path, table, fmt="%.10g", delimiter=",", header=f"time_s,{profile.column}", comments="")


def _header(path: Path, line_no: int, row: list[str]) -> str:
    """The kind named by a header row, or a ConfigError saying which column is wrong."""
    names = [name.strip() for name in row]
    expected = f"expected time_s plus one of {', '.join(_KIND_BY_COLUMN)}"
    for name in names:
        if name != "time_s" and name not in _KIND_BY_COLUMN:
            raise ConfigError(f"{path}: line {line_no}: unknown column {name!r}; {expected}")
    values = [name for name in names if name in _KIND_BY_COLUMN]
    if "time_s" not in names or len(values) != 1 or len(names) != 2:
        raise ConfigError(f"{path}: line {line_no}: header {','.join(names)!r} is wrong; {expected}")
    if names[0] != "time_s":
        raise ConfigError(f"{path}: line {line_no}: time_s must be the first column; {expected}")
    return _KIND_BY_COLUMN[values[0]]


def read_trace(path: str | Path) -> tuple[str, np.ndarray, np.ndarray]:
    """(kind, times_s, values) from a trace CSV; a ConfigError names the file, line and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: Excel and Windows tools start the file with a BOM
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the trace: {error.strerror}") from None
    except UnicodeDecodeError as error:
        line_no = error.object.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path}: line {line_no}: byte 0x{error.object[error.start]:02X} is not UTF-8 text; "
                          "expected a CSV file of time_s plus current_a or power_w") from None
    kind = None
    times_s, values = [], []
    for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if kind is None:
            kind = _header(path, line_no, row)
            column = COLUMNS[kind]
            continue
        if len(row) != 2:
            raise ConfigError(f"{path}: line {line_no}: {len(row)} fields, expected 2 (time_s,{column})")
        numbers = []
        for name, field in zip(("time_s", column), row):
            try:
                number = float(field)
            except ValueError:
                raise ConfigError(f"{path}: line {line_no}: {name} {field.strip()!r} is not a number") from None
            if not math.isfinite(number):
                raise ConfigError(f"{path}: line {line_no}: {name} is {field.strip()}; every value must be finite")
            numbers.append(number)
        if times_s and numbers[0] <= times_s[-1]:
            raise ConfigError(f"{path}: line {line_no}: time_s {numbers[0]:g} does not increase "
                              f"(previous row {times_s[-1]:g}); rows must be in time order without repeats")
        times_s.append(numbers[0])
        values.append(numbers[1])
    if kind is None:
        raise ConfigError(f"{path}: no header row; expected time_s plus one of {', '.join(_KIND_BY_COLUMN)}")
    if not times_s:
        raise ConfigError(f"{path}: header but no data rows")
    return kind, np.array(times_s), np.array(values)


def csv_trace(duration_s: float = math.inf, dt_s: float = 0.001, *, seed: int = 0, path: str = "",
              scale: float = 1.0) -> Profile:
    """Replay a recorded trace from the CSV at `path`: `time_s` plus `current_a` (A) or `power_w` (W).

    Times are taken relative to the first row and resampled onto the `dt_s` grid by zero-order hold: each
    grid point takes the last recorded value at or before it, as a logger's sample holds until the next.
    `duration_s` inf (the default) plays the whole trace; a longer duration is 0 past the last row, a
    shorter one cuts it. `scale` multiplies the values (e.g. to move a cell trace onto a pack).
    `seed` is accepted for the common interface and ignored.
    """
    if not path:
        raise ConfigError("profile 'csv-trace': set path=FILE.csv (time_s plus current_a or power_w)")
    kind, times_s, values = read_trace(path)
    times_s = times_s - times_s[0]
    # A grid point a rounding error short of a recorded time still counts as reaching it.
    tolerance_s = 1e-6 * dt_s
    if math.isinf(duration_s):
        duration_s = (math.floor((times_s[-1] + tolerance_s) / dt_s) + 1) * dt_s
    grid_s = np.arange(n_samples(duration_s, dt_s)) * dt_s
    index = np.searchsorted(times_s, grid_s + tolerance_s, side="right") - 1
    demand = values[index] * scale
    demand[grid_s > times_s[-1] + tolerance_s] = 0.0
    return Profile("csv-trace", kind, dt_s, demand, f"Replay of {Path(path).name} ({kind})")
