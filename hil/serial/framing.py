"""Finding one protocol's frames in a byte stream that may hold garbage, torn or corrupted frames."""

from __future__ import annotations

from hil.serial.protocols import FramedProtocol

_INCOMPLETE = -1  # more bytes are needed to judge a candidate frame
_INVALID = 0  # the candidate's header cannot start a frame


class FrameScanner:
    """Split a byte stream into checksum-valid frames of one protocol. Pure: bytes in, frames out.

    A candidate frame starts at each occurrence of the protocol's sync bytes. Bytes that cannot be
    a frame are dropped (counted in ``counters["resyncs"]``, once per run of dropped bytes) and
    complete frames with a wrong checksum are dropped too (``counters["bad_crc"]``).

    A torn frame at the front (its declared length never arrives) does not block a later complete,
    valid frame: that one is returned and the torn bytes are dropped. Work per ``feed`` is bounded by
    the buffer, which never holds more than ``protocol.max_frame_size`` bytes between calls.
    """

    def __init__(self, protocol: FramedProtocol, counters: dict[str, int] | None = None) -> None:
        self.protocol = protocol
        self.counters = counters if counters is not None else {}
        self.counters.setdefault("bad_crc", 0)
        self.counters.setdefault("resyncs", 0)
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes held because they may start a frame that has not fully arrived."""
        return bytes(self._buffer)

    def expected_size(self) -> int | None:
        """Total size the held bytes declare for their frame, if their header has arrived."""
        header = bytes(self._buffer[: self.protocol.header_size])
        if len(header) < self.protocol.header_size:
            return None
        return self.protocol.frame_size(header)

    def reset(self) -> None:
        """Forget held bytes, e.g. stale input before a new request."""
        self._buffer.clear()

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete, checksum-valid frames now available, in order."""
        self._buffer += data
        frames = []
        while (frame := self._take_frame()) is not None:
            frames.append(frame)
        return frames

    def _take_frame(self) -> bytes | None:
        self._discard(self._next_sync(0))
        while self._buffer:
            size = self._candidate_size(0)
            if size == _INCOMPLETE:
                return self._take_later_frame()
            if size != _INVALID:
                if self.protocol.checksum_ok(bytes(self._buffer[:size])):
                    return self._cut(size)
                self.counters["bad_crc"] += 1
            self._discard(self._next_sync(1))
        return None

    def _take_later_frame(self) -> bytes | None:
        # The front candidate is torn or still arriving; a complete valid frame after it wins.
        position = self._buffer.find(self.protocol.sync, 1)
        while position >= 0:
            size = self._candidate_size(position)
            if size > 0 and self.protocol.checksum_ok(bytes(self._buffer[position : position + size])):
                self._discard(position)
                return self._cut(size)
            position = self._buffer.find(self.protocol.sync, position + 1)
        return None

    def _candidate_size(self, position: int) -> int:
        header = bytes(self._buffer[position : position + self.protocol.header_size])
        if len(header) < self.protocol.header_size:
            return _INCOMPLETE
        size = self.protocol.frame_size(header)
        if size is None or not self.protocol.header_size <= size <= self.protocol.max_frame_size:
            return _INVALID
        return size if position + size <= len(self._buffer) else _INCOMPLETE

    def _next_sync(self, start: int) -> int:
        """Index of the next sync at or after ``start``; else where a partial sync could begin at the end."""
        sync = self.protocol.sync
        found = self._buffer.find(sync, start)
        if found >= 0:
            return found
        for keep in range(min(len(sync) - 1, len(self._buffer)), 0, -1):
            if self._buffer.endswith(sync[:keep]) and len(self._buffer) - keep >= start:
                return len(self._buffer) - keep
        return len(self._buffer)

    def _discard(self, count: int) -> None:
        if count > 0:
            del self._buffer[:count]
            self.counters["resyncs"] += 1

    def _cut(self, size: int) -> bytes:
        frame = bytes(self._buffer[:size])
        del self._buffer[:size]
        return frame
