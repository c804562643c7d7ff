"""MDF4 export (optional extra `mdf`): channels with units, and the BMS state as text."""
import sys

import pytest

from hil.report import mdf


def test_trace_converts_to_mdf4(trace_file, tmp_path):
    asammdf = pytest.importorskip("asammdf")
    path = tmp_path / "demo.mf4"
    assert mdf.write_mdf(trace_file, path)
    with asammdf.MDF(path) as loaded:
        current = loaded.get("pack_current_a")
        assert current.unit == "A"
        assert current.samples[150] == pytest.approx(40.0)
        assert current.timestamps[150] == pytest.approx(1.5)
        state = loaded.get("bms_state")
        assert state.samples[0] == b"NORMAL" and state.samples[-1] == b"FAULT"


def test_without_asammdf_no_file_and_a_note(trace_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "asammdf", None)
    path = tmp_path / "demo.mf4"
    assert not mdf.write_mdf(trace_file, path)
    assert not path.exists()
    from hil.report.artifacts import missing_notes
    assert mdf.MISSING_NOTE in missing_notes()
