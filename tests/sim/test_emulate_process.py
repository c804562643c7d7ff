"""`hil emulate` as a separate process: its events file, and going safe when its harness dies.

The times compared are CLOCK_MONOTONIC readings from different processes (`time.monotonic()` here, the
events' `t_s` there), which Linux shares machine-wide.
"""
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hil.can.dbc import load_dbcs
from hil.rig import load_rig
from hil.sim.emulate import PARENT_CHECK_S
from hil.sim.events import ENV_VAR, read_events

ROOT = Path(__file__).resolve().parents[2]
SLCAN_RIG = ROOT / "rigs" / "slcan.toml"
WATCHDOG_S = 0.5
EXIT_WITHIN_S = 5.0

HARNESS = """
from hil.bench import Bench
from hil.rig import load_rig
bench = Bench(load_rig({rig!r}))
bench.power_up()
print("powered", flush=True)
bench.loop.run_for(120.0)
"""

# A parent that starts `hil emulate` and never opens its pty: only the parent check can notice its death.
IDLE_PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-m", "hil", "emulate", "--rig", {rig!r}], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
time.sleep(120)
"""


@contextlib.contextmanager
def _emulate(events_path: Path):
    """`hil emulate` on the slcan rig logging to `events_path`: yields the process and its first 5 lines
    (endpoints, then "ready"); killed at the end if it is still running."""
    proc = subprocess.Popen([sys.executable, "-m", "hil", "emulate", "--rig", str(SLCAN_RIG)], cwd=ROOT,
                            env=dict(os.environ, **{ENV_VAR: str(events_path)}), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, [proc.stdout.readline().strip() for _ in range(5)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def _heartbeat_period_s() -> float:
    rig = load_rig(SLCAN_RIG)
    return load_dbcs(rig.dbc_paths("main")).get_message_by_name("CE_Control").cycle_time / 1000.0


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan's zombie may never be reaped in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(path: Path, predicate, timeout_s: float, what: str) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = read_events(path) if path.exists() else []
        if predicate(events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout_s} s; events: {events}")
        time.sleep(0.05)


def _first(events, event, board="emulate"):
    return next((e for e in events if e["event"] == event and e["board"] == board), None)


def _start(script: str, events_path: Path) -> subprocess.Popen:
    env = dict(os.environ, **{ENV_VAR: str(events_path)})
    return subprocess.Popen([sys.executable, "-c", script.format(rig=str(SLCAN_RIG))], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.mark.slow
@pytest.mark.wire
def test_sigkilled_harness_leaves_outputs_off_and_no_emulate_process(tmp_path):
    events_path = tmp_path / "events.jsonl"
    harness = _start(HARNESS, events_path)
    emulate_pid = None
    try:
        assert harness.stdout.readline().strip() == "powered", "the harness did not power up the bench"
        emulate_pid = _first(read_events(events_path), "ready")["pid"]
        killed_s = time.monotonic()
        harness.send_signal(signal.SIGKILL)
        harness.wait(timeout=EXIT_WITHIN_S)
        events = _wait_for(events_path, lambda ev: _first(ev, "exit") is not None, EXIT_WITHIN_S, "emulate exit")
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        harness.stdout.close()
    before = [e for e in events if e["t_s"] < killed_s]
    assert [e["event"] for e in before if e["board"] == "cell_emulator"] == ["outputs_on"], before
    off = _first(events, "outputs_off", board="cell_emulator")
    assert off["reason"] == "watchdog" or off.get("cause") == "host_lost", off
    assert off["t_s"] - killed_s <= WATCHDOG_S + _heartbeat_period_s(), (killed_s, off)
    assert _first(events, "exit")["t_s"] - killed_s <= EXIT_WITHIN_S
    assert any(e["event"] == "contactors_open" for e in events if e["t_s"] >= killed_s), events
    deadline = time.monotonic() + EXIT_WITHIN_S
    while _running(emulate_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(emulate_pid), f"hil emulate (pid {emulate_pid}) still running after its harness died"


@pytest.mark.slow
@pytest.mark.wire
def test_emulate_notices_its_parent_die_without_a_host(tmp_path):
    events_path = tmp_path / "events.jsonl"
    parent = _start(IDLE_PARENT, events_path)
    try:
        ready = _first(_wait_for(events_path, lambda ev: _first(ev, "ready"), 30.0, "emulate ready"), "ready")
        killed_s = time.monotonic()
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=EXIT_WITHIN_S)
        events = _wait_for(events_path, lambda ev: _first(ev, "exit") is not None, EXIT_WITHIN_S, "emulate exit")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
    gone = _first(events, "parent_gone")
    assert gone is not None and gone["t_s"] - killed_s <= 2 * PARENT_CHECK_S + 0.5, events
    assert _first(events, "exit")["cause"] == "parent_gone"
    deadline = time.monotonic() + EXIT_WITHIN_S
    while _running(ready["pid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(ready["pid"])


@pytest.mark.wire
def test_sigterm_is_logged_and_the_boards_go_safe(tmp_path):
    events_path = tmp_path / "events.jsonl"
    with _emulate(events_path) as (proc, lines):
        assert lines[0].startswith("endpoint main slcan /dev/pts/") and lines[4] == "ready", lines
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_WITHIN_S) == 0
    events = read_events(events_path)
    assert [(e["board"], e["event"]) for e in events if e["board"] == "emulate"] == [
        ("emulate", "ready"), ("emulate", "signal"), ("emulate", "exit")], events
    assert _first(events, "signal")["signum"] == signal.SIGTERM
    assert _first(events, "exit")["code"] == 0
    states = [e["state"] for e in events if e["event"] == "state"]
    assert states[-1] == "SAFE", states


def _poll(check, timeout_s: float, what: str, keep_alive):
    """Call `keep_alive()` and `check()` until check() returns a truthy value, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        keep_alive()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout_s} s")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.wire
def test_serial_ports_of_an_emulate_process(tmp_path):
    """Drive the cell emulator over its serial port alone, and watch the BMS react over its debug UART."""
    from hil.serial.link import SerialLink
    from hil.serial.protocols import bms_debug, cell_emulator
    from hil.sim.bms_firmware import FIRMWARE_VERSION

    events_path = tmp_path / "events.jsonl"
    with _emulate(events_path) as (proc, lines):
        assert lines[4] == "ready", lines
        endpoints = {parts[1]: parts[3] for parts in (line.split() for line in lines[:4])}
        assert endpoints.keys() == {"main", "debug", "ce-serial", "psu"}, lines
        with SerialLink(endpoints["ce-serial"], cell_emulator.PROTOCOL) as ce_link, \
                SerialLink(endpoints["debug"], bms_debug.PROTOCOL) as debug_link:
            ce = cell_emulator.CellEmulatorClient(ce_link)
            debug = bms_debug.BmsDebugClient(debug_link)
            sequence = iter(range(1 << 16))

            def keep_alive():
                ce.heartbeat(next(sequence))

            n_cells = load_rig(SLCAN_RIG).data["pack"]["n_series"]
            voltages_mv = [3700] * n_cells
            voltages_mv[0] = 3740  # 40 mV above the rest: bleeds
            ce.set_cell_voltages_mv(voltages_mv)
            ce.set_outputs_enabled(True)
            measured = _poll(lambda: (v := debug.read_cell_voltages_mv()) and min(v) > 0 and v, 5.0,
                             "cell voltages at the BMS", keep_alive)
            assert np.abs(np.array(measured) - voltages_mv).max() <= 2
            _poll(lambda: debug.read_balancing_mask() == 1, 5.0, "cell 0 balancing", keep_alive)
            voltages_mv[5] = 4400  # over-voltage
            ce.set_cell_voltages_mv(voltages_mv)
            log = _poll(debug.read_fault_log, 5.0, "a fault log entry", keep_alive)
            assert log[0].code == "over_voltage" and log[0].timestamp_ms > 0, log
            assert debug.read_firmware_version() == FIRMWARE_VERSION
            assert debug.read_calibration()["cell_ov_v"] == pytest.approx(4.25, rel=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=EXIT_WITHIN_S) == 0
    events = read_events(events_path)
    assert _first(events, "ready")["endpoints"]["debug"] == endpoints["debug"]
    assert _first(events, "outputs_on", board="cell_emulator") is not None
    states = [e["state"] for e in events if e["event"] == "state"]
    assert "FAULT" in states, states


def test_emulate_that_cannot_open_its_bus_fails_at_startup_with_exit_2(tmp_path):
    """Not a harness gone mid-run (that ends with exit 0, safe): the boards never served anything."""
    rig = tmp_path / "socketcan.toml"
    text = SLCAN_RIG.read_text().replace('interface = "slcan"', 'interface = "socketcan"')
    rig.write_text(text.replace('channel = "auto"', 'channel = "hilnone0"').replace('"../', f'"{ROOT}/'))
    events = tmp_path / "events.jsonl"
    result = subprocess.run([sys.executable, "-m", "hil", "emulate", "--rig", str(rig), "--events", str(events)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hil emulate: error:" in result.stderr and "cannot open SocketCAN interface 'hilnone0'" in result.stderr
    assert "ready" not in result.stdout and "Traceback" not in result.stderr
    assert _first(read_events(events), "exit")["code"] == 2


def test_the_boards_run_in_their_own_session_so_a_terminals_ctrl_c_reaches_only_the_harness():
    """Ctrl-C in a terminal signals its whole process group. Boards in it would exit on their own, outputs off
    with current still flowing; in their own session they wait for the harness's safe state, in order."""
    from hil.devices.emulator_process import EmulatorProcess
    boards = EmulatorProcess(load_rig(SLCAN_RIG))
    try:
        assert os.getsid(boards.proc.pid) == boards.proc.pid != os.getsid(0)
    finally:
        boards.stop()
