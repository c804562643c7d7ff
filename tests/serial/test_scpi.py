"""SCPI over a real pty: the harness's client (`hil.serial.scpi`) and supply driver (`hil.devices.power_supply`)
against the emulated lab supply served by `SerialDevice`, and the errors a user sees when the instrument is
wrong, silent or gone."""
import json
import os
import threading

import pytest

from hil.devices.power_supply import PowerSupply
from hil.errors import ConfigError, DeviceLost, HilTimeout
from hil.serial.scpi import MAX_LINE_BYTES, InstrumentError, LineScanner, ScpiPort, checked
from hil.serial.slcan import open_pty
from hil.sim.lab_supply import LabSupply
from hil.sim.serial_device import SerialDevice

POLL_S = 0.001


@pytest.fixture
def served():
    """A LabSupply behind a pty, polled by a thread; yields (supply, its pty path, a function that stops serving)."""
    master_fd, path = open_pty()
    supply = LabSupply(nominal_v=12.0)
    device = SerialDevice(master_fd, path, None, supply.answer)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [device.poll(0.0) for _ in iter(lambda: stop.wait(POLL_S), True)],
                              daemon=True)
    thread.start()

    def stop_serving():   # as the emulated boards' process exiting: the device's end of the pty closes
        stop.set()
        thread.join(5.0)
        device.close()
    yield supply, path, stop_serving
    stop_serving()


def test_line_scanner_splits_lines_and_drops_an_overlong_one():
    counters = {}
    scanner = LineScanner(counters)
    assert scanner.feed(b"VOLT 5\r\nOUTP") == [b"VOLT 5"]
    assert scanner.feed(b" ON\n\n") == [b"OUTP ON"]
    assert scanner.feed(b"x" * (MAX_LINE_BYTES + 1)) == [] and counters["overlong"] == 1
    assert scanner.feed(b"*IDN?\n") == [b"*IDN?"]


def test_the_driver_sets_measures_and_plays_through_the_pty(served):
    supply, path, _ = served
    port = ScpiPort(path, where="rig.toml [power_supply]", timeout_s=1.0)
    driver = PowerSupply(port, nominal_v=12.0, current_limit_a=2.0)
    try:
        assert driver.identity.startswith("hil,Emulated lab supply")
        driver.set_voltage(8.5)
        assert driver.measure_voltage_v() == 8.5 and supply.voltage_v == 8.5
        driver.output(False)
        assert driver.measure_voltage_v() == 0.0 and not supply.output_on
        assert driver.restore() == 12.0 and supply.output_on
        assert driver.play([(6.0, 0.05), (8.0, 2.0)]) == pytest.approx(2.05)
        assert supply.list_v == [6.0, 8.0] and supply.list_dwell_s == [0.05, 2.0] and supply.list_mode
    finally:
        driver.close()


def test_a_refused_setting_names_the_instrument_the_command_and_its_error(served):
    _, path, _ = served
    port = ScpiPort(path, where="rigs/bench.toml [power_supply]")
    try:
        with pytest.raises(InstrumentError, match=r"rigs/bench.toml \[power_supply\] on .* refused 'VOLT 99': "
                                                  r"-222,\"Data out of range; 99 V, expected 0 to 30 V\""):
            checked(port, "VOLT 99")
        checked(port, "VOLT 5")   # the queue was emptied: the next setting is clean
    finally:
        port.close()


def test_a_silent_instrument_times_out_saying_nothing_came():
    master_fd, path = open_pty()   # nobody answers on the other side
    port = ScpiPort(path, where="rig.toml [power_supply]", timeout_s=0.2)
    try:
        with pytest.raises(HilTimeout, match=r"no answer to '\*IDN\?' within 0.2 s; nothing was received: is the "
                                             "instrument on"):
            port.query("*IDN?")
    finally:
        port.close()
        os.close(master_fd)


def test_an_answer_without_a_line_end_shows_what_came():
    master_fd, path = open_pty()
    port = ScpiPort(path, where="rig.toml [power_supply]", timeout_s=0.5)

    os.set_blocking(master_fd, True)   # the thread waits for the query

    def answer_garbled():   # a wrong baud rate looks like this: bytes, never a line end
        received = b""
        while b"\n" not in received:
            received += os.read(master_fd, 64)
        os.write(master_fd, b"\xfe\xfe 12.0")
    thread = threading.Thread(target=answer_garbled, daemon=True)
    thread.start()
    try:
        with pytest.raises(HilTimeout, match=r"received b'.*12.0', no complete line \(is the baud rate right"):
            port.query("MEAS:VOLT?")
    finally:
        thread.join(5.0)
        port.close()
        os.close(master_fd)


def test_a_port_that_does_not_exist_is_a_config_error_naming_the_rig():
    with pytest.raises(ConfigError, match=r"rig.toml \[power_supply\]: cannot open the instrument's serial port "
                                          "'/dev/ttyNOPE0'"):
        ScpiPort("/dev/ttyNOPE0", where="rig.toml [power_supply]")


def test_an_instrument_gone_mid_run_is_device_lost(served):
    _, path, stop_serving = served
    port = ScpiPort(path, where="rig.toml [power_supply]", timeout_s=0.5)
    try:
        port.query("*IDN?")
        stop_serving()
        with pytest.raises(DeviceLost, match=r"rig.toml \[power_supply\] on .*: instrument lost while"):
            port.query("*IDN?")
    finally:
        port.close()


def test_hil_supply_sets_and_reads_a_supply_on_a_port(served, capsys):
    from hil.cli import main
    supply, path, _ = served
    assert main(["supply", "--port", path, "--volt", "9.5", "--off", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"hil,Emulated lab supply,0,1.0 on {path}: set 9.5 V, output off, measures 0 V 0 A"
    assert json.loads(out[-1]) == {"identity": "hil,Emulated lab supply,0,1.0", "port": path, "set_v": 9.5,
                                   "output_on": False, "measured_v": 0.0, "measured_a": 0.0}
    assert supply.voltage_v == 9.5 and not supply.output_on
    assert main(["supply", "--port", path, "--restore"]) == 0
    assert supply.voltage_v == 12.0 and supply.output_on


def test_hil_supply_without_a_real_supply_says_what_it_needs(capsys):
    from hil.cli import main
    assert main(["supply"]) == 2
    assert "[power_supply]: kind = 'emulated'; `hil supply` talks to a real supply" in capsys.readouterr().err
    assert main(["supply", "--set", "power_supply.kind=scpi", "--set", "power_supply.port=/dev/ttyNOPE0"]) == 2
    assert "cannot open the instrument's serial port '/dev/ttyNOPE0'" in capsys.readouterr().err
