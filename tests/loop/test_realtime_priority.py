"""`[rig] realtime_priority`: the loop's thread under SCHED_FIFO while it runs, and given back after.

The tests that switch a thread to SCHED_FIFO need the right to (root, as in CI, or CAP_SYS_NICE) and skip
without it; what a user without it is told is tested everywhere.
"""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hil.bench import Bench
from hil.clock import RealClock
from hil.errors import ConfigError
from hil.rig import load_rig

ROOT = Path(__file__).resolve().parents[2]


def _may_use_fifo() -> bool:
    try:
        RealClock(priority=1)
    except ConfigError:
        return False
    return True


needs_fifo = pytest.mark.skipif(not _may_use_fifo(), reason="this user may not use SCHED_FIFO (root or CAP_SYS_NICE)")


def _policy(tid: int = 0) -> tuple[int, int]:
    return os.sched_getscheduler(tid), os.sched_getparam(tid).sched_priority


@needs_fifo
def test_the_waiting_thread_runs_real_time_until_released():
    before = _policy()
    clock = RealClock(spin_s=0.0, priority=10)
    assert _policy() == before, "constructing the clock only checks the right; it changes nothing"
    clock.restart()
    clock.sleep_until(0.001)
    assert _policy() == (os.SCHED_FIFO, 10)
    clock.sleep_until(0.002)
    clock.release()
    assert _policy() == before
    clock.release()  # a second release (a bench closed twice) changes nothing
    assert _policy() == before


@needs_fifo
def test_release_from_another_thread_restores_the_thread_that_waited():
    clock = RealClock(spin_s=0.0, priority=10)
    clock.restart()
    waited, released, seen = threading.Event(), threading.Event(), {}

    def loop_thread() -> None:
        seen["before"] = _policy()
        clock.sleep_until(0.001)
        seen["running"] = _policy()
        waited.set()
        released.wait(5)
        seen["after"] = _policy()

    worker = threading.Thread(target=loop_thread)
    worker.start()
    assert waited.wait(5)
    main_before = _policy()
    clock.release()
    released.set()
    worker.join(5)
    assert seen["running"] == (os.SCHED_FIFO, 10)
    assert seen["after"] == seen["before"]
    assert _policy() == main_before, "only the loop's thread was switched"


@needs_fifo
def test_a_real_clock_bench_gives_its_thread_back_when_it_closes():
    before = _policy()
    rig = load_rig(ROOT / "rigs" / "sim.toml", ['rig.clock="real"', "rig.realtime_priority=10"])
    with Bench(rig) as bench:
        bench.loop.run_for(0.02)
        assert _policy() == (os.SCHED_FIFO, 10)
        assert bench.loop.ticks == 20
    assert _policy() == before


@needs_fifo
def test_the_threads_that_stamp_received_frames_run_one_priority_below_the_loop():
    """python-can's Notifier readers stamp each frame as they parse it: at normal scheduling, another process's
    load delays the stamp and counts against the BMS's cycle time."""
    rig = load_rig(ROOT / "rigs" / "sim.toml", ['rig.clock="real"', "rig.realtime_priority=10"])
    with Bench(rig) as bench:
        readers = [reader for notifier in bench._notifiers for reader in notifier._readers]
        assert readers and all(isinstance(reader, threading.Thread) for reader in readers)
        assert [_policy(reader.native_id) for reader in readers] == [(os.SCHED_FIFO, 9)] * len(readers)
    normal = load_rig(ROOT / "rigs" / "sim.toml", ['rig.clock="real"'])
    with Bench(normal) as bench:
        readers = [reader for notifier in bench._notifiers for reader in notifier._readers]
        assert all(_policy(reader.native_id)[0] != os.SCHED_FIFO for reader in readers), "priority 0: left alone"


@needs_fifo
@pytest.mark.wire
def test_hil_emulate_runs_its_loop_at_the_rigs_priority():
    proc = subprocess.Popen([sys.executable, "-m", "hil", "emulate", "--rig", str(ROOT / "rigs" / "slcan.toml"),
                             "--set", "rig.realtime_priority=10"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(5)]   # 4 endpoints, then ready
        assert lines[-1] == "ready", lines
        deadline = time.monotonic() + 5.0
        while _policy(proc.pid) != (os.SCHED_FIFO, 10) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _policy(proc.pid) == (os.SCHED_FIFO, 10), "hil emulate's loop thread (its main thread)"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_user_without_the_right_is_told_how_to_get_it(monkeypatch):
    def refuse(*_args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with pytest.raises(ConfigError, match=r"^rigs/x.toml \[rig\]: realtime_priority 50: this user may not .*"
                                          r"CAP_SYS_NICE.*rtprio.*or set it to 0$"):
        RealClock(priority=50, where="rigs/x.toml [rig]")
    rig = load_rig(ROOT / "rigs" / "sim.toml", ['rig.clock="real"', "rig.realtime_priority=50"])
    with pytest.raises(ConfigError, match=r"sim.toml \[rig\]: realtime_priority 50"):
        Bench(rig)


def test_hil_run_stops_before_any_test_when_the_priority_is_not_allowed(monkeypatch, capsys):
    import pytest as pytest_module

    from hil.cli import main

    def refuse(*_args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(pytest_module, "main", lambda argv: pytest.fail("pytest started"))
    code = main(["run", "--rig", str(ROOT / "rigs" / "sim.toml"), "--set", 'rig.clock="real"',
                 "--set", "rig.realtime_priority=50"])
    assert code == 2
    assert "sim.toml [rig]: realtime_priority 50: this user may not" in capsys.readouterr().err


def test_busy_waiting_at_real_time_priority_is_refused_with_why():
    with pytest.raises(ConfigError, match=r"wait 'busy' with realtime_priority 50: .*throttled .*use wait 'sleep'"):
        RealClock(wait="busy", priority=50)


def test_the_rig_key_takes_0_to_99():
    with pytest.raises(ConfigError, match=r"key 'rig.realtime_priority' = 100, expected an integer from 0 to 99"):
        load_rig(ROOT / "rigs" / "sim.toml", ["rig.realtime_priority=100"])
    with pytest.raises(ConfigError, match=r"key 'rig.realtime_priority' = 'high', expected int"):
        load_rig(ROOT / "rigs" / "sim.toml", ['rig.realtime_priority="high"'])
    assert load_rig(ROOT / "rigs" / "sim.toml", ["rig.realtime_priority=0"]).data["rig"]["realtime_priority"] == 0
