"""SIGKILL to `hil run` mid-test: nothing in the harness runs any more, so the boards' own watchdogs must
make the bench safe, and the files written so far must read back up to within one flush of the kill.

Times of the board events (`t_s`) and of the kill are both CLOCK_MONOTONIC, shared by every process here.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import can
import pytest
from .safety_harness import RIGS, RUNNING_TEST, Harness, gone_within, only

from hil.can.log import FLUSH_INTERVAL_S as LOG_FLUSH_S
from hil.rig import load_rig
from hil.trace import read_trace

TRACE_FLUSH_ROWS = 100      # hil.trace.Trace writes its rows out every 100
WATCHDOG_S = 0.5            # outputs off and contactors open within this of the harness dying
EXIT_WITHIN_S = 5.0         # an emulated-board process whose harness is gone exits within this
RUN_S = 3.0                 # wall seconds the test runs, drawing current, before the kill
# How far a real-clock loop may fall behind the wall clock on a loaded machine, and how late a flush may come.
LAG_S = 1.0
# How late the boards' process may run its watchdog check when the machine is loaded.
BOARD_LAG_S = 0.1
# A log's first frame goes out at the first tick, within this of bench time 0.
FIRST_FRAME_S = 0.1


@pytest.fixture(scope="module", params=["sim", "slcan"])
def killed(request, tmp_path_factory):
    """`hil run` on a test drawing current, SIGKILLed after RUN_S; what it left behind."""
    from hil.sim.events import ENV_VAR
    rig = request.param
    tmp_path = tmp_path_factory.mktemp(f"killed-{rig}")
    test_file = tmp_path / "test_generated.py"
    test_file.write_text(RUNNING_TEST)
    events = tmp_path / "events.jsonl"
    harness = Harness([sys.executable, "-m", "hil", "run", "--rig", str(RIGS[rig]), "--report",
                       str(tmp_path / "report"), "-s", "-k", "runs_until_stopped", str(test_file)],
                      env={ENV_VAR: str(events)})
    harness.wait_for(lambda line: line.startswith("progress") and line.endswith("closed=True"))
    time.sleep(RUN_S)
    boards = harness.children()
    kill_s, kill_epoch_s = time.monotonic(), time.time()
    harness.proc.kill()
    harness.finish()
    exited = {pid: gone_within(pid, EXIT_WITHIN_S - (time.monotonic() - kill_s)) for pid in boards}
    return {"rig": load_rig(RIGS[rig]), "harness": harness, "kill_s": kill_s, "kill_epoch_s": kill_epoch_s,
            "events": events, "boards_exited": exited, "tests": tmp_path / "report" / "tests"}


def test_the_trace_and_can_log_read_back_up_to_the_last_flush(killed):
    rig, harness, tests = killed["rig"], killed["harness"], killed["tests"]
    progress = harness.progress()
    assert progress[-1][2], "the test must have been drawing current when it was killed"

    trace = read_trace(only(tests.glob("*.csv")))     # no events file: that is written on close
    trace_flush_s = TRACE_FLUSH_ROWS * rig.setpoint_period_s
    last_row_s = float(trace["time_s"][-1])
    assert last_row_s >= progress[-1][1] - trace_flush_s - rig.setpoint_period_s
    if rig.clock == "real":  # bench time follows the wall clock: compare with how long the test had run
        first_arrived_s, first_t_s, _ = progress[0]
        assert last_row_s >= first_t_s + (killed["kill_s"] - first_arrived_s) - trace_flush_s - LAG_S

    frames = list(can.LogReader(str(only(tests.glob("*.blf")))))   # a BLF without its header reads back
    # Every frame logged by the last flush before the kill is there. A killed BLF has lost its header, and
    # with it the start time its frames' stamps count from (see the next test), so compare spans: the log
    # starts within FIRST_FRAME_S of bench time 0, and holds what came up to a progress line printed a
    # flush interval (plus slack) before the kill.
    flushed_by_s = killed["kill_s"] - LOG_FLUSH_S - LAG_S
    reference_t_s = max(t_s for arrived_s, t_s, _ in progress if arrived_s <= flushed_by_s)
    assert frames[-1].timestamp - frames[0].timestamp >= reference_t_s - FIRST_FRAME_S
    assert {0x100, 0x210, 0x320} <= {frame.arbitration_id for frame in frames}   # BMS_Status, VCU_Request, CE_Control


def test_a_killed_real_clock_blf_keeps_its_frames_wall_clock_times(killed):
    if killed["rig"].clock != "real":
        pytest.skip("on a virtual clock the stamps are bench time")
    first = next(iter(can.LogReader(str(only(killed["tests"].glob("*.blf"))))))
    assert killed["kill_epoch_s"] - 60.0 < first.timestamp < killed["kill_epoch_s"]


def test_the_boards_go_safe_within_500_ms_and_exit_within_5_s(killed):
    if killed["rig"].emulate_in_process:
        pytest.skip("the sim rig's boards die with the harness: nothing is left energised")
    from hil.sim.events import read_events
    kill_s = killed["kill_s"]
    events = read_events(killed["events"])
    before = [event["event"] for event in events if event["t_s"] < kill_s]
    assert [e for e in before if e.startswith("outputs_")][-1] == "outputs_on"
    assert [e for e in before if e.startswith("contactors_")][-1] == "contactors_closed"
    after = {}
    for event in events:
        if event["t_s"] >= kill_s:
            after.setdefault(event["event"], event["t_s"] - kill_s)
    assert after.get("outputs_off", float("inf")) <= WATCHDOG_S, events
    assert after.get("contactors_open", float("inf")) <= WATCHDOG_S, events
    assert after.get("exit", float("inf")) <= EXIT_WITHIN_S, events
    assert killed["boards_exited"] and all(killed["boards_exited"].values())


@pytest.mark.slow
@pytest.mark.wire
def test_a_frozen_harness_leaves_the_boards_to_go_safe_within_500_ms(tmp_path):
    """A harness that stops without dying (a debugger's breakpoint, SIGSTOP, a paused VM) sends nothing any
    more, and no exit tells the boards: their watchdogs must act on the silence alone, as fast as when it
    dies. The boards' process lives on (its parent does), and the harness, once resumed, still ends cleanly."""
    from hil.sim.events import ENV_VAR, read_events
    test_file = tmp_path / "test_generated.py"
    test_file.write_text(RUNNING_TEST)
    events_path = tmp_path / "events.jsonl"
    harness = Harness([sys.executable, "-m", "hil", "run", "--rig", str(RIGS["slcan"]), "--report",
                       str(tmp_path / "report"), "-s", "-k", "runs_until_stopped", str(test_file)],
                      env={ENV_VAR: str(events_path)})
    harness.wait_for(lambda line: line.startswith("progress") and line.endswith("closed=True"))
    boards = harness.children()
    stop_s = time.monotonic()
    os.kill(harness.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(WATCHDOG_S + 1.0)
        events = read_events(events_path)
        boards_alive = [not gone_within(pid, 0.0) for pid in boards]
    finally:
        os.kill(harness.proc.pid, signal.SIGCONT)
        harness.proc.send_signal(signal.SIGINT)
        code = harness.finish()
    after = {}
    for event in events:
        if event["t_s"] >= stop_s:
            after.setdefault(event["event"], event["t_s"] - stop_s)
    # The watchdogs count from the last frame, which went out just before the freeze; on a loaded machine the
    # boards' process may run its check a little late.
    assert after.get("outputs_off", float("inf")) <= WATCHDOG_S + BOARD_LAG_S, events
    assert after.get("contactors_open", float("inf")) <= WATCHDOG_S + BOARD_LAG_S, events
    assert "exit" not in after and boards and all(boards_alive)
    assert code == 130, harness.output()   # resumed, then Ctrl-C: it ends as interrupted, not hung
