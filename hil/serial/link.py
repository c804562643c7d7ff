"""Framed request/response over a serial port, a pty or a TCP socket, with timeouts and retries."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

import serial
from construct import Container

from hil.errors import ConfigError, DeviceLost, HilTimeout
from hil.serial.framing import FrameScanner
from hil.serial.protocols import FramedProtocol, ProtocolError, hex_preview

# Longest single blocking read. Short, so deadlines are kept without reconfiguring the port.
READ_POLL_S = 0.01
# Bytes of recent input kept to show in a timeout error.
RECENT_INPUT_BYTES = 64
# Rejected frames listed in a timeout error.
REJECTS_SHOWN = 3

# What a failing port raises through pyserial: its own errors, OS errors, and on POSIX termios.error,
# which tcflush lets through when a pty's other end has gone.
PORT_ERRORS: tuple[type[Exception], ...] = (serial.SerialException, OSError)
try:
    import termios

    PORT_ERRORS += (termios.error,)
except ImportError:  # Windows has no termios
    pass

_COUNTER_NAMES = ("bad_crc", "resyncs", "timeouts", "retries", "bad_frames", "unexpected")


def _accept_any(fields: Container) -> bool:
    return True


class SerialLink:
    """One device speaking one :class:`~hil.serial.protocols.FramedProtocol` over pyserial.

    ``url`` is anything ``serial.serial_for_url`` opens: ``/dev/ttyUSB0``, a pty path, or
    ``socket://127.0.0.1:PORT``. Ports are opened exclusively, so a port another program holds is
    reported as busy. Protocol-agnostic: the protocol object supplies sync bytes, frame length,
    checksum and the construct declaration.

    ``counters``: ``bad_crc`` frames dropped for a wrong checksum, ``resyncs`` runs of garbage
    skipped, ``timeouts`` attempts that got no acceptable frame, ``retries`` requests resent,
    ``bad_frames`` checksum-valid frames that did not decode, ``unexpected`` frames ``accept`` refused
    (e.g. an RS485 echo of the request, or a late answer to an earlier one).

    Raises :class:`hil.errors.ConfigError` if the port cannot be opened, :class:`hil.errors.DeviceLost`
    if it fails after opening, :class:`hil.errors.HilTimeout` when no acceptable frame arrives.
    Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        url: str,
        protocol: FramedProtocol,
        *,
        baudrate: int = 115200,
        timeout_s: float = 0.5,
        retries: int = 2,
    ) -> None:
        if timeout_s <= 0 or retries < 0:
            raise ConfigError(
                f"serial link {url!r}: timeout_s must be > 0 and retries >= 0, got {timeout_s} and {retries}"
            )
        self.url = url
        self.protocol = protocol
        self.timeout_s = timeout_s
        self.retries = retries
        self.counters = dict.fromkeys(_COUNTER_NAMES, 0)
        self._scanner = FrameScanner(protocol, self.counters)
        self._ready: collections.deque[bytes] = collections.deque()
        self._recent_input = bytearray()
        self._port = self._open(baudrate)

    def _open(self, baudrate: int) -> serial.SerialBase:
        expected = f"a {self.protocol.name} at {baudrate} baud"
        try:
            return serial.serial_for_url(
                self.url, baudrate=baudrate, timeout=READ_POLL_S, write_timeout=self.timeout_s, exclusive=True
            )
        except ValueError as error:
            raise ConfigError(
                f"serial port {self.url!r}: {error}. Expected {expected} at a device path, a pty path "
                "or socket://HOST:PORT"
            ) from None
        except PORT_ERRORS as error:
            raise ConfigError(
                f"cannot open serial port {self.url!r} ({error}). Expected {expected}: check the rig "
                "file's port, that the device is plugged in and powered, and that no other program "
                "holds the port"
            ) from None

    def __enter__(self) -> SerialLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the port. Safe to call twice."""
        self._port.close()

    def write(self, frame: bytes) -> None:
        """Send one frame; raises HilTimeout if it cannot leave within ``timeout_s``."""
        try:
            self._port.write(frame)
            self._port.flush()
        except serial.SerialTimeoutException:
            raise HilTimeout(
                f"{self.protocol.name} on {self.url}: could not send {len(frame)} bytes within "
                f"{self.timeout_s} s; is the device reading (flow control, a stalled socket)?"
            ) from None
        except PORT_ERRORS as error:
            raise self._lost("write", error) from None

    def request(self, frame: bytes, accept: Callable[[Container], bool] = _accept_any) -> bytes:
        """Send ``frame`` and return the first valid response frame that ``accept(parsed)`` takes.

        Unread input from before the request is discarded. Each attempt waits ``timeout_s``; the
        request is resent up to ``retries`` times. The returned bytes have passed the checksum and
        decode with ``protocol.parse``.
        """
        self._discard_stale_input()
        rejected: list[str] = []
        attempts = self.retries + 1
        for attempt in range(attempts):
            if attempt:
                self.counters["retries"] += 1
            self.write(frame)
            response = self._await_frame(accept, time.monotonic() + self.timeout_s, rejected)
            if response is not None:
                return response
            self.counters["timeouts"] += 1
        raise HilTimeout(self._timeout_message(f"response to {hex_preview(frame)}", attempts, rejected))

    def read_frame(self, accept: Callable[[Container], bool] = _accept_any, timeout_s: float | None = None) -> bytes:
        """Wait for one more valid frame that ``accept`` takes, e.g. the rest of a multi-frame answer."""
        rejected: list[str] = []
        wait_s = self.timeout_s if timeout_s is None else timeout_s
        frame = self._await_frame(accept, time.monotonic() + wait_s, rejected)
        if frame is None:
            self.counters["timeouts"] += 1
            raise HilTimeout(self._timeout_message("frame", 1, rejected, wait_s))
        return frame

    def _discard_stale_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except PORT_ERRORS as error:
            raise self._lost("flushing input", error) from None
        self._scanner.reset()
        self._ready.clear()
        self._recent_input.clear()

    def _await_frame(self, accept: Callable[[Container], bool], deadline: float, rejected: list[str]) -> bytes | None:
        while True:
            while self._ready:
                frame = self._ready.popleft()
                try:
                    fields = self.protocol.parse(frame)
                except ProtocolError as error:
                    self.counters["bad_frames"] += 1
                    rejected.append(str(error))
                    continue
                if accept(fields):
                    return frame
                self.counters["unexpected"] += 1
                rejected.append(f"unexpected frame {hex_preview(frame)}")
            if time.monotonic() >= deadline:
                return None
            self._ready.extend(self._scanner.feed(self._read_some()))

    def _read_some(self) -> bytes:
        try:
            data = self._port.read(self._port.in_waiting or 1)
        except PORT_ERRORS as error:
            raise self._lost("read", error) from None
        self._recent_input += data
        del self._recent_input[:-RECENT_INPUT_BYTES]
        return data

    def _lost(self, action: str, error: Exception) -> DeviceLost:
        return DeviceLost(
            f"{self.protocol.name} on {self.url}: device lost during {action} ({error}). It was open "
            "before; check its cable, power and USB connection, or whether the emulated board exited"
        )

    def _timeout_message(self, what: str, attempts: int, rejected: list[str], wait_s: float | None = None) -> str:
        wait_s = self.timeout_s if wait_s is None else wait_s
        message = (
            f"{self.protocol.name} on {self.url}: no valid {what} within {wait_s} s "
            f"({attempts} attempt{'s' if attempts > 1 else ''}); expected a frame starting "
            f"{self.protocol.sync.hex(' ')}. "
        )
        pending = self._scanner.pending
        if pending:
            expected_size = self._scanner.expected_size()
            needed = f" of the {expected_size} its header declares" if expected_size else ""
            message += f"Partial frame, {len(pending)} bytes{needed}: {hex_preview(pending)}. "
        elif self._recent_input:
            message += f"Last bytes received (none a valid frame): {hex_preview(bytes(self._recent_input))}. "
        else:
            message += "Nothing was received: is the device powered, wired (TX/RX) and at this baud rate? "
        if rejected:
            message += f"Rejected: {'; '.join(rejected[-REJECTS_SHOWN:])}. "
        return message + f"Counters: {self.counters}"
