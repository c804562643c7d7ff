"""`hil serial-bms`: an off-the-shelf BMS read over a socket that answers with real frames."""
import json

import pytest

from hil.cli import main
from hil.serial.protocols import jk, pylontech

from .test_serial_vendor_vectors import pylontech_frames, vector_frames


def test_a_pylontech_module_is_read_with_its_limits_and_alarms(scripted_device, capsys):
    _, _, _, one_module, management = pylontech_frames()
    alarms = pylontech.ALARMS.build(dict(flag=0x10, address=3, cell_count=8, cell_alarms=[0] * 7 + [1],
                                         temperature_count=5, temperature_alarms=[0, 0, 2, 0, 0],
                                         charge_current_alarm=0, pack_voltage_alarm=0, discharge_current_alarm=0,
                                         status=b""))

    def respond(request: bytes, index: int) -> bytes:
        body = pylontech.PROTOCOL.parse(request).body.value
        assert body.address == 3 and body.info == b"\x03", "the module --address names is asked, about itself"
        # The vectors come from address 2; re-sent from 3, as the module asked would answer.
        answers = {pylontech.COMMAND_ANALOG: one_module, pylontech.COMMAND_MANAGEMENT: management}
        info = (pylontech.PROTOCOL.parse(answers[body.cid2]).body.value.info if body.cid2 in answers else alarms)
        return pylontech.build_answer(3, info)

    device = scripted_device(pylontech.PROTOCOL, respond)
    assert main(["serial-bms", "pylontech", "--port", device.url, "--address", "3", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"pylontech on {device.url}: 26.638 V, 0.6 A (> 0 discharges), SOC 86.0 %"
    assert "spread 3 mV" in out[1]
    assert out[2] == "  limits: charge 55.5 A to 28.4 V, discharge 55.5 A to 23.2 V; enabled: charge, discharge"
    assert out[3] == "  alarms: cell 8 below lower limit; sensor 3 above upper limit"
    readings = json.loads(out[-1])
    assert readings["cell_voltages_mv"][0] == 3330 and readings["alarms"]["any"] is True
    assert readings["limits"]["charge_enabled"] is True


def test_a_jk_bms_is_read(scripted_device, capsys):
    (answer,) = vector_frames("jk_bms_rs485_frames.txt")
    device = scripted_device(jk.PROTOCOL, lambda request, index: answer)
    assert main(["serial-bms", "jk", "--port", device.url, "--json"]) == 0
    readings = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert (readings["pack_voltage_v"], readings["pack_current_a"], readings["soc"]) == (53.59, -2.08, 0.15)


@pytest.mark.parametrize("protocol", ["daly", "pylontech"])
def test_a_bms_that_does_not_answer_is_a_clear_error(scripted_device, capsys, protocol):
    device = scripted_device(pylontech.PROTOCOL, lambda request, index: b"")  # takes requests, says nothing
    assert main(["serial-bms", protocol, "--port", device.url, "--timeout", "0.1"]) == 2
    error = capsys.readouterr().err
    assert "hil serial-bms: error: " in error and device.url in error and "Nothing was received" in error


def test_a_port_that_does_not_open_names_itself(capsys):
    assert main(["serial-bms", "pylontech", "--port", "/dev/no-such-rs485"]) == 2
    error = capsys.readouterr().err
    assert "/dev/no-such-rs485" in error and "Pylontech RS485 at 9600 baud" in error
