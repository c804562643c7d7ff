"""The emulated BMS's debug UART: the device side of `hil.serial.protocols.bms_debug`, read-only.

It answers from the firmware's own state at the moment of the request: cell voltages as the front end
measured them (whole mV), the balancing mask, the fault log, the firmware version and the calibration.
An unknown command is answered `nack unknown_command`.

Limits (the protocol's): the balancing mask covers 64 cells, and a pack with more answers `nack
not_available`; the fault log returns at most its last 255 entries; calibration values go out as
float32 (booleans as 1.0 / 0.0).
"""
from __future__ import annotations

from hil.serial.protocols.bms_debug import PROTOCOL, BmsDebugError
from hil.sim.bms_firmware import FIRMWARE_VERSION, BmsFirmware

MASK_CELLS = 64
MAX_ENTRIES = 255

# Firmware fault (FAULT_BITS name) -> the debug protocol's FaultCode. Faults the protocol has no code for
# go out as the numbers below, which a client shows as text ("11"); see the module docstring of bms_debug.
FAULT_CODES = {
    "cell_ov": "over_voltage", "cell_uv": "under_voltage", "charge_oc": "over_current_charge",
    "discharge_oc": "over_current_discharge", "cell_ot": "over_temperature", "cell_ut": "under_temperature",
    "sense_wire": "open_wire", "precharge": "contactor_fault", "contactor": "contactor_fault",
    "heartbeat": "communication_timeout", "thermistor": 11, "self_discharge": 12, "afe": 13, "insulation": 14,
    "thermal_runaway": 15, "short_circuit": 16, "hvil": 17,
    "current_sensor": 18,
}


class DebugUart:
    """`answer(frame, now_s)` for a `hil.sim.serial_device.SerialDevice` serving `PROTOCOL`."""

    def __init__(self, firmware: BmsFirmware):
        self.firmware = firmware

    def answer(self, frame: bytes, _now_s: float) -> bytes | None:
        if not self.firmware.powered:
            return None   # an MCU without supply answers nothing
        command_byte = frame[PROTOCOL.header_size]  # right after the sync and the length
        try:
            request = PROTOCOL.parse_message(frame).command
        except BmsDebugError:
            return PROTOCOL.build_message("nack", request=command_byte, reason="unknown_command")
        fw = self.firmware
        if request == "read_cell_voltages":
            return PROTOCOL.build_message("cell_voltages", cell_voltages_mv=[round(v * 1000) for v in fw.cell_v])
        if request == "read_balancing":
            if fw.n_cells > MASK_CELLS:
                return PROTOCOL.build_message("nack", request=request, reason="not_available")
            mask = sum(1 << int(cell) for cell in fw.balancing.nonzero()[0])
            return PROTOCOL.build_message("balancing", cell_count=fw.n_cells, balancing_mask=mask)
        if request == "read_fault_log":
            entries = list(fw.fault_log)[-MAX_ENTRIES:]
            return PROTOCOL.build_message("fault_log", entries=[
                {"timestamp_ms": time_ms, "code": FAULT_CODES[name]} for time_ms, name in entries])
        if request == "read_version":
            return PROTOCOL.build_message("version", firmware_version=FIRMWARE_VERSION)
        if request == "read_calibration":
            return PROTOCOL.build_message("calibration", entries=[
                {"key": key, "value": float(value)} for key, value in list(fw.cal.items())[:MAX_ENTRIES]])
        # A valid frame with an answer's command (0x90.., nack) is not a request.
        return PROTOCOL.build_message("nack", request=command_byte, reason="unknown_command")
