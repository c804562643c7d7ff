"""The boards' serial ports (BMS debug UART, cell-emulator control) through the harness's own clients, over a
real pty: here served in-process by a polling thread while the boards stand still; see
test_emulate_process.py for the same ports of a `hil emulate` process."""
import struct
import threading

import numpy as np
import pytest

from hil.protocol import FAULT_BITS, BmsState
from hil.serial.link import SerialLink
from hil.serial.protocols import bms_debug, cell_emulator, crc16_ccitt
from hil.serial.protocols.bms_debug import BmsDebugClient, BmsDebugError
from hil.serial.protocols.cell_emulator import CellEmulatorClient, CellEmulatorError
from hil.serial.slcan import open_pty
from hil.sim.bms_firmware import FIRMWARE_VERSION
from hil.sim.ce_serial import MAX_CELL_MV, CellEmulatorSerial
from hil.sim.cell_emulator_board import WATCHDOG_S
from hil.sim.debug_uart import DebugUart
from hil.sim.serial_device import SerialDevice

POLL_S = 0.001
JOIN_TIMEOUT_S = 5.0


@pytest.fixture
def serve():
    """`serve(protocol, answer, now_s=lambda: 0.0)` -> a SerialLink to a SerialDevice polled by a thread."""
    stop = threading.Event()
    started = []

    def _serve(protocol, answer, now_s=lambda: 0.0):
        master_fd, path = open_pty()
        # The boards' time is read as each request is answered: a test sends a request only after stepping
        # the boards, so that time is final. One time per poll, read before the poll's reads, could belong
        # to an earlier request: one poll read a request, and the test's next request after the test had
        # stepped on (seen in CI: uptime 400 ms at t = 0.8 s).
        device = SerialDevice(master_fd, path, protocol, lambda frame, _poll_s: answer(frame, now_s()))

        def run():
            while not stop.wait(POLL_S):
                device.poll(0.0)  # the answers read the time themselves (above)

        thread = threading.Thread(target=run, name=f"serial device {path}", daemon=True)
        thread.start()
        link = SerialLink(path, protocol, timeout_s=0.5, retries=0)
        started.append((thread, device, link))
        return link

    yield _serve
    stop.set()
    for thread, device, link in started:
        link.close()
        thread.join(JOIN_TIMEOUT_S)
        assert not thread.is_alive(), f"{thread.name} did not stop"
        device.close()


@pytest.fixture
def debug(boards, serve):
    return BmsDebugClient(serve(bms_debug.PROTOCOL, DebugUart(boards.fw).answer))


@pytest.fixture
def ce_serial(boards, serve):
    return CellEmulatorClient(serve(cell_emulator.PROTOCOL, CellEmulatorSerial(boards.ce).answer,
                                    lambda: boards.t_s))


def test_debug_reads_the_cells_as_measured(make_boards, serve):
    boards = make_boards("dut.calibration.afe_noise_v=0.0015")
    debug = BmsDebugClient(serve(bms_debug.PROTOCOL, DebugUart(boards.fw).answer))
    boards.standby()
    measured_mv = debug.read_cell_voltages_mv()
    assert measured_mv == [round(v * 1000) for v in boards.fw.cell_v]
    assert np.abs(np.array(measured_mv) - boards.ce.setpoint_v * 1000).max() <= 2.0  # noise + 100 uV LSB


def test_debug_reads_the_balancing_mask(boards, debug):
    boards.ce.setpoint_v[[1, 12]] += (boards.cal["balance_threshold_mv"] + 5) / 1000
    boards.standby()
    boards.step_slow()
    assert debug.read_balancing_mask() == 1 << 1 | 1 << 12


def test_debug_fault_log_has_each_latched_fault_with_its_time(boards, debug):
    assert debug.read_fault_log() == []
    boards.power_up()
    boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] + 0.01
    boards.ce.setpoint_c[5] = boards.cal["cell_ot_c"] + 1
    ov_s = boards.run_until(lambda: boards.fault("cell_ov"), 1.0, "OV") - 0.01  # the task that latched it
    boards.run_until(lambda: boards.fault("cell_ot"), 2.0, "OT")
    ot_s = boards.t_s - 0.01
    log = debug.read_fault_log()
    assert [(e.code, e.timestamp_ms) for e in log] == [("over_voltage", round(ov_s * 1000)),
                                                       ("over_temperature", round(ot_s * 1000))]


def test_debug_fault_log_records_a_fault_again_after_a_clear(boards, debug):
    boards.power_up()
    for _ in range(2):
        boards.ce.setpoint_v[3] = boards.cal["cell_ov_v"] + 0.01
        boards.run_until(lambda: boards.fw.state == BmsState.FAULT, 1.0, "FAULT")
        boards.ce.setpoint_v[3] = boards.ocv_at(0.5)
        boards.step()
        boards.clear_faults()
        boards.run_until(lambda: boards.fw.state == BmsState.NORMAL, 1.0, "NORMAL after the clear")
    assert [e.code for e in debug.read_fault_log()] == ["over_voltage", "over_voltage"]


def test_debug_fault_log_names_a_thermistor_fault(boards, debug):
    boards.standby()
    boards.ce.thermistor_open[2] = True
    boards.run_until(lambda: boards.fault("thermistor"), 1.0, "thermistor fault")
    assert [e.code for e in debug.read_fault_log()] == ["thermistor_fault"]


def test_debug_fault_log_has_a_code_for_every_fault_the_firmware_latches(boards, debug):
    """Each FAULT_BITS name goes out as a FaultCode (insulation, which the protocol has no name for, as its
    number): a fault without one would break the answer, not just its entry."""
    boards.fw.fault_log.extend((ms, name) for ms, name in enumerate(FAULT_BITS))
    codes = {name: entry.code for name, entry in zip(FAULT_BITS, debug.read_fault_log())}
    assert len(codes) == len(FAULT_BITS)
    assert codes["contactor"] == codes["precharge"] == "contactor_fault" and codes["insulation"] == "14"


def test_debug_version_and_calibration(boards, debug):
    assert debug.read_firmware_version() == FIRMWARE_VERSION
    calibration = debug.read_calibration()
    assert calibration.keys() == boards.fw.cal.keys()
    for key, value in boards.fw.cal.items():
        assert calibration[key] == pytest.approx(float(value), rel=1e-6), key


def test_debug_refuses_an_unknown_command(boards, serve):
    link = serve(bms_debug.PROTOCOL, DebugUart(boards.fw).answer)
    message = struct.pack("<HB", 1, 0x55)  # length 1, command 0x55: no such command
    request = bms_debug.PROTOCOL.sync + message + struct.pack("<H", crc16_ccitt(message))
    reply = bms_debug.PROTOCOL.parse_message(link.request(request))
    assert reply.command == "nack" and reply.payload.reason == "unknown_command" and int(reply.payload.request) == 0x55


def test_debug_balancing_beyond_64_cells_is_not_available(make_boards, serve):
    boards = make_boards("pack.n_series=65", "cell_emulator.channels=65")
    debug = BmsDebugClient(serve(bms_debug.PROTOCOL, DebugUart(boards.fw).answer))
    with pytest.raises(BmsDebugError, match="not_available"):
        debug.read_balancing_mask()


def test_ce_serial_sets_and_reads_back_the_outputs(boards, ce_serial):
    voltages_mv = list(range(3000, 3000 + 50 * boards.ce.n_channels, 50))
    ce_serial.set_cell_voltages_mv(voltages_mv)
    ce_serial.set_outputs_enabled(True)
    assert ce_serial.read_cell_voltages_mv() == voltages_mv
    ce_serial.set_fault(4, "open_wire")
    ce_serial.set_fault(6, "short")
    expected = list(voltages_mv)
    expected[4] = expected[6] = 0
    assert ce_serial.read_cell_voltages_mv() == expected
    ce_serial.set_fault(4, "none")
    ce_serial.set_outputs_enabled(False)
    assert ce_serial.read_cell_voltages_mv() == [0] * boards.ce.n_channels


def test_ce_serial_refuses_what_the_board_cannot_do(boards, ce_serial):
    with pytest.raises(CellEmulatorError, match="bad_channel"):
        ce_serial.set_cell_voltages_mv([3700] * (boards.ce.n_channels + 1))
    with pytest.raises(CellEmulatorError, match="out_of_range"):
        ce_serial.set_cell_voltages_mv([MAX_CELL_MV + 1])
    with pytest.raises(CellEmulatorError, match="bad_channel"):
        ce_serial.set_fault(boards.ce.n_channels, "short")


def test_ce_serial_heartbeat_feeds_the_watchdog(boards, ce_serial):
    boards.sender.stop("CE_Control")  # only the serial host is left
    ce_serial.set_outputs_enabled(True)
    for sequence in range(5):  # 2 s with a serial heartbeat every 400 ms
        boards.run_for(0.4)
        uptime_ms, outputs_on = ce_serial.heartbeat(sequence)
        assert outputs_on and uptime_ms == round(boards.t_s * 1000)
    boards.run_for(WATCHDOG_S + 0.02)
    assert not boards.ce.outputs_on and boards.ce.watchdog_tripped
    assert ce_serial.heartbeat(99)[1] is False
