"""SCPI instruments over a serial port (pyserial), and the line scanner their device side reads with.

SCPI is text: a command per line, a query answered with one line. `ScpiPort` sends a command, sends a
query and waits for its line with a deadline, and reads the instrument's error queue (`SYST:ERR?`) so a
refused setting is an error naming the instrument and the command, never a setting silently not made.

`LoopbackScpi` is the same conversation with an instrument emulated in this process (the sim rig's lab
supply): the same text goes through the instrument's own parser, without a pty.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import serial

from hil.errors import ConfigError, DeviceLost, HilError, HilTimeout
from hil.serial.link import PORT_ERRORS, READ_POLL_S

TERMINATOR = b"\n"
MAX_LINE_BYTES = 4096   # a longer "line" is garbage (a wrong baud rate): it is dropped, not kept growing
SEEN_BYTES = 64         # of what came instead of an answer, shown in a timeout


class InstrumentError(HilError):
    """An instrument refused a command: its SCPI error, with the command that caused it."""


class LineScanner:
    """Split a byte stream into lines (without their "\\r\\n"). Pure: bytes in, lines out. The same `feed`
    and `reset` as `hil.serial.framing.FrameScanner`, so a serial device can read either."""

    def __init__(self, counters: dict[str, int] | None = None):
        self.counters = counters if counters is not None else {}
        self.counters.setdefault("overlong", 0)
        self._buffer = bytearray()

    def reset(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        *lines, rest = self._buffer.split(TERMINATOR)
        if len(rest) > MAX_LINE_BYTES:
            self.counters["overlong"] += 1
            rest = b""
        self._buffer = bytearray(rest)
        return [line.rstrip(b"\r") for line in lines if line.strip()]


class ScpiPort:
    """One SCPI instrument on `url` (a device path, a pty, or `socket://HOST:PORT`). `where` names it in
    errors (the rig file and table). Raises ConfigError if the port cannot be opened, DeviceLost if it fails
    after, HilTimeout when a query gets no answer. Not thread-safe: one caller at a time."""

    def __init__(self, url: str, *, where: str, baudrate: int = 9600, timeout_s: float = 1.0):
        self.url, self.where, self.timeout_s = url, where, timeout_s
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=READ_POLL_S,
                                               write_timeout=timeout_s, exclusive=True)
        except (ValueError, *PORT_ERRORS) as error:
            raise ConfigError(f"{where}: cannot open the instrument's serial port {url!r} ({error}). Expected "
                              f"a SCPI instrument at {baudrate} baud: check the port, that it is plugged in and "
                              "powered, and that no other program holds it") from None
        self._scanner = LineScanner()

    def write(self, command: str) -> None:
        try:
            self._port.write(command.encode("ascii") + TERMINATOR)
            self._port.flush()
        except serial.SerialTimeoutException:
            raise HilTimeout(f"{self.where} on {self.url}: could not send {command!r} within {self.timeout_s} s; "
                             "is the instrument reading (flow control)?") from None
        except PORT_ERRORS as error:
            raise self._lost(f"sending {command!r}", error) from None

    def query(self, command: str) -> str:
        """Send a query and return its answer line, without the terminator."""
        try:
            self._port.reset_input_buffer()   # an earlier query's late answer is not this one's
        except PORT_ERRORS as error:
            raise self._lost("flushing input", error) from None
        self._scanner.reset()
        self.write(command)
        seen = bytearray()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                data = self._port.read(self._port.in_waiting or 1)
            except PORT_ERRORS as error:
                raise self._lost(f"reading the answer to {command!r}", error) from None
            seen += data
            lines = self._scanner.feed(data)
            if lines:
                return lines[0].decode("ascii", "replace").strip()
        shown = bytes(seen[-SEEN_BYTES:])
        raise HilTimeout(f"{self.where} on {self.url}: no answer to {command!r} within {self.timeout_s} s; "
                         + (f"received {shown!r}, no complete line (is the baud rate right, and does it end "
                            "lines with \\n?)" if seen else
                            "nothing was received: is the instrument on, wired, at this baud rate, and in SCPI "
                            "(remote) mode?"))

    def close(self) -> None:
        self._port.close()

    def _lost(self, action: str, error: Exception) -> DeviceLost:
        return DeviceLost(f"{self.where} on {self.url}: instrument lost while {action} ({error}); it was open "
                          "before: check its cable and power, or whether the emulated boards exited")


class LoopbackScpi:
    """`ScpiPort`'s conversation with an instrument in this process: `answer(line, now_s)` is its parser, and
    `now_s()` the bench clock the instrument's timing (a voltage list) runs on."""

    def __init__(self, answer: Callable[[bytes, float], bytes | None], now_s: Callable[[], float], where: str):
        self._answer, self._now_s, self.where, self.url = answer, now_s, where, "in-process"

    def write(self, command: str) -> None:
        self._answer(command.encode("ascii"), self._now_s())

    def query(self, command: str) -> str:
        reply = self._answer(command.encode("ascii"), self._now_s())
        if reply is None:
            raise HilTimeout(f"{self.where}: no answer to {command!r}: the emulated instrument does not know it "
                             "as a query")
        return reply.decode("ascii").strip()

    def close(self) -> None:
        pass


def checked(port: ScpiPort | LoopbackScpi, *commands: str) -> None:
    """Send `commands`, then read the instrument's error queue: an InstrumentError naming the instrument,
    the commands and every error it reported; the queue is left empty."""
    for command in commands:
        port.write(command)
    errors = []
    for _ in range(32):   # a queue holds a few; an instrument that never says "0" must not hang this
        answer = port.query("SYST:ERR?")
        code = answer.split(",", 1)[0].strip()
        if code in ("0", "+0"):
            break
        errors.append(answer)
    if errors:
        raise InstrumentError(f"{port.where} on {port.url} refused {'; '.join(commands)!r}: {'; '.join(errors)}")
