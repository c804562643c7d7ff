"""Meaning of the reference BMS's CAN values (`dbc/bms.dbc`, `dbc/vcu.dbc`), shared by both sides.

The emulated firmware encodes with these numbers and the harness decodes with them, so a change here is a
protocol change: keep it in step with the DBC comments.
"""
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
# UDS on the reference BMS: physical request and response IDs (UDS_BmsRequest, UDS_BmsResponse), and the
# ReadDataByIdentifier DID of ISO 14229-1's identification range it answers.
UDS_REQUEST_ID = 0x7E0
UDS_RESPONSE_ID = 0x7E8
DID_SOFTWARE_VERSION = 0xF189   # vehicleManufacturerECUSoftwareVersionNumberDataIdentifier
UDS_ALL_DTCS = 0xFFFFFF         # ClearDiagnosticInformation's group of all DTCs
# DTC status bits (ISO 14229-1 DTCStatusMask) the reference BMS sets when an error latches: testFailed,
# testFailedThisOperationCycle, pendingDTC, confirmedDTC, testFailedSinceLastClear.
DTC_TEST_FAILED = 0x01
DTC_CONFIRMED = 0x08
DTC_LATCHED_STATUS = 0x2F


def fault_names(bits: int) -> list[str]:
    return [name for name, bit in FAULT_BITS.items() if bits >> bit & 1]
