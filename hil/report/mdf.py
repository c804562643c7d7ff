"""A trace as ASAM MDF4 (`.mf4`), for the measurement tools test engineers already use (CANape, asammdf GUI).

One channel group on the trace's time base; every column a channel with its unit, and the BMS state an
integer channel with a value-to-text conversion, so tools show "NORMAL" rather than 3.

Limits: needs asammdf (the optional extra `mdf`); without it `write_mdf` returns False and the report
says so. MDF files carry their creation time, so unlike the CSV they differ between identical runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.report.plots import STATE_ORDER
from hil.trace import read_trace

MISSING_NOTE = "MDF4 traces not written: asammdf is not installed (pip install 'hil-bms[mdf]')"
UNITS = {"time_s": "s", "pack_current_a": "A", "cell_v_min": "V", "cell_v_mean": "V", "cell_v_max": "V",
         "output_v_min": "V", "output_v_max": "V",
         "temperature_max_c": "degC", "soc_true": "1", "soc_bms": "1", "contactors_closed": "",
         "demand": "A or W"}


def asammdf_available() -> bool:
    try:
        import asammdf  # noqa: F401
    except ImportError:
        return False
    return True


def write_mdf(trace_path: str | Path, mf4_path: str | Path) -> bool:
    """Convert a trace CSV to MDF4 at `mf4_path`; False (and no file) when asammdf is missing."""
    try:
        from asammdf import MDF, Signal
    except ImportError:
        return False
    data = read_trace(trace_path)
    t = data["time_s"]
    signals = [Signal(samples=data[name], timestamps=t, name=name, unit=unit) for name, unit in UNITS.items()]
    states = list(STATE_ORDER) + sorted(set(data["bms_state"]) - set(STATE_ORDER))
    code = {state: i for i, state in enumerate(states)}
    conversion = {key: value for i, state in enumerate(states) for key, value in ((f"val_{i}", i),
                                                                                   (f"text_{i}", state.encode()))}
    signals.append(Signal(samples=np.array([code[s] for s in data["bms_state"]], dtype=np.uint8), timestamps=t,
                          name="bms_state", conversion=conversion))
    with MDF(version="4.10") as mdf:
        mdf.append(signals, comment=f"hil trace {Path(trace_path).name}")
        mdf.save(mf4_path, overwrite=True)
    return True
