"""Device side of an slcan (LAWICEL) USB-CAN adapter, so an emulated board can sit behind a pty.

The harness opens the pty's slave path with python-can's own client
(``can.Bus(interface="slcan", channel=slave_path, sleep_after_open=0)``); the emulated board owns the
master fd through :class:`SlcanDeviceBus`.

Command set and replies follow the LAWICEL CANUSB/CAN232 manual: ``\\r`` acknowledges, BEL (``\\a``)
rejects, and a transmitted ``t``/``r`` is acknowledged ``z\\r`` and ``T``/``R`` ``Z\\r``.

Limits, stated plainly:
- classic CAN only: FD commands (``d D b B Y``) are rejected with BEL, and FD or error frames cannot
  be sent;
- no arbitration, bus timing or bus-off: the bitrate is recorded, not simulated;
- the acceptance filter (``M``/``m``), auto-poll (``X``/``P``/``A``) and UART speed (``U``) commands are
  rejected; python-can's client never sends them.
"""

from __future__ import annotations

import collections
import errno
import math
import os
import pty
import select
import string
import time
import tty

import can

from hil.errors import DeviceLost, HilTimeout

OK = b"\r"
BEL = b"\a"

# LAWICEL "Sn" setup codes, in bit/s.
BITRATES_BPS = {
    0: 10_000,
    1: 20_000,
    2: 50_000,
    3: 100_000,
    4: 125_000,
    5: 250_000,
    6: 500_000,
    7: 750_000,
    8: 1_000_000,
}

# "Vhhss": hardware and firmware version, two decimal digits each (python-can parses them as int).
VERSION_REPLY = b"V0101\r"
DETAILED_VERSION_REPLY = b"v0101\r"
SERIAL_NUMBER_REPLY = b"NHIL0\r"

# LAWICEL timestamps count milliseconds and wrap at 60 000.
TIMESTAMP_WRAP_MS = 60_000

# The longest valid command is "T" + 8 id + 1 dlc + 16 data = 26 characters. A longer line is
# garbage; it is dropped while it accumulates so a stream without "\r" cannot grow memory.
MAX_LINE_BYTES = 32

_HEX_DIGITS = frozenset(string.hexdigits.encode())
_DLC_FIELDS = frozenset(b"%d" % dlc for dlc in range(9))
_COUNTER_NAMES = ("bad_commands", "rx_frames", "tx_frames", "dropped_closed", "dropped_overrun")

# Until the host opens the pty, the master reports hang-up on every poll; wait in these steps.
HOST_WAIT_POLL_S = 0.02
# python-can's send(timeout=None) means "block"; a pty nobody reads must not block a board forever.
SEND_TIMEOUT_DEFAULT_S = 1.0


def open_pty() -> tuple[int, str]:
    """Open a pseudo-terminal for an slcan device: returns (master_fd, slave_path).

    Both ends are raw (no echo, no CR/LF translation). The master fd is non-blocking. The slave fd is
    closed here, so that once the host has opened and closed the slave path, reading the master
    reports the hang-up.
    """
    master_fd, slave_fd = pty.openpty()
    tty.setraw(master_fd)
    tty.setraw(slave_fd)
    slave_path = os.ttyname(slave_fd)
    os.close(slave_fd)
    os.set_blocking(master_fd, False)
    return master_fd, slave_path


def _is_hex(field: bytes) -> bool:
    return bool(field) and all(byte in _HEX_DIGITS for byte in field)


def format_frame_line(msg: can.Message, timestamp_ms: int | None = None) -> bytes:
    """One ``t/T/r/R`` line (with ``\\r``) for a frame the device reports to the host.

    ``timestamp_ms`` (0..59 999) is appended as four hex digits when timestamps are on (``Z1``).
    Raises ValueError for FD and error frames, which this slcan dialect cannot carry.
    """
    if msg.is_fd or msg.is_error_frame:
        raise ValueError(f"slcan carries classic CAN data/remote frames only, not {msg!r}")
    if not 0 <= msg.dlc <= 8:
        raise ValueError(f"slcan DLC must be 0..8, got {msg.dlc} in {msg!r}")
    kind = "r" if msg.is_remote_frame else "t"
    if msg.is_extended_id:
        line = f"{kind.upper()}{msg.arbitration_id:08X}{msg.dlc:d}"
    else:
        line = f"{kind}{msg.arbitration_id:03X}{msg.dlc:d}"
    if not msg.is_remote_frame:
        line += bytes(msg.data[: msg.dlc]).hex().upper()
    if timestamp_ms is not None:
        line += f"{timestamp_ms % TIMESTAMP_WRAP_MS:04X}"
    return line.encode("ascii") + OK


class SlcanCommandParser:
    """LAWICEL command interpreter of the device side: host bytes in, (reply bytes, frames) out.

    Pure: no I/O and no clock, so it can be fuzzed. It keeps the channel state (open, listen-only,
    bitrate, timestamps) and ``counters``. Every input is answered, never raised: a line that is not
    a valid command gets BEL, counts in ``bad_commands``, and parsing resumes after the next ``\\r``.
    """

    def __init__(self) -> None:
        self.is_open = False
        self.listen_only = False
        self.bitrate_bps: int | None = None
        self.timestamps_on = False
        self.counters = dict.fromkeys(_COUNTER_NAMES, 0)
        self._line = bytearray()
        self._line_overflowed = False

    def feed(self, data: bytes) -> tuple[bytes, list[can.Message]]:
        """Consume host bytes; return the replies to write back and the data frames received."""
        replies = bytearray()
        frames: list[can.Message] = []
        start = 0
        while (end := data.find(OK, start)) >= 0:
            self._collect(data[start:end])
            replies += self._reject() if self._line_overflowed else self._execute(bytes(self._line), frames)
            self._line.clear()
            self._line_overflowed = False
            start = end + 1
        self._collect(data[start:])
        return bytes(replies), frames

    def _collect(self, part: bytes) -> None:
        room = MAX_LINE_BYTES - len(self._line)
        self._line += part[:room]
        self._line_overflowed |= len(part) > room

    def _reject(self) -> bytes:
        self.counters["bad_commands"] += 1
        return BEL

    def _execute(self, line: bytes, frames: list[can.Message]) -> bytes:
        if not line:
            return OK
        command, args = line[:1], line[1:]
        if command in b"tTrR":
            return self._receive_frame(command, args, frames)
        if command in (b"O", b"L") and not args:
            self.is_open, self.listen_only = True, command == b"L"
            return OK
        if command == b"C" and not args:
            self.is_open = self.listen_only = False
            return OK
        if command in b"SsZ":
            return self._setup(command, args)
        if not args and command == b"V":
            return VERSION_REPLY
        if not args and command == b"v":
            return DETAILED_VERSION_REPLY
        if not args and command == b"N":
            return SERIAL_NUMBER_REPLY
        if not args and command == b"F" and self.is_open:
            return b"F00\r"  # no error flags: this device has no bus to fail on
        return self._reject()

    def _setup(self, command: bytes, args: bytes) -> bytes:
        # LAWICEL accepts setup commands only while the channel is closed.
        if self.is_open:
            return self._reject()
        if command == b"S" and len(args) == 1 and args[0] - ord("0") in BITRATES_BPS:
            self.bitrate_bps = BITRATES_BPS[args[0] - ord("0")]
        elif command == b"s" and len(args) == 4 and _is_hex(args):
            pass  # BTR0/BTR1 registers: accepted for compatibility, the bitrate is not simulated
        elif command == b"Z" and args in (b"0", b"1"):
            self.timestamps_on = args == b"1"
        else:
            return self._reject()
        return OK

    def _receive_frame(self, command: bytes, args: bytes, frames: list[can.Message]) -> bytes:
        is_extended = command in b"TR"
        is_remote = command in b"rR"
        id_chars = 8 if is_extended else 3
        id_field, dlc_field, data_field = args[:id_chars], args[id_chars : id_chars + 1], args[id_chars + 1 :]
        if len(id_field) != id_chars or not _is_hex(id_field) or dlc_field not in _DLC_FIELDS:
            return self._reject()
        arbitration_id = int(id_field, 16)
        dlc = int(dlc_field)
        if arbitration_id > (0x1FFFFFFF if is_extended else 0x7FF):
            return self._reject()
        expected_data_chars = 0 if is_remote else 2 * dlc
        if len(data_field) != expected_data_chars or (data_field and not _is_hex(data_field)):
            return self._reject()
        if not self.is_open or self.listen_only:
            # A listen-only or closed adapter cannot transmit; LAWICEL answers BEL.
            self.counters["dropped_closed"] += 1
            return BEL
        frames.append(
            can.Message(
                arbitration_id=arbitration_id,
                is_extended_id=is_extended,
                is_remote_frame=is_remote,
                dlc=dlc,
                data=None if is_remote else bytes.fromhex(data_field.decode("ascii")),
            )
        )
        self.counters["rx_frames"] += 1
        return b"Z\r" if is_extended else b"z\r"


class SlcanDeviceBus(can.BusABC):
    """The emulated board's CAN bus: a python-can bus on the master end of an slcan pty.

    Takes ownership of ``fd`` (``shutdown()`` closes it). Pass the pty's slave path as ``channel`` so
    errors name it. Host commands are answered while ``recv()`` runs, so a board must keep
    receiving. Frames from the host are returned only while the host has the channel open; frames
    sent while it is closed are dropped and counted in ``counters["dropped_closed"]``.

    When the host closes the pty after having written to it, ``recv()`` and ``send()`` raise
    :class:`hil.errors.DeviceLost`. Before the host's first byte, a hang-up only means "not opened
    yet", and ``recv()`` waits in ``HOST_WAIT_POLL_S`` steps.
    """

    def __init__(self, fd: int, channel: str = "slcan-device") -> None:
        self._fd = fd
        self._channel = channel
        self._parser = SlcanCommandParser()
        self.counters = self._parser.counters
        self._frames: collections.deque[can.Message] = collections.deque()
        self._host_seen = False
        self._fd_closed = False
        os.set_blocking(fd, False)
        self._read_poll = select.poll()
        self._read_poll.register(fd, select.POLLIN)
        self._write_poll = select.poll()
        self._write_poll.register(fd, select.POLLOUT)
        self.channel_info = f"slcan device on {channel}"
        super().__init__(channel=channel)

    @property
    def is_open(self) -> bool:
        """True while the host has the CAN channel open (``O`` or ``L`` received, no ``C`` since)."""
        return self._parser.is_open

    @property
    def bitrate_bps(self) -> int | None:
        """The bitrate the host set with ``Sn``, or None if it never set one."""
        return self._parser.bitrate_bps

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._frames:
            remaining_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            data = self._read_available(remaining_s)
            if data:
                self._answer_host(data)
            # Checked after reading, so recv(timeout=0) still answers the host's pending commands.
            if not self._frames and deadline is not None and time.monotonic() >= deadline:
                return None, False
        return self._frames.popleft(), False

    def _answer_host(self, data: bytes) -> None:
        replies, frames = self._parser.feed(data)
        self._write(replies, SEND_TIMEOUT_DEFAULT_S)
        now = time.time()
        for frame in frames:
            frame.timestamp = now
            frame.channel = self._channel
        self._frames.extend(frames)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Report ``msg`` to the host as if received from the CAN bus.

        Waits up to ``timeout`` (``SEND_TIMEOUT_DEFAULT_S`` when None) for room in the pty, then
        raises :class:`hil.errors.HilTimeout`. Raises ValueError for FD or error frames.
        """
        self._check_host_present()
        if not self._parser.is_open:
            self.counters["dropped_closed"] += 1
            return
        timestamp_ms = time.monotonic_ns() // 1_000_000 if self._parser.timestamps_on else None
        line = format_frame_line(msg, timestamp_ms)
        if not self._write_poll.poll(0):
            # The host is not reading and the pty is full: drop the frame, as a real adapter overruns,
            # rather than stall the board (whose watchdogs run in the same loop).
            self.counters["dropped_overrun"] += 1
            return
        self._write(line, SEND_TIMEOUT_DEFAULT_S if timeout is None else timeout)
        self.counters["tx_frames"] += 1

    def shutdown(self) -> None:
        """Close the master fd; the host then sees the adapter vanish. Safe to call twice."""
        super().shutdown()
        if not self._fd_closed:
            self._fd_closed = True
            os.close(self._fd)

    def _lost(self, seen: str) -> DeviceLost:
        return DeviceLost(
            f"slcan device lost: the host hung up {self._channel} (master fd {self._fd}: {seen}). "
            "The harness closed the pty or exited; the emulated board should go safe and stop."
        )

    def _check_host_present(self) -> None:
        # Writes to a master whose slave is closed succeed silently, so ask poll() for the hang-up.
        if self._host_seen and any(event & select.POLLHUP for _, event in self._read_poll.poll(0)):
            raise self._lost("poll reported POLLHUP")

    def _read_available(self, timeout_s: float | None) -> bytes:
        timeout_ms = None if timeout_s is None else math.ceil(timeout_s * 1000)
        if not self._read_poll.poll(timeout_ms):
            return b""
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as error:
            if error.errno != errno.EIO:
                raise self._lost(f"read failed: {error}") from error
            data = b""
        if data:
            self._host_seen = True
            return data
        if self._host_seen:
            raise self._lost("read gave EIO")
        # Nobody has opened the slave yet: the master reports hang-up at once, so wait politely.
        time.sleep(HOST_WAIT_POLL_S if timeout_s is None else min(HOST_WAIT_POLL_S, timeout_s))
        return b""

    def _write(self, data: bytes, timeout_s: float) -> None:
        try:
            unsent = write_within(self._fd, data, timeout_s)
        except OSError as error:
            raise self._lost(f"write failed: {error}") from error
        if unsent:
            raise HilTimeout(
                f"slcan device on {self._channel}: the host read nothing for {timeout_s} s; "
                f"{unsent} of {len(data)} bytes still unsent ({data[len(data) - unsent:][:40]!r}...). "
                "Is the harness still receiving from this adapter?"
            )


def write_within(fd: int, data: bytes, timeout_s: float) -> int:
    """Write `data` to non-blocking `fd`, waiting for room up to `timeout_s` in all; return how many bytes
    were left unsent (0: all written). A reader that stops (a paused process, a full pty) costs at most
    `timeout_s`, never a hang. Other OSErrors (EIO: the other side hung up) propagate."""
    view = memoryview(data)
    try:
        view = view[os.write(fd, view):]
    except BlockingIOError:
        pass
    if not view:
        return 0   # the usual case: room for it all
    deadline_s = time.monotonic() + timeout_s
    writable = select.poll()
    writable.register(fd, select.POLLOUT)
    while view:
        remaining_s = deadline_s - time.monotonic()
        if remaining_s <= 0 or not writable.poll(math.ceil(remaining_s * 1000)):
            return len(view)
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            pass
    return 0
