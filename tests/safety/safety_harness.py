"""Helpers for the safety tests: a harness run in its own process and stopped from outside (a signal,
SIGKILL), and read-back of the CAN log it leaves behind.

A module of its own name: `from conftest import ...` finds whichever folder's conftest pytest loaded last.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import can
import pytest

ROOT = Path(__file__).resolve().parents[2]
RIGS = {"sim": ROOT / "rigs" / "sim.toml", "slcan": ROOT / "rigs" / "slcan.toml"}
START_TIMEOUT_S = 60.0   # a harness process up to its first progress line (imports, boards, power-up)
STOP_TIMEOUT_S = 30.0    # a stopped harness to exit: safe state, closing, report
CONTACTORS = ("BMS_ContactorPos", "BMS_ContactorNeg", "BMS_ContactorPre")

# A test that powers the bench up, draws current and runs until stopped from outside, printing its progress.
RUNNING_TEST = textwrap.dedent("""
    def test_runs_until_stopped(bench):
        bench.power_up()
        bench.set_load(8.0, honour_limits=False)
        while bench.loop.t_s < 600.0:
            bench.loop.run_for(0.25)
            print(f"progress t_s={bench.loop.t_s:.3f} closed={bench.bms.contactors_closed}", flush=True)
""")


class Harness:
    """A harness process (`python -m pytest ...` or `python -m hil ...`) whose output lines are read as they
    come, each with the `time.monotonic()` it arrived at."""

    def __init__(self, argv: list[str], env: dict | None = None, own_process_group: bool = False):
        # SIGINT at its default, whatever this process inherited, so the child's Python turns it into
        # KeyboardInterrupt (a child started with SIGINT ignored keeps ignoring it). In a process group of
        # its own, `os.killpg` reaches it and its children as a terminal's Ctrl-C would.
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                                     start_new_session=own_process_group)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_for(self, predicate, timeout_s: float = START_TIMEOUT_S) -> str:
        """The first output line `predicate` accepts; fails showing the output if none comes in time."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            lines = self.lines[seen:]
            seen += len(lines)
            for _, line in lines:
                if predicate(line):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive() and seen == len(self.lines):
                pytest.fail(f"harness exited with code {self.proc.returncode} first; output:\n{self.output()}")
            time.sleep(0.01)
        pytest.fail(f"no matching line within {timeout_s:g} s; output:\n{self.output()}")

    def progress(self) -> list[tuple[float, float, bool]]:
        """The RUNNING_TEST progress lines so far: (arrival time, bench time t_s, contactors closed)."""
        rows = []
        for arrived_s, line in list(self.lines):
            if line.startswith("progress "):
                fields = dict(item.split("=") for item in line.split()[1:])
                rows.append((arrived_s, float(fields["t_s"]), fields["closed"] == "True"))
        return rows

    def children(self) -> list[int]:
        """Process ids of the harness's children (the `hil emulate` boards on the slcan rig)."""
        pids = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*"):
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        return pids

    def finish(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout_s)
            pytest.fail(f"harness still running {timeout_s:g} s after being stopped; output:\n{self.output()}")
        self._reader.join(timeout_s)
        return code


def run_pytest(tmp_path: Path, rig: str, test_source: str = RUNNING_TEST, *extra: str) -> Harness:
    """Start pytest on `test_source` (the `bench` fixture on `rig`), reporting to tmp_path/report."""
    test_file = tmp_path / "test_generated.py"
    test_file.write_text(test_source)
    return Harness([sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", "--rig", str(RIGS[rig]),
                    "--hil-report", str(tmp_path / "report"), f"--junitxml={tmp_path / 'junit.xml'}",
                    str(test_file), *extra])


def only(paths) -> Path:
    found = list(paths)
    assert len(found) == 1, f"expected one file, found {found}"
    return found[0]


def gone_within(pid: int, timeout_s: float) -> bool:
    """True once process `pid` has exited (or is a zombie no one reaped) within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def decoded_frames(log_path: Path, db) -> list[tuple[float, str, dict]]:
    """Every frame of a CAN log that the DBC knows, as (timestamp, message name, raw signal values)."""
    frames = []
    for msg in can.LogReader(str(log_path)):
        if msg.is_error_frame:
            continue
        try:
            message = db.get_message_by_frame_id(msg.arbitration_id)
        except KeyError:
            continue
        frames.append((msg.timestamp, message.name, message.decode(msg.data, decode_choices=False)))
    return frames
