"""The files a test leaves beside its trace CSV and CAN log: a PNG plot and, with asammdf, an MDF4 copy."""
from __future__ import annotations

from pathlib import Path

from hil.errors import ConfigError
from hil.report.mdf import MISSING_NOTE as MDF_MISSING
from hil.report.mdf import asammdf_available, write_mdf
from hil.report.plots import MISSING_NOTE as PLOT_MISSING
from hil.report.plots import matplotlib_available, plot_trace


def prepare_report_dir(report_dir: str | Path) -> Path:
    """Create `report_dir` and its `tests/` and prove them writable, before any test: a report folder that
    cannot be written would otherwise fail every test, or lose the report at the very end of a run."""
    report_dir = Path(report_dir)
    probe = report_dir / "tests" / ".hil-write-check"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"report folder {report_dir}: cannot write there ({exc.strerror or exc}: "
                          f"{exc.filename or probe}); expected a folder this user may create and write") from None
    return report_dir


def write_test_artifacts(tests_dir: str | Path, name: str, title: str = "", verdict: str = "") -> None:
    """Plot `<tests_dir>/<name>.csv` to `<name>.png` (titled, with the test's verdict) and convert it to
    `<name>.mf4`, as far as installed."""
    trace = Path(tests_dir) / f"{name}.csv"
    if trace.is_file():
        plot_trace(trace, trace.with_suffix(".png"), title, verdict)
        write_mdf(trace, trace.with_suffix(".mf4"))


def missing_notes() -> list[str]:
    """What the report lacks because an optional package is not installed."""
    return [note for available, note in ((matplotlib_available(), PLOT_MISSING), (asammdf_available(), MDF_MISSING))
            if not available]
