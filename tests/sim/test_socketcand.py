"""The emulated boards behind a socketcand server, reached with python-can's own `socketcand` client."""
import re
import socket
import threading
import time

import can
import pytest

from hil.errors import ConfigError, DeviceLost
from hil.protocol import BmsState
from hil.rig import PROJECT_ROOT, load_rig
from hil.sim.socketcand import SocketcandDeviceBus

RECV_TIMEOUT_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_until(device, condition, timeout_s=RECV_TIMEOUT_S):
    """Let the device answer its client (recv drives it) until `condition()`; return what it received."""
    received = []
    end_s = time.monotonic() + timeout_s
    while not condition(received):
        assert time.monotonic() < end_s, f"not reached; received {received}, {device.counters}"
        msg = device.recv(timeout=0.01)
        if msg is not None:
            received.append(msg)
    return received


@pytest.fixture
def pair():
    """A device bus and python-can's socketcand client connected to it (the handshake runs in a thread)."""
    device = SocketcandDeviceBus(0, "vcan0")
    client = {}
    thread = threading.Thread(target=lambda: client.setdefault(
        "bus", can.Bus(interface="socketcand", host="127.0.0.1", port=device.port, channel="vcan0")))
    thread.start()
    _serve_until(device, lambda _: not thread.is_alive())
    thread.join(RECV_TIMEOUT_S)
    yield device, client["bus"]
    client["bus"].shutdown()
    device.shutdown()


def test_frames_cross_both_ways(pair):
    device, client = pair
    client.send(can.Message(arbitration_id=0x210, data=bytes(range(8)), is_extended_id=False))
    client.send(can.Message(arbitration_id=0x18FF50E5, data=b"\x01\x02", is_extended_id=True))
    got = _serve_until(device, lambda r: len(r) == 2)
    assert [(m.arbitration_id, m.is_extended_id, bytes(m.data)) for m in got] == [
        (0x210, False, bytes(range(8))), (0x18FF50E5, True, b"\x01\x02")]
    time.sleep(0.06)  # past the settle time after rawmode
    device.send(can.Message(arbitration_id=0x100, data=b"\xaa" * 8, is_extended_id=False))
    msg = client.recv(timeout=RECV_TIMEOUT_S)
    assert (msg.arbitration_id, bytes(msg.data)) == (0x100, b"\xaa" * 8)


def test_client_hang_up_is_device_lost(pair):
    device, client = pair
    client.shutdown()
    with pytest.raises(DeviceLost, match="harness is gone"):
        _serve_until(device, lambda _: False)


def test_only_loopback_is_served():
    with pytest.raises(ConfigError, match="127.0.0.1 only"):
        SocketcandDeviceBus(0, "vcan0", host="0.0.0.0")


@pytest.mark.wire
def test_bench_over_socketcand_trips_on_overvoltage(tmp_path):
    from hil.bench import Bench
    text = (PROJECT_ROOT / "rigs" / "slcan.toml").read_text().replace('"../', f'"{PROJECT_ROOT}/')
    bus_table = (f'interface = "socketcand"\nhost = "127.0.0.1"\nport = {_free_port()}\nchannel = "vcan0"\n'
                 'dbc = ["{root}/dbc/bms.dbc", "{root}/dbc/vcu.dbc", "{root}/dbc/cell_emulator.dbc"]\n\n'
                 ).replace("{root}", str(PROJECT_ROOT))
    text = re.sub(r"(\[can\.main\]\n)(.*?\n)\n", lambda m: m.group(1) + bus_table, text, count=1, flags=re.DOTALL)
    rig_path = tmp_path / "socketcand.toml"
    rig_path.write_text(text)
    with Bench(load_rig(rig_path)) as bench:
        assert bench.emulator.endpoints["main"] == ("socketcand", "vcan0")
        bench.power_up()
        bench.force_cell(3, bench.rig.data["dut"]["calibration"]["cell_ov_v"] + 0.02)
        bench.bms.wait_state(BmsState.FAULT, 2.0)
        assert "cell_ov" in bench.bms.faults
