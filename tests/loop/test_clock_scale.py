"""Time dilation for machines too slow for real time (HIL_TIME_SCALE)."""
import pytest

from hil.clock import RealClock
from hil.errors import ConfigError


def test_a_scaled_clock_runs_slower_than_the_wall(monkeypatch):
    import time
    monkeypatch.setenv("HIL_TIME_SCALE", "0.25")
    clock = RealClock(spin_s=0.0)
    wall_start = time.perf_counter()
    clock.sleep_until(0.01)  # 10 ms of bench time
    wall_s = time.perf_counter() - wall_start
    assert clock.now_s() >= 0.01
    assert wall_s >= 0.04 * 0.99  # at a quarter speed, 10 ms of bench time takes at least 40 ms of wall time


@pytest.mark.parametrize("text", ["0", "2", "fast", "-1"])
def test_a_bad_time_scale_is_refused_naming_the_variable(monkeypatch, text):
    monkeypatch.setenv("HIL_TIME_SCALE", text)
    with pytest.raises(ConfigError, match="HIL_TIME_SCALE"):
        RealClock()
