"""The fixed-step loop's deadlines, overrun policies and statistics, on a fake real-time clock."""
import itertools
import math
import sys
import threading
import time

import pytest

from hil.clock import RealClock, VirtualClock, make_clock
from hil.errors import ConfigError, HilError, HilTimeout
from hil.loop import Loop, LoopOverrun

DT_S = 0.001


class FakeClock:
    """A 'real' clock whose time moves only when told: `sleep_until` lands `overshoot_s()` past the deadline."""
    is_real = True

    def __init__(self, overshoot_s=lambda: 0.0):
        self.now = 0.0
        self.overshoot_s = overshoot_s

    def now_s(self) -> float:
        return self.now

    def sleep_until(self, deadline_s: float) -> None:
        if self.now < deadline_s:
            self.now = deadline_s + self.overshoot_s()


def make_loop(policy="catch-up", cost_s=None, clock=None, **kwargs):
    """A loop whose tick records its time and costs `cost_s(tick_index)` of fake time."""
    clock = clock or FakeClock()
    seen = []

    def tick(t_s):
        seen.append(t_s)
        clock.now += cost_s(len(seen) - 1) if cost_s else 0.0

    return Loop(clock, DT_S, tick, overrun_policy=policy, **kwargs), clock, seen


def stall(at_tick: int, steps: float):
    """Tick `at_tick` costs `steps` periods; the others cost a fraction of one."""
    return lambda i: steps * DT_S if i == at_tick else 0.3 * DT_S


def test_deadlines_are_absolute_so_no_drift_accumulates():
    loop, _, seen = make_loop(cost_s=lambda i: 0.7 * DT_S)
    loop.run_for(1.0)
    assert seen == [k * DT_S for k in range(1000)]
    assert loop.ticks == 1000 and loop.t_s == pytest.approx(1.0)
    assert loop.timing()["overruns"] == 0
    assert loop.timing()["jitter_max_us"] == 0.0


def test_catch_up_runs_every_missed_tick_back_to_back():
    loop, _, seen = make_loop("catch-up", stall(at_tick=3, steps=3.5))
    loop.run_for(0.010)
    assert seen == [k * DT_S for k in range(10)]
    # Tick 3 ends at 6.5 periods: tick 4 starts 2.5 periods late, tick 5 1.8 late, tick 6 1.1 late, tick 7 0.4.
    assert loop.overruns == 3
    assert loop.timing()["jitter_max_us"] == pytest.approx(2500, abs=1e-6)
    assert loop.skipped == 0


def test_skip_drops_missed_ticks_and_resumes_on_schedule():
    loop, _, seen = make_loop("skip", stall(at_tick=3, steps=3.5))
    loop.run_for(0.010)
    # Tick 4 would start 2.5 periods late: ticks 4 and 5 are dropped, tick 6 runs at once.
    assert seen == pytest.approx([k * DT_S for k in (0, 1, 2, 3, 6, 7, 8, 9)])
    assert loop.overruns == 1
    assert loop.skipped == 2
    assert loop.timing()["skipped"] == 2
    assert loop.t_s == pytest.approx(0.010)


def test_fail_raises_naming_the_tick_and_its_lateness():
    loop, _, seen = make_loop("fail", stall(at_tick=3, steps=3.5))
    with pytest.raises(LoopOverrun, match=r"tick 4 .*2\.500 ms late"):
        loop.run_for(0.010)
    assert len(seen) == 4


def test_a_late_tick_within_one_period_is_jitter_not_an_overrun():
    loop, _, _ = make_loop("fail", stall(at_tick=0, steps=1.9))
    loop.run_for(0.005)
    assert loop.overruns == 0
    assert loop.timing()["jitter_max_us"] == pytest.approx(900, abs=1e-6)


def test_jitter_percentiles_come_from_every_tick():
    lateness_us = iter(range(1, 100))  # tick 0 is due at the start, so it is never late
    clock = FakeClock(overshoot_s=lambda: next(lateness_us) * 1e-6)
    loop, clock, _ = make_loop(clock=clock)
    loop.run_for(0.100)
    timing = loop.timing()
    assert timing["ticks"] == 100
    assert timing["jitter_p50_us"] == pytest.approx(49.5, abs=0.01)
    assert timing["jitter_p99_us"] == pytest.approx(98.01, abs=0.01)
    assert timing["jitter_max_us"] == pytest.approx(99, abs=1e-3)


def test_a_full_jitter_ring_keeps_the_last_ticks_and_the_whole_run_maximum():
    lateness_us = iter([500] + [10] * 19)
    clock = FakeClock(overshoot_s=lambda: next(lateness_us) * 1e-6)
    loop, clock, _ = make_loop(clock=clock, jitter_capacity=8)
    loop.run_for(0.020)
    timing = loop.timing()
    assert timing["jitter_p99_us"] == pytest.approx(10, abs=1e-3)
    assert timing["jitter_max_us"] == pytest.approx(500, abs=1e-3)


def test_reset_timing_measures_one_phase():
    loop, _, _ = make_loop("catch-up", stall(at_tick=2, steps=5))
    loop.run_for(0.020)
    assert loop.overruns > 0
    loop.reset_timing()
    loop.run_for(0.010)
    timing = loop.timing()
    assert timing["overruns"] == 0 and timing["jitter_max_us"] == 0.0
    assert timing["ticks"] == 30


def test_virtual_clock_jumps_to_each_deadline_and_reports_no_jitter():
    clock = VirtualClock()
    loop = Loop(clock, DT_S, lambda t_s: None)
    loop.run_for(2.0)
    assert clock.now_s() == pytest.approx(1.999)
    timing = loop.timing()
    assert timing["ticks"] == 2000 and timing["overruns"] == 0
    assert timing["jitter_p99_us"] is None and timing["jitter_max_us"] is None


def test_run_until_returns_the_first_time_the_condition_holds():
    loop, _, _ = make_loop()
    assert loop.run_until(lambda: loop.ticks >= 42, timeout_s=1.0) == pytest.approx(0.042)


def test_run_until_times_out_with_what_was_seen():
    loop, _, _ = make_loop()
    with pytest.raises(HilTimeout, match=r"within 0\.05 s \(at t=0\.050 s\); seen: state=FAULT"):
        loop.run_until(lambda: False, timeout_s=0.05, describe=lambda: "state=FAULT")


def test_progress_is_reported_with_simulated_time_and_realtime_factor():
    seen = []
    loop, _, _ = make_loop()
    loop.on_progress(seen.append, every_s=0.0)
    loop.run_for(3.0)
    assert [p.t_s for p in seen] == pytest.approx([1.024, 2.048])
    assert all(p.wall_s > 0 and p.realtime_factor > 0 for p in seen)
    assert "simulated" in str(seen[0]) and "real time" in str(seen[0])
    loop.on_progress(None)
    loop.run_for(2.0)
    assert len(seen) == 2


def test_bad_policy_and_step_are_refused():
    with pytest.raises(HilError, match="overrun policy 'later'"):
        Loop(VirtualClock(), DT_S, lambda t_s: None, overrun_policy="later")
    with pytest.raises(HilError, match="dt_s = 0"):
        Loop(VirtualClock(), 0, lambda t_s: None)


def test_real_clock_smoke_never_runs_a_tick_early():
    """Runs 50 ms of real time; asserts order and bookkeeping, never speed."""
    clock = RealClock()
    started = []
    loop = Loop(clock, DT_S, lambda t_s: started.append((t_s, clock.now_s())))
    clock.restart()
    loop.run_for(0.050)
    assert len(started) == 50
    assert all(now_s >= t_s for t_s, now_s in started)
    assert [t for t, _ in started] == [k * DT_S for k in range(50)]
    timing = loop.timing()
    assert timing["ticks"] == 50
    for key in ("jitter_p50_us", "jitter_p99_us", "jitter_max_us"):
        assert math.isfinite(timing[key]) and timing[key] >= 0
    assert timing["jitter_p50_us"] <= timing["jitter_p99_us"] <= timing["jitter_max_us"]


def test_make_clock_gives_the_rigs_clock():
    assert isinstance(make_clock("virtual"), VirtualClock)
    real = make_clock("real", spin_s=0.0)
    assert isinstance(real, RealClock) and real.spin_s == 0.0
    real.restart()
    real.sleep_until(0.002)  # with no spin the sleep alone still never returns early
    assert real.now_s() >= 0.002


def test_busy_wait_never_sleeps_and_never_returns_early(monkeypatch):
    slept = []
    real_sleep = time.sleep
    monkeypatch.setattr("hil.clock.time.sleep", lambda s: (slept.append(s), real_sleep(s)))
    clock = make_clock("real", wait="busy")
    assert clock.wait == "busy"
    clock.restart()
    # Time moves 10 us per reading, so the wait cannot pass while this process is off the CPU (it did
    # under `pytest -n 3` on two cores: no reading came before the deadline, and nothing yielded).
    readings = itertools.count(clock._t0_ns, 10_000)
    monkeypatch.setattr("hil.clock.time.perf_counter_ns", lambda: next(readings))
    clock.sleep_until(0.003)
    assert clock.now_s() >= 0.003
    assert len(slept) >= 290 and set(slept) == {0}  # only GIL yields until 30 us before: the CPU never idles


def test_busy_wait_lets_other_threads_run():
    """The Notifier thread must not wait for the interpreter's switch interval while the loop waits: with
    the interval at 1 s, a thread that only needs the GIL between its own sleeps still makes progress."""
    interval = sys.getswitchinterval()
    stop, ticks = threading.Event(), []
    worker = threading.Thread(target=lambda: [ticks.append(1) for _ in iter(lambda: stop.wait(0.001), True)])
    sys.setswitchinterval(1.0)
    try:
        worker.start()
        clock = RealClock(wait="busy")
        clock.restart()
        clock.sleep_until(0.2)
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        worker.join(timeout=5)
    assert len(ticks) >= 5, f"the other thread ran {len(ticks)} times in 0.2 s of busy waiting"


def test_an_unknown_wait_is_a_config_error():
    with pytest.raises(ConfigError, match="clock: wait 'spin': expected one of"):
        RealClock(wait="spin")
