import pytest

from hil.trace import Trace


@pytest.fixture
def trace_file(tmp_path):
    """A 3 s trace: 10 A load, a 40 A spike at 1.5 s, fault and contactors opening at 2.0 s; one event."""
    path = tmp_path / "tests" / "demo.csv"
    trace = Trace(path)
    for k in range(300):
        t_s = k * 0.01
        tripped = t_s >= 2.0
        current_a = 0.0 if tripped else (40.0 if k == 150 else 10.0)
        output_max_v = 4.3 if t_s >= 1.8 else 3.7  # cell 15 forced from 1.8 s
        trace.record((t_s, current_a, current_a, 3.6, 3.65, 3.7, 25.0, 0.6, None if k < 10 else 0.59,
                      "FAULT" if tripped else "NORMAL", not tripped, 3.6, output_max_v))
    trace.mark(1.8, "cell 15 forced to 4.30 V")
    trace.close()
    return path
