"""End-to-end protection of a CAN payload: a 4-bit alive counter and a CRC-8/SAE-J1850 over bytes 0..6.

Every protected message in `dbc/` names its signals `<Message>_Counter` and `<Message>_CRC`, with the CRC
in the last byte. One function builds the CRC for senders (firmware, rest-bus) and checks it for receivers.
"""
from __future__ import annotations

_POLY = 0x1D  # SAE J1850: x^8 + x^4 + x^3 + x^2 + 1, init 0xFF, final XOR 0xFF


def _make_table() -> bytes:
    table = bytearray(256)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table[byte] = crc
    return bytes(table)


_TABLE = _make_table()


def crc8_j1850(data: bytes) -> int:
    crc = 0xFF
    for byte in data:
        crc = _TABLE[crc ^ byte]
    return crc ^ 0xFF


def seal(payload: bytearray) -> bytearray:
    """Write the CRC of bytes 0..6 into byte 7, in place; returns the payload."""
    payload[7] = crc8_j1850(payload[:7])
    return payload


def crc_ok(payload: bytes) -> bool:
    return len(payload) == 8 and crc8_j1850(payload[:7]) == payload[7]
