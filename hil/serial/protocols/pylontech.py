"""Read-only driver for Pylontech-protocol batteries over RS485 ("~" ASCII-hex frames), 9600 baud 8N1.

Frame: ``~``, then VER ADR CID1 CID2 LENGTH INFO CHKSUM as ASCII hex digits, then ``\\r``. LENGTH is a
4-bit checksum of LENID over the 12-bit LENID (INFO's length in hex digits); CHKSUM is the two's
complement of the sum of every ASCII byte between ``~`` and it. A request's CID2 is its command; an
answer's is a return code (RTN, 0 when normal). Layouts follow the Pylontech low-voltage RS485 protocol
(v3.3) as python-pylontech and dbus-serialbattery decode it (both MIT), and
../shared/realworld/vectors/README.md. Many LFP rack and telecom batteries (48 V, 15 or 16 cells per
module) and the BMSes that imitate them answer it.

Limits: only the reads below (0x42 analog values, 0x44 alarms, 0x92 charge/discharge management);
nothing is ever written. The alarm answer's status bytes vary by model and are kept raw.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

from construct import (
    Adapter,
    Array,
    BitStruct,
    Bytes,
    Check,
    Checksum,
    Const,
    Flag,
    GreedyBytes,
    If,
    Int8ub,
    Int16sb,
    Int16ub,
    Int24ub,
    Padding,
    RawCopy,
    Rebuild,
    Struct,
    Terminated,
    this,
)

from hil.serial.link import SerialLink
from hil.serial.protocols import DECODE_ERRORS, FramedProtocol, ProtocolError, hex_preview

VERSION = 0x20  # protocol version 2.0, which every answer in the vectors carries
CID1_BATTERY = 0x46  # "lithium iron phosphate battery BMS"
COMMAND_ANALOG = 0x42
COMMAND_ALARMS = 0x44
COMMAND_MANAGEMENT = 0x92
ALL_MODULES = 0xFF  # as the INFO of an analog request: every module, from the master at its address
DEFAULT_ADDRESS = 2  # the first module's RS485 address (its DIP switch at 1)
RETURN_CODES = {
    0x00: "normal",
    0x01: "VER error",
    0x02: "CHKSUM error",
    0x03: "LCHKSUM error",
    0x04: "CID2 invalid",
    0x05: "command format error",
    0x06: "invalid data",
    0x90: "ADR error",
    0x91: "communication error between master and slave",
}
ALARM_CODES = {0x00: "normal", 0x01: "below lower limit", 0x02: "above upper limit", 0xF0: "other error"}

SOI, EOI = b"~", b"\r"
HEADER_SIZE = 13  # "~" and VER ADR CID1 CID2 LENGTH: the bytes frame_size() needs
TRAILER_SIZE = 5  # CHKSUM's four digits and "\r"
MAX_INFO_DIGITS = 0xFFF
KELVIN_OFFSET_DK = 2731  # temperatures are sent in 0.1 K
# A capacity sent as 16 bits of mAh tops out at 65.535 Ah; modules with more send 0xFFFF there and add
# 24-bit fields, which a user-defined item count above 2 announces.
EXTENDED_CAPACITY_ITEMS = 2


class PylontechError(ProtocolError):
    """A Pylontech frame that does not decode, or an answer whose return code is not 0."""


def _hex_value(digits: bytes) -> int:
    """The number an even count of ASCII hex digits spells; ValueError for anything else (int() would take
    spaces, signs and underscores)."""
    return int.from_bytes(binascii.unhexlify(digits), "big")


class _HexNumber(Adapter):
    """An unsigned number sent as `digits` ASCII hex digits (either case in, upper case out)."""

    def __init__(self, digits: int) -> None:
        super().__init__(Bytes(digits))
        self._digits = digits

    def _decode(self, obj, context, path) -> int:
        return _hex_value(obj)

    def _encode(self, obj, context, path) -> bytes:
        return b"%0*X" % (self._digits, obj)


class _HexBytes(Adapter):
    """Binary INFO sent as two ASCII hex digits per byte."""

    def _decode(self, obj, context, path) -> bytes:
        return binascii.unhexlify(obj)  # unlike bytes.fromhex, refuses spaces

    def _encode(self, obj, context, path) -> bytes:
        return obj.hex().upper().encode("ascii")


def length_checksum(info_digits: int) -> int:
    """LCHKSUM: the 4-bit two's complement of the sum of LENID's three hex digits (0 for an empty INFO)."""
    return -((info_digits & 0xF) + (info_digits >> 4 & 0xF) + (info_digits >> 8 & 0xF)) & 0xF


def length_code(info_digits: int) -> int:
    """LENGTH: LCHKSUM in the top 4 bits, LENID (INFO's length in hex digits) below."""
    return length_checksum(info_digits) << 12 | info_digits


def frame_checksum(ascii_body: bytes) -> int:
    """CHKSUM: the 16-bit two's complement of the sum of the ASCII bytes between "~" and CHKSUM."""
    return -sum(ascii_body) & 0xFFFF


FRAME = Struct(
    "soi" / Const(SOI),
    "body"
    / RawCopy(
        Struct(
            "version" / _HexNumber(2),
            "address" / _HexNumber(2),
            "cid1" / _HexNumber(2),
            "cid2" / _HexNumber(2),
            "length" / Rebuild(_HexNumber(4), lambda this: length_code(2 * len(this.info))),
            Check(lambda this: this.length >> 12 == length_checksum(this.length & MAX_INFO_DIGITS)),
            "info" / _HexBytes(Bytes(lambda this: this.length & MAX_INFO_DIGITS)),
        )
    ),
    "checksum" / Checksum(_HexNumber(4), frame_checksum, this.body.data),
    "eoi" / Const(EOI),
    Terminated,
)
MODULE = Struct(
    "cell_count" / Int8ub,
    "cell_voltages_mv" / Array(this.cell_count, Int16ub),
    "temperature_count" / Int8ub,
    "temperatures_dk" / Array(this.temperature_count, Int16sb),  # 0.1 K; the first is the BMS board's
    "current_da" / Int16sb,  # 0.1 A, > 0 charges
    "voltage_mv" / Int16ub,
    "remaining_mah" / Int16ub,
    "user_items" / Int8ub,
    "total_mah" / Int16ub,
    "cycles" / Int16ub,
    "extended" / If(this.user_items > EXTENDED_CAPACITY_ITEMS, Struct("remaining_mah" / Int24ub,
                                                                      "total_mah" / Int24ub)),
)
# The analog answer starts with a data flag; then the module's address when one was asked for, or the
# module count when every one was.
ANALOG_ONE = Struct("flag" / Int8ub, "address" / Int8ub, "module" / MODULE, Terminated)
ANALOG_ALL = Struct("flag" / Int8ub, "module_count" / Int8ub, "modules" / Array(this.module_count, MODULE),
                    Terminated)
MANAGEMENT = Struct(
    "address" / Int8ub,
    "charge_voltage_limit_mv" / Int16ub,
    "discharge_voltage_limit_mv" / Int16ub,
    "charge_current_limit_da" / Int16sb,
    "discharge_current_limit_da" / Int16sb,  # sent negative by some modules, positive by others
    # The same bits as Pylontech's CAN message 0x35C.
    "status" / BitStruct("charge_enabled" / Flag, "discharge_enabled" / Flag, "charge_immediately_1" / Flag,
                         "charge_immediately_2" / Flag, "full_charge_request" / Flag, Padding(3)),
    Terminated,
)
ALARMS = Struct(
    "flag" / Int8ub,
    "address" / Int8ub,
    "cell_count" / Int8ub,
    "cell_alarms" / Array(this.cell_count, Int8ub),
    "temperature_count" / Int8ub,
    "temperature_alarms" / Array(this.temperature_count, Int8ub),
    "charge_current_alarm" / Int8ub,
    "pack_voltage_alarm" / Int8ub,
    "discharge_current_alarm" / Int8ub,
    "status" / GreedyBytes,
)


class PylontechProtocol(FramedProtocol):
    name = "Pylontech RS485"
    sync = SOI
    header_size = HEADER_SIZE
    max_frame_size = HEADER_SIZE + MAX_INFO_DIGITS + TRAILER_SIZE
    frame = FRAME
    error = PylontechError

    def frame_size(self, header: bytes) -> int | None:
        if len(header) < HEADER_SIZE or not header.startswith(SOI):
            return None
        try:
            length = _hex_value(header[9:HEADER_SIZE])
        except ValueError:  # not hex digits: garbage
            return None
        info_digits = length & MAX_INFO_DIGITS
        if length >> 12 != length_checksum(info_digits) or info_digits % 2:
            return None
        return HEADER_SIZE + info_digits + TRAILER_SIZE

    def checksum_ok(self, frame: bytes) -> bool:
        if len(frame) < HEADER_SIZE + TRAILER_SIZE:
            return False
        try:
            sent = _hex_value(frame[-TRAILER_SIZE:-1])
        except ValueError:
            return False
        return sent == frame_checksum(frame[1:-TRAILER_SIZE])


PROTOCOL = PylontechProtocol()


@dataclass(frozen=True)
class PylontechModule:
    """One battery module's analog values, in the harness's units and signs."""

    address: int | None  # None in an answer for every module, which does not say
    cell_voltages_mv: list[int]
    bms_temperature_c: float  # the first temperature sent: the BMS board's (python-pylontech's reading)
    cell_temperatures_c: list[float]
    pack_current_a: float  # > 0 discharges (the harness's convention; the protocol's is charge positive)
    pack_voltage_v: float
    remaining_ah: float
    full_ah: float
    cycles: int

    @property
    def soc(self) -> float:
        return self.remaining_ah / self.full_ah if self.full_ah else float("nan")


@dataclass(frozen=True)
class PylontechManagement:
    """What the module asks of the inverter or charger: its limits, and whether it may charge or discharge."""

    charge_voltage_limit_v: float
    discharge_voltage_limit_v: float
    charge_current_limit_a: float
    discharge_current_limit_a: float  # a magnitude, whichever sign the module sends it with
    charge_enabled: bool
    discharge_enabled: bool
    charge_immediately: bool  # either of the two force-charge requests
    full_charge_request: bool


@dataclass(frozen=True)
class PylontechAlarms:
    """Each alarm as ALARM_CODES names it ("normal" when clear); the model-specific status bytes raw."""

    cell_alarms: list[str]
    temperature_alarms: list[str]
    charge_current_alarm: str
    pack_voltage_alarm: str
    discharge_current_alarm: str
    status: bytes

    @property
    def any(self) -> bool:
        alarms = [*self.cell_alarms, *self.temperature_alarms, self.charge_current_alarm, self.pack_voltage_alarm,
                  self.discharge_current_alarm]
        return any(alarm != "normal" for alarm in alarms)


def build_request(command: int, address: int = DEFAULT_ADDRESS, target: int | None = None) -> bytes:
    """A read request to `address`; its INFO names the module asked about (`target`, the same by default)."""
    target = address if target is None else target
    return PROTOCOL.build({"body": {"value": {"version": VERSION, "address": address, "cid1": CID1_BATTERY,
                                              "cid2": command, "info": bytes([target])}}})


def build_answer(address: int, info: bytes, return_code: int = 0) -> bytes:
    """An answer from the module at `address` carrying binary `info` (for emulated modules and tests)."""
    return PROTOCOL.build({"body": {"value": {"version": VERSION, "address": address, "cid1": CID1_BATTERY,
                                              "cid2": return_code, "info": info}}})


def _info(frame: bytes, what: str) -> bytes:
    body = PROTOCOL.parse(frame).body.value
    if body.cid2 != 0:
        meaning = RETURN_CODES.get(body.cid2, "not a return code the protocol defines")
        raise PylontechError(
            f"the Pylontech module at address {body.address} refused the {what} request: return code "
            f"0x{body.cid2:02X} ({meaning}): {hex_preview(frame)}"
        )
    return body.info


def _parse(layout: Struct, info: bytes, what: str, frame: bytes):
    try:
        return layout.parse(info)
    except DECODE_ERRORS as error:
        raise PylontechError(f"a Pylontech {what} answer whose INFO does not decode ({error}): "
                             f"{hex_preview(frame)}") from None


def _module(fields, address: int | None) -> PylontechModule:
    temperatures_c = [(dk - KELVIN_OFFSET_DK) / 10 for dk in fields.temperatures_dk]
    extended = fields.extended
    remaining_mah = extended.remaining_mah if extended is not None else fields.remaining_mah
    total_mah = extended.total_mah if extended is not None else fields.total_mah
    return PylontechModule(
        address=address,
        cell_voltages_mv=list(fields.cell_voltages_mv),
        bms_temperature_c=temperatures_c[0] if temperatures_c else float("nan"),
        cell_temperatures_c=temperatures_c[1:],
        pack_current_a=-fields.current_da / 10,
        pack_voltage_v=fields.voltage_mv / 1000,
        remaining_ah=remaining_mah / 1000,
        full_ah=total_mah / 1000,
        cycles=fields.cycles,
    )


def decode_module(frame: bytes) -> PylontechModule:
    """One module's analog values from the answer to a 0x42 request that named it."""
    fields = _parse(ANALOG_ONE, _info(frame, "analog"), "analog (one module)", frame)
    return _module(fields.module, fields.address)


def decode_all_modules(frame: bytes) -> list[PylontechModule]:
    """Every module's analog values from the answer to a 0x42 request for ALL_MODULES, in the master's order."""
    fields = _parse(ANALOG_ALL, _info(frame, "analog"), "analog (every module)", frame)
    return [_module(module, None) for module in fields.modules]


def decode_management(frame: bytes) -> PylontechManagement:
    """Limits and charge/discharge permissions from a 0x92 answer."""
    fields = _parse(MANAGEMENT, _info(frame, "management"), "charge/discharge management", frame)
    status = fields.status
    return PylontechManagement(
        charge_voltage_limit_v=fields.charge_voltage_limit_mv / 1000,
        discharge_voltage_limit_v=fields.discharge_voltage_limit_mv / 1000,
        charge_current_limit_a=fields.charge_current_limit_da / 10,
        discharge_current_limit_a=abs(fields.discharge_current_limit_da) / 10,
        charge_enabled=status.charge_enabled,
        discharge_enabled=status.discharge_enabled,
        charge_immediately=status.charge_immediately_1 or status.charge_immediately_2,
        full_charge_request=status.full_charge_request,
    )


def _alarm(code: int) -> str:
    return ALARM_CODES.get(code, f"code 0x{code:02X}")


def decode_alarms(frame: bytes) -> PylontechAlarms:
    """Per-cell, per-sensor and pack alarms from a 0x44 answer."""
    fields = _parse(ALARMS, _info(frame, "alarm"), "alarm", frame)
    return PylontechAlarms(
        cell_alarms=[_alarm(code) for code in fields.cell_alarms],
        temperature_alarms=[_alarm(code) for code in fields.temperature_alarms],
        charge_current_alarm=_alarm(fields.charge_current_alarm),
        pack_voltage_alarm=_alarm(fields.pack_voltage_alarm),
        discharge_current_alarm=_alarm(fields.discharge_current_alarm),
        status=bytes(fields.status),
    )


def _answers(command: int, address: int):
    # An answer carries a return code where the request had its command, so an RS485 adapter's echo of the
    # request is told apart; a late answer from another module by its address.
    return lambda fields: fields.body.value.address == address and fields.body.value.cid2 != command


class PylontechReader:
    """Reads Pylontech-protocol modules over a SerialLink opened with ``PROTOCOL`` (9600 baud on RS485)."""

    def __init__(self, link: SerialLink, address: int = DEFAULT_ADDRESS) -> None:
        self._link = link
        self._address = address

    def _request(self, command: int, target: int | None = None) -> bytes:
        return self._link.request(build_request(command, self._address, target),
                                  accept=_answers(command, self._address))

    def read_module(self) -> PylontechModule:
        return decode_module(self._request(COMMAND_ANALOG))

    def read_all_modules(self) -> list[PylontechModule]:
        """Every module of a stack, through the master at this reader's address."""
        return decode_all_modules(self._request(COMMAND_ANALOG, ALL_MODULES))

    def read_management(self) -> PylontechManagement:
        return decode_management(self._request(COMMAND_MANAGEMENT))

    def read_alarms(self) -> PylontechAlarms:
        return decode_alarms(self._request(COMMAND_ALARMS))
