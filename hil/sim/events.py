"""What the emulated boards did, as JSON lines a test can read after the fact (`hil emulate --events FILE`).

Each line is one event: `{"t_s": time.monotonic(), "wall_s": time.time(), "pid": ..., "board": ...,
"event": ..., ...}`. `t_s` is CLOCK_MONOTONIC, which every process on the machine shares, so a test can
compare it with its own `time.monotonic()` (e.g. the moment it killed the harness).

Each event is one `write()` on a file opened `O_APPEND`: it is on disk (in the page cache) as soon as the
call returns, survives a SIGKILL of the writer, and lines from several processes sharing one file never
interleave. Limits: no fsync, so a power cut can lose the last lines; lines above the pipe buffer size
(4 kB) would lose the no-interleave guarantee, and events here are under 300 bytes.
"""
from __future__ import annotations

import json
import os
import time

from hil.errors import ConfigError

ENV_VAR = "HIL_EMULATE_EVENTS"


class EventLog:
    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"events file {self.path!r} (--events or ${ENV_VAR}): cannot open it for "
                              f"appending ({exc.strerror}); give a path in a writable folder") from None

    def emit(self, board: str, event: str, **fields) -> None:
        """Append one event line now. `board` is "cell_emulator", "bms" or "emulate"."""
        record = {"t_s": time.monotonic(), "wall_s": time.time(), "pid": os.getpid(), "board": board,
                  "event": event, **fields}
        os.write(self._fd, (json.dumps(record) + "\n").encode())

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every event in the file, oldest first. A torn last line (writer killed mid-write) is skipped."""
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events
