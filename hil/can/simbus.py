"""python-can's `virtual` bus, made cheap for a bench whose boards run in its own thread on a virtual clock.

On the sim rig every frame crosses an in-process bus twice a simulated millisecond or so (~750 frames per
simulated second on a 16S pack), and python-can's `VirtualBus` pays for thread safety the virtual clock does
not need: a `deepcopy` of each frame per receiver and a `queue.Queue` whose empty poll raises and catches
`queue.Empty`. Measured on the sim rig (`benchmarks/sil_speed.py`, pyinstrument), those two were ~24 % of
the whole run.

`SimBus` is a `VirtualBus` (same channel registry, same `send`/`recv` semantics: timestamps, `is_rx`,
`channel`, `receive_own_messages`, filters) with two changes:
- a frame is copied per receiver by its constructor, not by `deepcopy`;
- its receive queue is a `deque` (`_Inbox`), polled without an exception (or, with timeout 0, without
  python-can's receive loop) when empty.
A plain `VirtualBus` on the same channel (a test's sniffer or injector) still sends to and receives from it.

On a real clock a python-can `Notifier` thread reads the harness's bus with a blocking `recv`: there the bus
is a `SimBus(..., blocking=True)`, which keeps python-can's `queue.Queue` inbox (and its wake-up as a frame
arrives) and only sends cheaply. The boards, which poll from the loop's thread, keep the deque. Measured on
the 96S real-clock bench (`benchmarks/realtime_loop.py`), the deepcopies had cost the 1 kHz loop ~20 % of
its tick.

Limits: a blocking `recv(timeout > 0)` on an empty polled `SimBus` checks every 0.5 ms instead of waking at
once, which is why a bench reads it from the loop's own thread only. The inbox is unbounded, like a
`VirtualBus` with `rx_queue_size=0`. Sending is not locked: one thread sends on a given bus.
"""
from __future__ import annotations

import collections
import queue
import time

import can
from can.bus import LOG as _BUS_LOG  # where BusABC.recv logs each frame it returns
from can.interfaces.virtual import VirtualBus, channels_lock

_POLL_S = 0.0005


class _Inbox(collections.deque):
    """A deque with the part of `queue.Queue`'s interface `VirtualBus.send` uses (`put`), so a plain
    `VirtualBus` on the channel can deliver to it. `deque.append` is atomic in CPython, so a sender in
    another thread is safe. Equality is identity: `VirtualBus.shutdown` removes its queue from the channel's
    list by `==`, and two empty deques are equal."""

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        self.append(item)


class SimBus(VirtualBus):
    def __init__(self, channel="channel-0", receive_own_messages: bool = False, *, blocking: bool = False,
                 **kwargs) -> None:
        super().__init__(channel=channel, receive_own_messages=receive_own_messages, **kwargs)
        self.channel_info = f"hil sim bus channel {self.channel_id}"
        self.blocking = blocking
        if blocking:  # python-can's own queue and receive path, for a reader in another thread
            return
        inbox = _Inbox()
        with channels_lock:
            self.channel[self.channel.index(self.queue)] = inbox
        self.queue = inbox

    def recv(self, timeout: float | None = None) -> can.Message | None:
        # The boards and the harness poll every tick (and drain what came): answer a poll without
        # BusABC.recv's clock reads and loop (~1.5 us empty, twice a simulated millisecond). With timeout 0,
        # BusABC.recv tries once: a frame its filters refuse is dropped and the answer is None.
        if timeout != 0 or self.blocking:
            return super().recv(timeout)
        self._check_if_open()
        if not self.queue:
            return None
        msg = self.queue.popleft()
        if not self._matches_filters(msg):
            return None
        _BUS_LOG.log(self.RECV_LOGGING_LEVEL, "Received: %s", msg)
        return msg

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        if self.blocking:
            return super()._recv_internal(timeout)
        self._check_if_open()
        inbox = self.queue
        if inbox:
            return inbox.popleft(), False
        if timeout == 0:
            return None, False
        deadline_s = None if timeout is None else time.monotonic() + timeout
        while not inbox:
            if deadline_s is not None and time.monotonic() >= deadline_s:
                return None, False
            time.sleep(_POLL_S)
            self._check_if_open()
        return inbox.popleft(), False

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self._check_if_open()
        timestamp = msg.timestamp if self.preserve_timestamps else time.time()
        own = self.queue
        all_sent = True
        for inbox in self.channel:
            if inbox is own and not self.receive_own_messages:
                continue
            copy = _received_copy(msg, timestamp, self.channel_id, is_rx=inbox is not own)
            if type(inbox) is _Inbox:
                inbox.append(copy)
            else:  # a plain VirtualBus's queue.Queue (unbounded unless its owner chose rx_queue_size)
                try:
                    inbox.put(copy, block=True, timeout=timeout)
                except queue.Full:
                    all_sent = False
        if not all_sent:
            raise can.CanOperationError("Could not send message to one or more recipients")


def _received_copy(msg: can.Message, timestamp: float, channel, is_rx: bool) -> can.Message:
    """The frame as one receiver gets it: its own data buffer, the bus's timestamp, channel and direction.
    Every field of python-can's Message (its __slots__) is set directly: its constructor's keyword handling
    cost two thirds of the copy, on every frame the sim rig carries."""
    copy = _new_message(can.Message)
    copy.timestamp = timestamp
    copy.arbitration_id = msg.arbitration_id
    copy.is_extended_id = msg.is_extended_id
    copy.is_remote_frame = msg.is_remote_frame
    copy.is_error_frame = msg.is_error_frame
    copy.channel = channel
    copy.dlc = msg.dlc
    copy.data = bytearray(msg.data)
    copy.is_fd = msg.is_fd
    copy.is_rx = is_rx
    copy.bitrate_switch = msg.bitrate_switch
    copy.error_state_indicator = msg.error_state_indicator
    return copy


_new_message = object.__new__
