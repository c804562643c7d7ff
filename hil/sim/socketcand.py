"""Device side of a socketcand server, so emulated boards can sit behind python-can's `socketcand` client.

The harness connects with ``can.Bus(interface="socketcand", host="127.0.0.1", port=PORT, channel=CH)``;
the emulated boards own the listening socket through :class:`SocketcandDeviceBus`. The ASCII protocol
follows linux-can/socketcand's raw mode: the server greets ``< hi >``; the client sends ``< open CH >``
and ``< rawmode >``, each answered ``< ok >``; then the client sends ``< send ID LEN B0 B1 ... >`` and
the server reports every frame as ``< frame ID SECS.USECS DATA >``.

Limits, stated plainly:
- bound to 127.0.0.1 only: socketcand has no authentication, and a test bench is no place for one;
- one client at a time; a second connection is refused (closed at once);
- raw mode only (no broadcast manager, control or ISO-TP modes), classic CAN only, no error frames;
- no UDP discovery beacon: the client is given the port;
- frames the boards send in the first `RAWMODE_SETTLE_S` after ``< ok >`` to ``< rawmode >`` are
  dropped (counted), because python-can's client reads that ``< ok >`` with one ``recv`` and would take
  a frame arriving in the same read for a broken handshake.
"""
from __future__ import annotations

import collections
import select
import socket
import time

import can

from hil.errors import ConfigError, DeviceLost, HilTimeout

LOOPBACK = "127.0.0.1"
RAWMODE_SETTLE_S = 0.05
SEND_TIMEOUT_DEFAULT_S = 1.0
MAX_COMMAND_CHARS = 128  # "< send 1FFFFFFF 8 ff ff ff ff ff ff ff ff >" is 44: longer is garbage
_COUNTER_NAMES = ("bad_commands", "rx_frames", "tx_frames", "dropped_not_raw", "refused_clients")


class SocketcandDeviceBus(can.BusABC):
    """The boards' CAN bus: a python-can bus served to one socketcand client on 127.0.0.1:`port`.

    `port` 0 takes a free port; `self.port` tells which. Host commands are answered while ``recv()``
    runs, so a board must keep receiving. When the client disconnects after having connected,
    ``recv()`` and ``send()`` raise :class:`hil.errors.DeviceLost`, as the slcan device does.
    """

    def __init__(self, port: int, channel: str, host: str = LOOPBACK) -> None:
        if host not in (LOOPBACK, "localhost"):
            raise ConfigError(f"socketcand host {host!r}: `hil emulate` serves socketcand on {LOOPBACK} only; "
                              f"set the rig's can.<bus>.host to \"{LOOPBACK}\"")
        self._server = socket.create_server((LOOPBACK, port))
        self._server.setblocking(False)
        self.port = self._server.getsockname()[1]
        self._channel = channel
        self._client: socket.socket | None = None
        self._client_seen = False
        self._raw_since_s: float | None = None
        self._pending = bytearray()
        self._frames: collections.deque[can.Message] = collections.deque()
        self.counters = dict.fromkeys(_COUNTER_NAMES, 0)
        self.channel_info = f"socketcand device {channel} on {LOOPBACK}:{self.port}"
        super().__init__(channel=channel)

    # Receive -------------------------------------------------------------------------------------------
    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._frames:
            remaining_s = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._serve(remaining_s)
            if not self._frames and deadline is not None and time.monotonic() >= deadline:
                return None, False
        return self._frames.popleft(), False

    def _serve(self, timeout_s: float | None) -> None:
        sockets = [self._server] + ([self._client] if self._client is not None else [])
        readable, _, _ = select.select(sockets, [], [], timeout_s)
        if self._server in readable:
            self._accept()
        if self._client is not None and self._client in readable:
            try:
                data = self._client.recv(4096)
            except ConnectionError as error:
                raise self._lost(f"receive failed: {error}") from error
            if not data:
                raise self._lost("the client closed the connection")
            self._pending += data
            self._execute_commands()

    def _accept(self) -> None:
        try:
            client, _ = self._server.accept()
        except BlockingIOError:
            return
        if self._client is not None:
            self.counters["refused_clients"] += 1
            client.close()
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client, self._client_seen = client, True
        self._reply("< hi >")

    def _execute_commands(self) -> None:
        while (end := self._pending.find(b">")) >= 0:
            start = self._pending.find(b"<")
            command = self._pending[start:end + 1].decode("ascii", errors="replace") if 0 <= start < end else ""
            del self._pending[:end + 1]
            self._execute(command)
        if len(self._pending) > MAX_COMMAND_CHARS:
            self.counters["bad_commands"] += 1
            self._pending.clear()

    def _execute(self, command: str) -> None:
        words = command[1:-1].split()
        if words[:1] == ["send"] and self._raw_since_s is not None:
            frame = _parse_send(words[1:])
            if frame is None:
                self.counters["bad_commands"] += 1
                self._reply("< error malformed send >")
                return
            frame.timestamp, frame.channel = time.time(), self._channel
            self._frames.append(frame)
            self.counters["rx_frames"] += 1
        elif words == ["open", self._channel]:
            self._reply("< ok >")
        elif words == ["rawmode"]:
            self._reply("< ok >")
            self._raw_since_s = time.monotonic()
        else:
            self.counters["bad_commands"] += 1
            self._reply(f"< error unknown command {' '.join(words)[:40]} >")

    # Send ----------------------------------------------------------------------------------------------
    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Report `msg` to the client as a frame from the bus; dropped until the client is in raw mode."""
        if msg.is_fd or msg.is_error_frame or msg.is_remote_frame:
            raise ValueError(f"socketcand raw mode here carries classic data frames only, not {msg!r}")
        if self._client is None or self._raw_since_s is None \
                or time.monotonic() - self._raw_since_s < RAWMODE_SETTLE_S:
            if self._client_seen and self._client is None:
                raise self._lost("no client")
            self.counters["dropped_not_raw"] += 1
            return
        can_id = f"{msg.arbitration_id:08X}" if msg.is_extended_id else f"{msg.arbitration_id:03X}"
        stamp = time.time()
        line = f"< frame {can_id} {int(stamp)}.{int(stamp % 1 * 1e6):06d} {bytes(msg.data[:msg.dlc]).hex().upper()} >"
        self._write(line.encode("ascii"), SEND_TIMEOUT_DEFAULT_S if timeout is None else timeout)
        self.counters["tx_frames"] += 1

    def _reply(self, text: str) -> None:
        self._write(text.encode("ascii"), SEND_TIMEOUT_DEFAULT_S)

    def _write(self, data: bytes, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        view = memoryview(data)
        while view:
            try:
                view = view[self._client.send(view):]
            except BlockingIOError:
                pass
            except OSError as error:
                raise self._lost(f"send failed: {error}") from error
            remaining_s = deadline - time.monotonic()
            if view and (remaining_s <= 0 or not select.select([], [self._client], [], remaining_s)[1]):
                raise HilTimeout(f"{self.channel_info}: the client read nothing for {timeout_s} s; "
                                 f"{len(view)} of {len(data)} bytes unsent. Is the harness still receiving?")

    # Lifecycle -----------------------------------------------------------------------------------------
    def _lost(self, seen: str) -> DeviceLost:
        if self._client is not None:
            self._client.close()
            self._client = None
        return DeviceLost(f"{self.channel_info}: the harness is gone ({seen}); the emulated boards should go "
                          "safe and stop")

    def shutdown(self) -> None:
        """Close the client connection and the listening socket. Safe to call twice."""
        super().shutdown()
        if self._client is not None:
            self._client.close()
            self._client = None
        self._server.close()


def _parse_send(fields: list[str]) -> can.Message | None:
    """`ID LEN B0 ...` (hex) of a ``< send >`` command, or None if it is not a valid classic frame."""
    try:
        can_id, dlc, data = int(fields[0], 16), int(fields[1], 16), bytes(int(b, 16) for b in fields[2:])
    except (IndexError, ValueError):
        return None
    extended = len(fields[0]) > 3
    if not 0 <= dlc <= 8 or len(data) != dlc or can_id > (0x1FFFFFFF if extended else 0x7FF):
        return None
    return can.Message(arbitration_id=can_id, is_extended_id=extended, dlc=dlc, data=data)
