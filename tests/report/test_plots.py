"""Trace plots: markers found from the trace, spikes kept by decimation, a note when matplotlib is missing."""
import sys

import numpy as np
import pytest

from hil.report import plots
from hil.trace import read_trace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_fault_and_trip_markers_come_from_state_and_contactors(trace_file):
    fault_s, trip_s = plots.markers(read_trace(trace_file))
    assert fault_s.tolist() == pytest.approx([2.0])
    assert trip_s.tolist() == pytest.approx([2.0])


def test_decimation_keeps_a_one_sample_spike():
    t = np.arange(360_000) * 0.01
    y = np.zeros_like(t)
    y[123_457] = 150.0
    t_small, y_small = plots._decimate(t, y)
    assert t_small.size <= plots.MAX_POINTS + 2
    assert y_small.max() == 150.0


def test_events_close_together_share_one_short_label():
    events = [(10.0, "cell 3 forced to 4.300 V"),
              (65.382, "safe state: load confirmed at t=65.382 s: BMS_PackData BMS_PackCurrent=0.0"),
              (65.441, "safe state: contactors confirmed at t=65.441 s: BMS_Status ..."),
              (65.601, "safe state: outputs confirmed at t=65.601 s: CE_Status CE_OutputsOn=0"),
              (80.0, "thermistor 2 forced to a value with a description far longer than forty characters")]
    labels = plots.event_labels(events, span_s=100.0)
    assert labels == [(10.0, "cell 3 forced to 4.300 V"),
                      (65.382, "safe state: load confirmed (+2 more)"),
                      (80.0, "thermistor 2 forced to a value with a d…")]
    # On a short plot the same events are far apart: each keeps its own label.
    assert len(plots.event_labels(events[1:4], span_s=1.0)) == 3


def test_the_emulators_output_is_drawn_only_where_it_departs_from_the_model(trace_file):
    data = read_trace(trace_file)
    forced = plots.output_departures(data, "max")
    t = data["time_s"]
    assert np.all(forced[t >= 1.8] == 4.3) and np.all(np.isnan(forced[t < 1.8]))
    assert plots.output_departures(data, "min") is None


def test_plot_is_a_png(trace_file, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "demo.png"
    assert plots.plot_trace(trace_file, png, "demo")
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_without_matplotlib_no_plot_and_a_note(trace_file, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    png = tmp_path / "demo.png"
    assert not plots.plot_trace(trace_file, png)
    assert not png.exists()
    from hil.report.artifacts import missing_notes
    assert plots.MISSING_NOTE in missing_notes()


def test_the_demand_axis_names_the_unit_the_bench_applied(tmp_path):
    from hil.bench import Bench
    from hil.profiles import PROFILES
    from hil.rig import PROJECT_ROOT, load_rig
    from hil.trace import read_events
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml")
    with Bench(rig, report_dir=tmp_path, name="t") as bench:
        bench.power_up()
        bench.set_load(5.0)
        bench.loop.run_for(0.1)
        assert plots.demand_unit(bench.trace.events) == "A"
        bench.run_profile(PROFILES["bbu-ride-through"](dt_s=rig.dt_s, seed=1, duration_s=1.0))
        bench.loop.run_for(0.1)
    events = read_events(tmp_path / "t.csv")
    assert plots.demand_unit(events) == "A, then W"
    assert plots.demand_unit([]) == "A"   # nothing applied: the idle demand is 0 A
    assert plots.demand_unit([(0.0, "profile x (1 s) in W"), (1.0, "load 0 A")]) == "W"  # 0 A is 0 W
    assert plots.demand_unit([(0.0, "load 800 W (BMS limits ignored)")]) == "W"
