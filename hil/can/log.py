"""Record every frame of a run, both directions, with python-can's own writers (chosen by suffix).

`.blf` and `.asc` are what Vector's tools and most CAN viewers read; `.log` is candump's format, which
`cantools decode` reads from stdin; `.csv`, `.trc` and `.mf4` (needs asammdf) work too.

Flushing: python-can's BLF writer keeps frames in memory until 128 KiB of them fill a compressed container
(about 3,000 frames, many seconds of a quiet bus), and the text writers sit behind a file buffer. A
background thread therefore flushes every `flush_interval_s` (0.5 s by default) of wall time whenever
frames came in since the last flush, so a process that dies by SIGKILL loses at most that much of its log.
For BLF each flush closes a container early (slightly worse compression), and the file header (object count,
end time) is only written by `stop()`; python-can's `BLFReader` reads a file without it, frame by frame.
"""
from __future__ import annotations

import threading
from pathlib import Path

import can

from hil.errors import ConfigError

FLUSH_INTERVAL_S = 0.5


class CanLog(can.Listener):
    """A thread-safe python-can writer: the Notifier thread logs received frames, the loop logs sent ones.

    Call `stop()` at the end of a run (a `can.Notifier` does so for its listeners): it ends the flush
    thread and completes the file.
    """

    def __init__(self, path: str | Path, flush_interval_s: float = FLUSH_INTERVAL_S):
        self.path = Path(path)
        try:
            self._writer = can.Logger(str(self.path))
        except ValueError as exc:  # python-can's "unknown log format" for a suffix it has no writer for
            raise ConfigError(f"{self.path}: cannot log CAN frames to this file: {exc}; expected a suffix "
                              f"python-can writes: {sorted(can.io.logger.MESSAGE_WRITERS)}") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot create the CAN log: {exc}") from None
        self._lock = threading.Lock()
        self._dirty = False
        self.frames = 0
        self.flush_interval_s = flush_interval_s
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, name=f"CanLog flush {self.path.name}",
                                         daemon=True)
        self._flusher.start()

    def on_message_received(self, msg: can.Message) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.on_message_received(msg)
                self.frames += 1
                self._dirty = True

    def flush(self) -> None:
        """Push every frame logged so far to the operating system (it survives the process from then on)."""
        with self._lock:
            if self._writer is None or not self._dirty:
                return
            self._dirty = False
            # BLFWriter has no public flush: `_flush()` writes the pending container (python-can 4.x).
            write_container = getattr(self._writer, "_flush", None)
            if write_container is not None:
                write_container()
            file = getattr(self._writer, "file", None)
            if file is not None and not file.closed:
                # BLF stamps count from the start time in the file header, which python-can writes only in
                # stop(): rewrite it (private `_write_header`, python-can 4.x), so a killed run keeps its times.
                write_header = getattr(self._writer, "_write_header", None)
                if write_header is not None and file.seekable():
                    end = file.tell()
                    file.seek(0)
                    write_header(end)
                    file.seek(end)
                file.flush()

    def _flush_periodically(self) -> None:
        while not self._stopping.wait(self.flush_interval_s):
            self.flush()

    def stop(self) -> None:
        """Flush, write the file's trailer (BLF header) and close it. Idempotent."""
        self._stopping.set()
        if self._flusher is not threading.current_thread():
            self._flusher.join()
        with self._lock:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
