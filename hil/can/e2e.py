"""End-to-end protection of a CAN payload: an alive counter, and a CRC over the payload.

This project's own DBCs (`dbc/`) use one scheme, the reference: a 4-bit alive counter `<Message>_Counter` and a
CRC-8/SAE-J1850 over bytes 0..6 in the last byte, `<Message>_CRC`. One function builds that CRC for senders
(firmware, rest-bus) and checks it for receivers.

A production BMS protects its frames with one of AUTOSAR's E2E profiles, with a data ID of its own per message
(so a frame sent under another message's ID fails its check). A DUT map names them (`[e2e]`, see
`hil.devices.dut_map`), and `Protection` then seals the host's frames and checks the BMS's with the
autosar-e2e library's implementation (PyPI `autosar-e2e`):

- P01: CRC-8/SAE-J1850 over the data ID and the payload, the CRC in one byte and the 4-bit counter in the low
  nibble of the next (the data ID's modes "both", "alt", "low", "nibble");
- P02: CRC-8H2F, the CRC in byte 0 and the counter in byte 1's low nibble, the data ID picked from a list of
  16 by the counter;
- P05: CRC-16/CCITT over the payload and the data ID, the CRC in two bytes (low byte first) and an 8-bit
  counter in the next;
- P11: as P01's layout, modes "both" and "nibble".

The 4-bit counters of P01, P02 and P11 count 0..14: 15 is not a valid counter. Other layouts of the same
profiles (a counter elsewhere than next to the CRC, AUTOSAR's CRCOffset and CounterOffset apart) are refused
when the map is loaded, as the library takes the header as one block.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Protection:
    """How one message's frames are protected: `seal` writes the CRC into a payload (in place; the counter as
    it was encoded), `ok` checks a received one; the counter counts modulo `counter_modulo`. A message with an
    alive counter and no CRC has neither function."""
    profile: str
    crc_signal: str | None
    counter_signal: str | None
    counter_modulo: int
    seal: Callable[[bytearray], object] | None
    ok: Callable[[bytes], bool] | None


def reference(message) -> Protection | None:
    """The reference scheme of `dbc/` for `message` (cantools'): its `<Message>_CRC` and `<Message>_Counter`
    signals, either of which may be absent (the counter wraps at its width); None for a message with neither."""
    names = {signal.name: signal for signal in message.signals}
    crc, counter = names.get(f"{message.name}_CRC"), names.get(f"{message.name}_Counter")
    if crc is None and counter is None:
        return None
    return Protection("J1850" if crc else "counter", crc.name if crc else None, counter.name if counter else None,
                      1 << counter.length if counter else 1, seal if crc else None, crc_ok if crc else None)


def protection_of(message, protections) -> Protection | None:
    """How `message` (cantools') is protected: as `protections` (by message name: a map's [e2e]) says, else by the
    reference scheme."""
    return protections.get(message.name) or reference(message)


PROFILES = ("P01", "P02", "P05", "P11")
DATA_ID_MODES = {"P01": ("both", "alt", "low", "nibble"), "P11": ("both", "nibble")}
COUNTER_MODULO = {"P01": 15, "P02": 15, "P05": 256, "P11": 15}   # 15 is no valid 4-bit counter of P01/02/11


class LayoutError(ValueError):
    """A message whose CRC and counter signals do not sit where its profile puts them."""


def autosar(message, profile: str, crc_signal, counter_signal, *, data_id: int = 0, data_id_mode: str = "both",
            data_id_list: bytes = b"") -> Protection:
    """An AUTOSAR E2E profile for `message` (cantools'), its CRC and counter in the signals (cantools')
    given. Raises LayoutError when they do not sit where the profile needs them, naming both."""
    import e2e as autosar_e2e   # autosar-e2e: only a map that names a profile needs it
    length = message.length
    if profile == "P05":
        offset = _crc_byte(crc_signal, 16)
        _counter_at(counter_signal, 8, offset + 2, "an 8-bit counter in the byte after the CRC")
        protect, check = autosar_e2e.p05.e2e_p05_protect, autosar_e2e.p05.e2e_p05_check
        options = {"offset": offset}
    else:
        offset = _crc_byte(crc_signal, 8)
        _counter_at(counter_signal, 4, offset + 1, "a 4-bit counter in the low nibble of the byte after the CRC")
        name = profile.lower()
        module = getattr(autosar_e2e, name)
        protect, check = getattr(module, f"e2e_{name}_protect"), getattr(module, f"e2e_{name}_check")
        if profile == "P02":
            if offset != 0:
                raise LayoutError(f"P02 puts its CRC in byte 0; '{crc_signal.name}' is in byte {offset}")
            options = {}
        else:
            mode = getattr(module, f"E2E_{profile}_DATAID_{data_id_mode.upper()}")
            options = {"offset": offset, "data_id_mode": mode}
    key = data_id_list if profile == "P02" else data_id   # P02 picks its data ID from a list, by the counter

    def seal_frame(data: bytearray) -> None:
        protect(data, key, length=length, increment_counter=False, **options)

    def frame_ok(data: bytes) -> bool:
        return check(bytearray(data[:length]), key, length=length, **options)   # the library wants a mutable buffer

    return Protection(profile, crc_signal.name, counter_signal.name, COUNTER_MODULO[profile], seal_frame, frame_ok)


def _crc_byte(signal, bits: int) -> int:
    """The byte a CRC signal of `bits` starts in: 8 bits on a byte boundary, or 16 bits low byte first."""
    little = signal.byte_order == "little_endian"
    if bits == 16:
        aligned, expected = little and signal.start % 8 == 0, "a 16-bit CRC, low byte first, on a byte boundary"
    else:   # a byte-wide signal fills its byte in either byte order: Motorola's start bit is its top one
        aligned, expected = signal.start % 8 == (0 if little else 7), "an 8-bit CRC on a byte boundary"
    if signal.length != bits or not aligned:
        raise LayoutError(f"expected {expected}; '{signal.name}' is {signal.length} bits at start bit {signal.start} "
                          f"({signal.byte_order})")
    return signal.start // 8


def _counter_at(signal, bits: int, byte: int, expected: str) -> None:
    """Refuse a counter signal that is not `bits` wide from bit 0 of `byte`."""
    start = 8 * byte if signal.byte_order == "little_endian" else 8 * byte + bits - 1
    if signal.length != bits or signal.start != start:
        raise LayoutError(f"expected {expected} (byte {byte}); '{signal.name}' is {signal.length} bits at start "
                          f"bit {signal.start} ({signal.byte_order})")
