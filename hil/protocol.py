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


def fault_names(bits: int) -> list[str]:
    return [name for name, bit in FAULT_BITS.items() if bits >> bit & 1]
