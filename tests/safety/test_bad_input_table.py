"""The rows of the README's bad-input table that no other folder's tests cover. Each bad input gets an
error naming the file or device and what was expected, or is counted while the bench runs on.

(Not `test_bad_input.py`: tests/can has a module of that name, and pytest refuses two of one name.)
"""
import os
import re
import signal
import threading
from pathlib import Path

import can
import pytest
from .safety_harness import RIGS, ROOT, gone_within

from hil.bench import Bench
from hil.can.bus import SERIAL_WRITE_TIMEOUT_S
from hil.can.monitor import Monitor
from hil.devices.emulator_process import EmulatorProcess
from hil.errors import ConfigError, DeviceLost, HilError, HilTimeout
from hil.protocol import BmsState
from hil.rig import load_rig, preflight

FLOOD_FRAMES = 20_000


def rig_copy(tmp_path: Path, name: str, edit=lambda text: text) -> Path:
    """A copy of a shipped rig, edited, with its relative paths pointing back into the project."""
    path = tmp_path / "rigs" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(edit(RIGS[name].read_text()).replace('"../', f'"{ROOT}/'))
    return path


def emulate_processes(rig_path: Path) -> list[int]:
    """Running `hil emulate` processes started for `rig_path`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"emulate" in argv and str(rig_path).encode() in argv:
            pids.append(int(cmdline.parent.name))
    return pids


def test_a_garbled_dbc_named_by_a_rig_fails_before_any_board_starts(tmp_path):
    garbled = tmp_path / "garbled.dbc"
    garbled.write_text((ROOT / "dbc" / "vcu.dbc").read_text().replace("BO_ 528 VCU_Request: 8 VCU",
                                                                      "BO_ 528 VCU_Request 8 VCU"))
    rig = load_rig(rig_copy(tmp_path, "sim", lambda text: text.replace('"../dbc/vcu.dbc"', f'"{garbled}"')))
    with pytest.raises(ConfigError, match=re.escape(str(garbled)) + r":\d+: not a valid DBC file"):
        preflight(rig)


def test_a_flood_of_unknown_ids_is_counted_and_the_bench_runs_on():
    with Bench(load_rig(RIGS["sim"])) as bench:
        flood = can.Bus(interface="virtual", channel=bench.bus.channel_id)
        try:
            for k in range(FLOOD_FRAMES):   # IDs 0x400-0x7BF: none is in the project DBCs (UDS is at 0x7E0)
                flood.send(can.Message(arbitration_id=0x400 + k % 0x3C0, data=bytes(8), is_extended_id=False))
        finally:
            flood.shutdown()
        bench.power_up()
        bench.loop.run_for(0.5)
        assert bench.bms.state == BmsState.NORMAL and bench.bms.contactors_closed
        monitor: Monitor = bench.monitor
        assert monitor.counters["unknown_id"] == FLOOD_FRAMES
        assert len(monitor.unknown_ids) == 64   # the first 64 IDs by value, the rest only counted
        assert monitor.problems()[0].startswith(f"{FLOOD_FRAMES} frame(s) with an ID not in the DBC: 0x400 x")
        assert not monitor.stopped() and monitor.stats["BMS_Status"].bad_counter == 0


def test_an_emulated_board_process_that_fails_at_startup_shows_its_output(tmp_path):
    rig = load_rig(rig_copy(tmp_path, "slcan", lambda text: text.replace("cell_ov_v = 4.25", "cell_ov_volts = 4.25")))
    with pytest.raises(HilError) as caught:
        Bench(rig)
    message = str(caught.value)
    assert f"`hil emulate --rig {rig.path}`) exited with code 2 before ready; output:" in message
    assert "unknown calibration key(s) ['cell_ov_volts']" in message


def test_an_emulated_board_process_that_never_gets_ready_times_out_showing_its_output(tmp_path):
    rig_path = rig_copy(tmp_path, "slcan", lambda text: text.replace("startup_timeout_s = 20.0",
                                                                      "startup_timeout_s = 0.05"))
    with pytest.raises(HilTimeout, match=re.escape(f"`hil emulate --rig {rig_path}`) not ready within 0.05 s; "
                                                   "output so far:")):
        EmulatorProcess(load_rig(rig_path))
    assert all(gone_within(pid, 5.0) for pid in emulate_processes(rig_path))   # and it was stopped


@pytest.mark.wire
def test_a_can_adapter_lost_mid_run_is_device_lost_naming_it():
    bench = Bench(load_rig(RIGS["slcan"]))
    try:
        bench.power_up()
        pty = bench.emulator.endpoints["main"][1]
        os.kill(bench.emulator.proc.pid, signal.SIGKILL)   # the adapter and boards vanish, as if unplugged
        with pytest.raises(DeviceLost) as caught:
            bench.loop.run_for(5.0)  # generous: a loaded machine may take a while to reap the boards
    finally:
        bench.close()   # releases what is left, the dead adapter included, without raising
    assert f"{RIGS['slcan']} [can.main]: CAN adapter slcan on {pty} failed mid-run" in str(caught.value)
    assert "emulated boards' process (`hil emulate`) exited with code -9" in str(caught.value)


@pytest.mark.wire
def test_boards_that_stop_reading_are_device_lost_within_the_write_timeout_not_a_hang():
    """Boards frozen (SIGSTOP here; hung firmware on a bench) stop reading their adapter's port. Once its
    buffer is full, a blocking write would hang the loop, the safe state and the run, forever."""
    bench = Bench(load_rig(RIGS["slcan"]))
    pid = bench.emulator.proc.pid
    # Without the timeout this test would hang too: the boards are woken after 20 s, and it fails instead.
    wake = threading.Timer(20.0, os.kill, (pid, signal.SIGCONT))
    try:
        bench.power_up()
        os.kill(pid, signal.SIGSTOP)
        wake.start()
        with pytest.raises(DeviceLost) as caught:
            bench.loop.run_for(30.0)   # the pty's buffer fills within a second; a write waits 2 s
        assert f"the device took no data for {SERIAL_WRITE_TIMEOUT_S:g} s" in str(caught.value)
        assert f"the emulated boards' process (`hil emulate`, pid {pid}) is stopped" in str(caught.value)
        assert bench.loop.t_s < 10.0
    finally:
        wake.cancel()
        bench.close()   # kills the stopped boards: SIGTERM waits for a SIGCONT, SIGKILL does not
    assert gone_within(pid, 5.0)


def test_boards_that_crash_mid_run_are_named_with_their_last_output():
    """A crash (say, a traceback in the firmware) must not read as an unplugged cable: the error carries the
    dead process's last lines. A stand-in process plays the boards' part: ready, then a traceback."""
    import subprocess
    import sys
    boards = object.__new__(EmulatorProcess)
    boards.proc = subprocess.Popen([sys.executable, "-c", "print('ready', flush=True)\n"
                                    "raise ZeroDivisionError('float division by zero in _main_task')"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert boards.proc.stdout.readline() == b"ready\n"  # what _wait_ready reads before a run
    status = boards.exit_status(wait_s=10.0)
    boards.stop()
    assert "exited with code 1; its last output:" in status
    assert "ZeroDivisionError: float division by zero in _main_task" in status
