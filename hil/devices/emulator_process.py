"""Start `hil emulate` as a separate OS process and learn its endpoints, as a bench would start boards.

Reading the child's output has a deadline; if the child dies or never says `ready`, the error shows what it
printed. Stopping sends SIGTERM (the boards go safe and exit), then SIGKILL after a grace period.
"""
from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from hil.errors import HilError, HilTimeout
from hil.rig import Rig, load_rig

STOP_GRACE_S = 5.0
LAST_LINES = 12  # of a crashed process's output, in an error: a traceback's end says what failed


class EmulatorProcess:
    def __init__(self, rig: Rig, timeout_s: float | None = None):
        """Start `hil emulate` on the rig's file with the rig's overrides. A rig whose data was changed in
        memory after loading is refused: the boards' process would run the file's values, not those."""
        if load_rig(rig.path, rig.overrides).data != rig.data:
            raise HilError(f"{rig.path}: this rig's data was changed after it was loaded, and `hil emulate` "
                           "loads the rig file itself, so its boards would not see the change; pass the change "
                           "as an override instead: load_rig(path, ['KEY=VALUE', ...]) or --set KEY=VALUE")
        self.rig = rig
        self.endpoints: dict[str, tuple[str, str]] = {}
        self.output: deque[str] = deque(maxlen=200)
        cmd = [sys.executable, "-m", "hil", "emulate", "--rig", str(rig.path)]
        for assignment in rig.overrides:
            cmd += ["--set", assignment]
        # Its own session: a Ctrl-C in the terminal (or a signal to the process group) must reach only the
        # harness, which then takes the boards to the safe state in order (load off first). The boards exit
        # when the harness stops them, or on their own once it is gone (hil.sim.emulate).
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready(timeout_s if timeout_s is not None else rig.startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _seen(self) -> str:
        return "\n    ".join(self.output) or "(no output)"

    def _wait_ready(self, timeout_s: float) -> None:
        # Raw reads of the pipe: a buffered readline() could swallow "ready" into a buffer select() can't see.
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        pending = b""
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise HilTimeout(f"emulated boards (`hil emulate --rig {self.rig.path}`) not ready within "
                                     f"{timeout_s:g} s; output so far:\n    {self._seen()}")
                if not sel.select(remaining_s):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = self.proc.wait(timeout=STOP_GRACE_S)
                    raise HilError(f"emulated boards (`hil emulate --rig {self.rig.path}`) exited with code "
                                   f"{code} before ready; output:\n    {self._seen()}")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    self.output.append(line)
                    parts = line.split()
                    if len(parts) == 4 and parts[0] == "endpoint":
                        self.endpoints[parts[1]] = (parts[2], parts[3])
                    elif line == "ready":
                        return

    def exit_status(self, wait_s: float = 0.0) -> str:
        """Whether the boards' process has exited, and how, for an error about a lost adapter. Waits up to
        `wait_s` for it: its pty fails (EIO) as soon as the process dies, before the process can be reaped."""
        try:
            code = self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            how = "stopped (SIGSTOP, or a debugger)" if _stopped(self.proc.pid) else "still running"
            return f"the emulated boards' process (`hil emulate`, pid {self.proc.pid}) is {how}"
        after_ready = self._drain()
        said = "; its last output:\n    " + "\n    ".join(after_ready[-LAST_LINES:]) if after_ready else ""
        return f"the emulated boards' process (`hil emulate`) exited with code {code}{said}"

    def _drain(self) -> list[str]:
        """What the exited process printed after `ready` (a crash's traceback): nobody reads the pipe while
        the boards run, so it is all still there, and with the writer gone the read ends."""
        if self.proc.stdout is None or self.proc.stdout.closed:
            return []
        text = self.proc.stdout.read().decode(errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_GRACE_S)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def _stopped(pid: int) -> bool:
    """Whether process `pid` is stopped (state T, or t when traced), per Linux's /proc; False elsewhere."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")
