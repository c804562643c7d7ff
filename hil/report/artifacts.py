"""The files a test leaves beside its trace CSV and CAN log: a PNG plot and, with asammdf, an MDF4 copy."""
from __future__ import annotations

from pathlib import Path

from hil.report.mdf import MISSING_NOTE as MDF_MISSING
from hil.report.mdf import asammdf_available, write_mdf
from hil.report.plots import MISSING_NOTE as PLOT_MISSING
from hil.report.plots import matplotlib_available, plot_trace


def write_test_artifacts(tests_dir: str | Path, name: str, title: str = "") -> None:
    """Plot `<tests_dir>/<name>.csv` to `<name>.png` and convert it to `<name>.mf4`, as far as installed."""
    trace = Path(tests_dir) / f"{name}.csv"
    if trace.is_file():
        plot_trace(trace, trace.with_suffix(".png"), title)
        write_mdf(trace, trace.with_suffix(".mf4"))


def missing_notes() -> list[str]:
    """What the report lacks because an optional package is not installed."""
    return [note for available, note in ((matplotlib_available(), PLOT_MISSING), (asammdf_available(), MDF_MISSING))
            if not available]
