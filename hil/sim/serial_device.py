"""The device end of an emulated board's serial port: a pty master that answers framed requests or text lines.

`SerialDevice.poll(now_s)` reads whatever the host has written, cuts it into checksum-valid frames of one
protocol (`hil.serial.framing.FrameScanner`), or into lines for a text instrument (`hil.serial.scpi.LineScanner`),
and writes back what `answer(frame, now_s)` returns. It
never blocks and never raises on the host's behaviour, so it can run inside a board's 1 ms loop.

Limits, stated plainly:
- one host at a time; a host may close the port and another open it (the pty survives: only this side's
  master fd owns it). Bytes a host left half-sent are dropped when it hangs up;
- an answer the host does not read (pty buffer full, about 4 kB) is dropped, as a UART would overrun;
- no baud rate: bytes move as fast as the pty does.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable

from hil.serial.framing import FrameScanner
from hil.serial.protocols import FramedProtocol
from hil.serial.scpi import LineScanner

READ_CHUNK_BYTES = 4096


class SerialDevice:
    def __init__(self, fd: int, path: str, protocol: FramedProtocol | None,
                 answer: Callable[[bytes, float], bytes | None]):
        """Own the non-blocking pty master `fd` (closed by `close()`); `path` is the slave the host opens.
        `protocol` None: a line-based text device (SCPI), each request one line."""
        self.path = path
        self.protocol = protocol
        self.counters = {"requests": 0, "answers_dropped": 0}
        self._fd = fd
        self._answer = answer
        self._scanner = FrameScanner(protocol, self.counters) if protocol is not None else LineScanner(self.counters)
        os.set_blocking(fd, False)

    def poll(self, now_s: float) -> None:
        """Answer every complete request received since the last call."""
        while data := self._read():
            for frame in self._scanner.feed(data):
                self.counters["requests"] += 1
                reply = self._answer(frame, now_s)
                if reply:
                    self._write(reply)

    def _read(self) -> bytes:
        try:
            return os.read(self._fd, READ_CHUNK_BYTES)
        except BlockingIOError:
            return b""
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            # EIO: no host has the slave open (not yet, or it hung up). A new host starts afresh.
            self._scanner.reset()
            return b""

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
        except OSError:  # full (EAGAIN) or no host (EIO): nobody would read it
            written = 0
        if written < len(data):
            self.counters["answers_dropped"] += 1

    def close(self) -> None:
        """Close the master; the host then sees the port vanish. Safe to call twice."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
