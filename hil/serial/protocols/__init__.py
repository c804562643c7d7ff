"""Binary serial protocols declared with construct, and what SerialLink needs to know about one.

Each protocol module exposes a ``PROTOCOL`` object (a :class:`FramedProtocol`) and raises its own
subclass of :class:`ProtocolError` on bad input, never a construct or Python exception.
"""

from __future__ import annotations

import binascii
from typing import Any

import construct
from construct import Checksum, Const, Container, Enum, Error, Prefixed, RawCopy, Struct, Switch, Terminated, this

from hil.errors import HilError

# Exceptions construct's parse and build let through besides ConstructError: bad text in a
# PascalString, and Python's own complaints about values handed to build().
DECODE_ERRORS = (construct.ConstructError, UnicodeError, ValueError, OverflowError, TypeError, KeyError)

# Longest hex dump put in an error message; frames can be kilobytes.
HEX_SHOWN_BYTES = 48


class ProtocolError(HilError):
    """Bytes that do not decode as the protocol says. The message shows the bytes and what was expected."""


def hex_preview(data: bytes) -> str:
    """Space-separated hex of ``data``, cut to HEX_SHOWN_BYTES with the total length noted."""
    shown = bytes(data[:HEX_SHOWN_BYTES]).hex(" ")
    return shown if len(data) <= HEX_SHOWN_BYTES else f"{shown} ... ({len(data)} bytes)"


def crc16_ccitt(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF), as ``binascii.crc_hqx`` computes it."""
    return binascii.crc_hqx(data, 0xFFFF)


class FramedProtocol:
    """How SerialLink finds, checks and decodes one protocol's frames.

    Subclasses set the attributes and implement ``frame_size`` and ``checksum_ok``; both must accept
    any bytes without raising, because they run on garbage while resynchronising.
    """

    name: str  # for messages, e.g. "Daly BMS"
    sync: bytes  # every frame starts with these bytes
    header_size: int  # bytes from the sync on that frame_size() needs
    max_frame_size: int  # longer declared lengths are treated as garbage
    frame: construct.Construct
    error: type[ProtocolError] = ProtocolError

    def frame_size(self, header: bytes) -> int | None:
        """Total frame length from the first ``header_size`` bytes, or None if they cannot start a frame."""
        raise NotImplementedError

    def checksum_ok(self, frame: bytes) -> bool:
        """True if the frame's checksum matches, computed the way the device computes it."""
        raise NotImplementedError

    def parse(self, frame: bytes) -> Container:
        """Decode one whole frame; raises this protocol's error, showing the bytes, if it is not one."""
        try:
            return self.frame.parse(frame)
        except DECODE_ERRORS as error:
            raise self.error(f"not a valid {self.name} frame: {hex_preview(frame)}: {error}") from None

    def build(self, fields: dict[str, Any]) -> bytes:
        """Encode one frame from construct field values; raises this protocol's error if they do not fit."""
        try:
            return self.frame.build(fields)
        except DECODE_ERRORS as error:
            raise self.error(f"cannot build a {self.name} frame from {fields!r}: {error}") from None


class CommandFrameProtocol(FramedProtocol):
    """The shape of the harness's own board protocols: sync, length, command, payload, CRC-16/CCITT.

    ``length`` counts the command byte and the payload; the CRC covers the length field, the command
    and the payload. ``commands`` is a construct ``Enum`` and ``payloads`` maps each command name to
    a ``Struct``; an unknown command or trailing bytes make the frame invalid.
    """

    def __init__(
        self,
        name: str,
        sync: bytes,
        length_field: construct.FormatField,
        crc_field: construct.FormatField,
        commands: Enum,
        payloads: dict[str, construct.Construct],
        error: type[ProtocolError],
        max_frame_size: int,
    ) -> None:
        self.name = name
        self.sync = sync
        self.error = error
        self.max_frame_size = max_frame_size
        self._length_field = length_field
        self._crc_field = crc_field
        self.header_size = len(sync) + length_field.sizeof()
        message = Struct("command" / commands, "payload" / Switch(this.command, payloads, default=Error), Terminated)
        self.frame = Struct(
            "sync" / Const(sync),
            "message" / RawCopy(Prefixed(length_field, message)),
            "crc" / Checksum(crc_field, crc16_ccitt, this.message.data),
            Terminated,
        )

    def frame_size(self, header: bytes) -> int | None:
        if len(header) < self.header_size or not header.startswith(self.sync):
            return None
        length = self._length_field.parse(header[len(self.sync) : self.header_size])
        if length == 0:  # a message holds at least its command byte
            return None
        return self.header_size + length + self._crc_field.sizeof()

    def checksum_ok(self, frame: bytes) -> bool:
        crc_size = self._crc_field.sizeof()
        if len(frame) < len(self.sync) + crc_size:
            return False
        return crc16_ccitt(frame[len(self.sync) : -crc_size]) == self._crc_field.parse(frame[-crc_size:])

    def build_message(self, command: str, **payload: Any) -> bytes:
        """One frame carrying ``command`` with the payload fields given as keywords."""
        return self.build({"message": {"value": {"command": command, "payload": payload}}})

    def parse_message(self, frame: bytes) -> Container:
        """The message of one frame: a Container with ``command`` (a name) and ``payload``."""
        return self.parse(frame).message.value
