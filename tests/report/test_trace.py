"""The trace: rows kept compactly in memory, the same rows in the CSV, events beside it."""
import math

import numpy as np
import pytest

from hil.trace import COLUMNS, Trace, read_events, read_trace

ROWS = [(0.0, 0.0, 0.0, 3.6, 3.65, 3.7, 25.0, 0.6, None, "NONE", False, 3.6, 3.7),
        (0.01, 290.0, 5.0, 3.55, 3.6, 3.62, 25.01, 0.59999, 0.6, "NORMAL", True, 3.55, 4.3),
        (0.02, -10.0, -2.5, 3.7, 3.71, 3.72, 25.02, 0.6, 0.61, "FAULT", False, 0.0, 3.72)]


def test_rows_read_back_as_recorded(tmp_path):
    trace = Trace(tmp_path / "t.csv")
    for row in ROWS:
        trace.record(row)
    assert list(trace.rows) == ROWS
    assert trace.rows[-1] == ROWS[-1] and trace.rows[1:] == ROWS[1:] and len(trace.rows) == 3
    assert max(r[2] for r in trace.rows) == 5.0
    with pytest.raises(IndexError, match="row 3 out of range"):
        trace.rows[3]
    assert trace.rows.column("pack_current_a").tolist() == [0.0, 5.0, -2.5]
    assert math.isnan(trace.rows.column("soc_bms")[0])
    assert trace.rows.column("bms_state").tolist() == ["NONE", "NORMAL", "FAULT"]
    with pytest.raises(KeyError, match="no column 'current'"):
        trace.rows.column("current")


def test_csv_holds_the_rows_and_events_sit_beside_it(tmp_path):
    trace = Trace(tmp_path / "t.csv")
    for row in ROWS:
        trace.record(row)
    trace.mark(0.015, 'cell 3 forced to 4.40 V, "stuck"')
    trace.close()
    data = read_trace(tmp_path / "t.csv")
    assert data["pack_current_a"].tolist() == [0.0, 5.0, -2.5]
    assert np.isnan(data["soc_bms"][0]) and data["soc_bms"][1] == pytest.approx(0.6)
    assert data["bms_state"].tolist() == ["NONE", "NORMAL", "FAULT"]
    assert data["contactors_closed"].tolist() == [0.0, 1.0, 0.0]
    assert data["output_v_max"].tolist() == [3.7, 4.3, 3.72] and data["output_v_min"].tolist() == [3.6, 3.55, 0.0]
    assert read_events(tmp_path / "t.csv") == [(0.015, 'cell 3 forced to 4.40 V, "stuck"')]


def test_a_trace_without_rows_or_events_reads_back_empty(tmp_path):
    Trace(tmp_path / "t.csv").close()
    data = read_trace(tmp_path / "t.csv")
    assert set(data) == set(COLUMNS) and all(v.size == 0 for v in data.values())
    assert read_events(tmp_path / "t.csv") == []
    assert not (tmp_path / "t.events.csv").exists()


def test_a_file_that_is_not_a_trace_is_refused(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="x.csv: not a trace file"):
        read_trace(tmp_path / "x.csv")


def test_rows_are_kept_without_a_file():
    trace = Trace(None)
    trace.record(ROWS[1])
    trace.close()
    assert trace.rows[0] == ROWS[1]


def test_rows_can_be_recorded_while_an_iteration_is_paused():
    trace = Trace(None)
    for row in ROWS:
        trace.record(row)
    rows = iter(trace.rows)
    assert next(rows) == ROWS[0]
    trace.record(ROWS[0])
    assert list(rows) == ROWS[1:] and trace.rows[::-2] == [ROWS[0], ROWS[1]]


def test_a_bounded_trace_keeps_the_newest_rows_in_memory_and_all_in_the_file(tmp_path):
    trace = Trace(tmp_path / "t.csv", memory_rows=2)
    rows = [(0.01 * k, float(k), 1.0, 3.5, 3.6, 3.7, 25.0, 0.5, 0.5 if k % 2 else None, f"S{k % 3}", k % 2 == 1,
             3.5, 3.7 + k) for k in range(7)]
    for k, row in enumerate(rows):
        trace.record(row)
        assert list(trace.rows) == rows[max(0, k - 1):k + 1]
    assert len(trace.rows) == 2 and trace.rows.recorded == 7
    assert trace.rows[0] == rows[5] and trace.rows[-1] == rows[6] and trace.rows[::-1] == [rows[6], rows[5]]
    assert trace.rows.column("demand").tolist() == [5.0, 6.0]
    assert trace.rows.column("bms_state").tolist() == ["S2", "S0"]
    trace.close()
    assert read_trace(tmp_path / "t.csv")["demand"].tolist() == [float(k) for k in range(7)]


def test_a_bounded_trace_needs_a_positive_size():
    with pytest.raises(ValueError, match="max_rows = 0"):
        Trace(None, memory_rows=0)


def test_a_forced_cell_is_traced_as_the_emulators_output_not_the_models(tmp_path):
    from hil.bench import Bench
    from hil.rig import PROJECT_ROOT, load_rig
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "sim.toml"), report_dir=tmp_path, name="forced") as bench:
        bench.cell_emulator.enable(True)
        bench.loop.run_for(0.5)
        bench.force_cell(3, 4.31)
        bench.loop.run_for(0.5)
        bench.force_cell(3, None)
        bench.loop.run_for(0.5)
    data = read_trace(tmp_path / "forced.csv")
    t = data["time_s"]
    forced = (t >= 0.5) & (t < 1.0)
    assert np.all(data["output_v_max"][forced] == pytest.approx(4.31))
    assert np.all(data["cell_v_max"] < 4.0)  # the model's cells never saw it
    # Unforced, the output is the model's cells as measured (no sense fault here: the same).
    assert np.allclose(data["output_v_max"][~forced & (t > 0)], data["cell_v_max"][~forced & (t > 0)], atol=1e-5)
