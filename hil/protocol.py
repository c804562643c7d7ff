"""Meaning of the reference BMS's CAN values (`dbc/bms.dbc`, `dbc/vcu.dbc`), shared by both sides.

The emulated firmware encodes with these numbers and the harness decodes with them, so a change here is a
protocol change: keep it in step with the DBC comments.
"""
import math
import struct
from dataclasses import dataclass
from enum import IntEnum


class BmsState(IntEnum):
    INIT = 0
    STANDBY = 1
    PRECHARGE = 2
    NORMAL = 3
    FAULT = 4
    SAFE = 5


class ModeRequest(IntEnum):
    STANDBY = 0
    DISCHARGE = 1
    CHARGE = 2
    SAFE = 3


# Bit positions in BMS_FaultBits and BMS_WarningBits.
FAULT_BITS = {
    "cell_ov": 0,
    "cell_uv": 1,
    "charge_oc": 2,
    "discharge_oc": 3,
    "cell_ot": 4,
    "cell_ut": 5,
    "heartbeat": 6,
    "precharge": 7,
    "sense_wire": 8,
    "thermistor": 9,
    "self_discharge": 10,
    "afe": 11,
    "insulation": 12,
    "contactor": 13,
    "thermal_runaway": 14,
    "short_circuit": 15,
    "hvil": 16,
    "current_sensor": 17,
}
# Warnings the reference BMS reports outside the bit fields, in BMS_Diagnosis: name -> its signal (non-zero: raised).
DIAGNOSES = {"cell_resistance": "BMS_HighResistanceBlock"}
# Every fault and warning name the suite's tests look for.
HARNESS_FLAGS = (*FAULT_BITS, *DIAGNOSES)
WARNING_BIT_COUNT = 16   # BMS_WarningBits: the warning tier of bits 0-15 (hvil and current_sensor have none)


# The reference BMS's diagnostic trouble codes (UDS, ISO 14229), one per error: P1Axx-00, a manufacturer's own
# powertrain range (ISO 15031-6), xx the fault's bit. A DUT map gives a BMS's own ([uds] dtcs).
DTCS = {name: 0x1A0000 | bit << 8 for name, bit in FAULT_BITS.items()}
# UDS on the reference BMS: physical request and response IDs (UDS_BmsRequest, UDS_BmsResponse), the functional
# request ID, and the ReadDataByIdentifier DID of ISO 14229-1's identification range it answers.
UDS_REQUEST_ID = 0x7E0
UDS_RESPONSE_ID = 0x7E8
UDS_FUNCTIONAL_ID = 0x7DF   # every ECU at once (UDS_FunctionalRequest, the OBD functional address): single frames
DID_SOFTWARE_VERSION = 0xF189   # vehicleManufacturerECUSoftwareVersionNumberDataIdentifier
UDS_ALL_DTCS = 0xFFFFFF         # ClearDiagnosticInformation's group of all DTCs
UDS_ALL_RECORDS = 0xFF          # a ReadDTCInformation snapshot or extended data record number: every record
# DTC status bits (ISO 14229-1 DTCStatusMask) the reference BMS sets when an error latches: testFailed,
# testFailedThisOperationCycle, pendingDTC, confirmedDTC, testFailedSinceLastClear.
DTC_TEST_FAILED = 0x01
DTC_FAILED_THIS_CYCLE = 0x02   # testFailedThisOperationCycle: cleared as an operation cycle (a boot) starts
DTC_PENDING = 0x04             # pendingDTC: failed in this operation cycle or the last one
DTC_CONFIRMED = 0x08
DTC_LATCHED_STATUS = 0x2F
# What the reference BMS keeps with each DTC (ReadDTCInformation 0x04 and 0x06): two snapshot records, the first
# occurrence's since the last clear and the latest's, each holding SNAPSHOT_DIDS as the BMS measured them in the
# task the error latched; and one extended data record, a 1-byte occurrence counter (saturating at 255).
SNAPSHOT_FIRST = 0x01
SNAPSHOT_LATEST = 0x02
OCCURRENCE_RECORD = 0x01
# Protected writes on the reference BMS: its cell over-voltage trip (mV, uint16), readable in any session, written
# (WriteDataByIdentifier) only in the extended session with security access unlocked (SecurityAccess 0x27, level
# SECURITY_LEVEL: requestSeed 0x01, sendKey 0x02; a 4-byte seed, the key reference_security_key's).
DID_CELL_OV_TRIP_MV = 0x4B01
SECURITY_LEVEL = 0x01
DEFAULT_SESSION = 0x01     # DiagnosticSessionControl's sessions
EXTENDED_SESSION = 0x03
SECURITY_KEY_MASK = 0x5A17C0DE


def reference_security_key(seed: bytes, level: int) -> bytes:
    """The reference BMS's key for `seed` at `level`: the seed XOR a mask, rotated left by 7 bits, plus the level.
    Not a secret and not meant to be one: it stands in for a maker's own algorithm, which a DUT map names (its
    `[uds] security_key`, a function of the same signature)."""
    value = int.from_bytes(seed, "big") ^ SECURITY_KEY_MASK
    bits = 8 * len(seed)
    mask = (1 << bits) - 1
    rotated = ((value << 7) | (value >> (bits - 7))) & mask
    return ((rotated + level) & mask).to_bytes(len(seed), "big")


@dataclass(frozen=True)
class ScaledDid:
    """One value of a UDS data record: its DID and big-endian integer type; value = raw * scale + offset. The
    type's largest raw value means "not available" (a NaN), as SAE J1939 reserves it."""
    did: int
    type: str = "uint16"
    scale: float = 1.0
    offset: float = 0.0

    TYPES = {"uint8": ">B", "int8": ">b", "uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i"}

    @property
    def size(self) -> int:
        return struct.calcsize(self.TYPES[self.type])

    def _raw_range(self) -> tuple[int, int]:
        bits = 8 * self.size
        return (0, (1 << bits) - 1) if self.type.startswith("u") else (-(1 << bits - 1), (1 << bits - 1) - 1)

    def encode(self, value: float) -> bytes:
        low, high = self._raw_range()
        raw = high if math.isnan(value) else min(high - 1, max(low, round((value - self.offset) / self.scale)))
        return struct.pack(self.TYPES[self.type], raw)

    def decode(self, data: bytes) -> float:
        (raw,) = struct.unpack(self.TYPES[self.type], data)
        # Rounded past any scale's digits: 6001 x 0.0001 reads 0.6001, not 0.6001000000000001.
        return math.nan if raw == self._raw_range()[1] else round(raw * self.scale + self.offset, 9)


# The reference BMS's snapshot DIDs (ISO 14229-1's vehicle-manufacturer-specific range), by the harness's names.
SNAPSHOT_DIDS = {
    "max_cell_voltage_v": ScaledDid(0x4A01, "uint16", 0.001),
    "min_cell_voltage_v": ScaledDid(0x4A02, "uint16", 0.001),
    "pack_current_a": ScaledDid(0x4A03, "int16", 0.1),        # > 0 discharges, as the harness counts
    "max_temperature_c": ScaledDid(0x4A04, "int16", 0.1),
    "min_temperature_c": ScaledDid(0x4A05, "int16", 0.1),
    "soc": ScaledDid(0x4A06, "uint16", 0.0001),                # 0..1
    "pack_voltage_v": ScaledDid(0x4A07, "uint16", 0.1),
}


def fault_names(bits: int) -> list[str]:
    return [name for name, bit in FAULT_BITS.items() if bits >> bit & 1]
