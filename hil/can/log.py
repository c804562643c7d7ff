"""Record every frame of a run, both directions, with python-can's own writers (chosen by suffix)."""
from __future__ import annotations

import threading
from pathlib import Path

import can


class CanLog(can.Listener):
    """A thread-safe python-can writer: the Notifier thread logs received frames, the loop logs sent ones."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer = can.Logger(str(self.path))
        self._lock = threading.Lock()
        self.frames = 0

    def on_message_received(self, msg: can.Message) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.on_message_received(msg)
                self.frames += 1

    def stop(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
