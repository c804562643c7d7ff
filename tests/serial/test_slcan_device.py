"""SlcanDeviceBus on a real pty, with a raw pyserial host writing LAWICEL lines by hand."""

import os

import can
import pytest
import serial

from hil.errors import DeviceLost
from hil.serial.slcan import BEL, OK, SlcanDeviceBus, open_pty

READ_TIMEOUT_S = 2.0
PUMP_S = 0.05  # how long the device spends answering the host per step


@pytest.fixture
def device_and_host():
    master_fd, slave_path = open_pty()
    device = SlcanDeviceBus(master_fd, channel=slave_path)
    host = serial.serial_for_url(slave_path, timeout=READ_TIMEOUT_S)
    try:
        yield device, host, slave_path
    finally:
        host.close()
        device.shutdown()


def exchange(device: SlcanDeviceBus, host: serial.Serial, command: bytes, reply_size: int) -> tuple[bytes, list]:
    """Host writes ``command``; the device answers while receiving; returns (reply bytes, frames)."""
    host.write(command)
    received = []
    while (msg := device.recv(timeout=PUMP_S)) is not None:
        received.append(msg)
    return host.read(reply_size), received


def test_open_close_and_frames_from_host(device_and_host):
    device, host, _ = device_and_host
    assert exchange(device, host, b"C\rS6\r\rO\rO\r", 5) == (OK * 5, [])
    assert device.is_open and device.bitrate_bps == 500_000
    replies, received = exchange(device, host, b"t1232AABB\rT1ABCDEF00\rR000000013\r", 6)
    assert replies == b"z\rZ\rZ\r"
    assert [(m.arbitration_id, m.is_extended_id, m.is_remote_frame, bytes(m.data)) for m in received] == [
        (0x123, False, False, b"\xaa\xbb"),
        (0x1ABCDEF0, True, False, b""),
        (0x1, True, True, b""),
    ]
    assert exchange(device, host, b"C\rt1230\r", 2) == (OK + BEL, [])
    assert device.counters == {"bad_commands": 0, "rx_frames": 3, "tx_frames": 0, "dropped_closed": 1,
                               "dropped_overrun": 0}


def test_garbage_is_answered_with_bel_and_counted(device_and_host):
    device, host, _ = device_and_host
    replies, received = exchange(device, host, b"O\r\x00\xffhello\r\n\rt7FF0\r", 5)
    assert replies == OK + BEL + BEL + b"z\r"
    assert [m.arbitration_id for m in received] == [0x7FF]
    assert device.counters["bad_commands"] == 2


def test_send_reaches_host_only_while_open_with_optional_timestamp(device_and_host):
    device, host, _ = device_and_host
    frame = can.Message(arbitration_id=0x42, is_extended_id=False, data=b"\x10\x20")
    exchange(device, host, b"\r", 1)  # the host has opened the pty; the channel is still closed
    device.send(frame)
    assert device.counters["dropped_closed"] == 1
    exchange(device, host, b"Z1\rO\r", 2)
    device.send(frame)
    line = host.read_until(OK)
    assert line.startswith(b"t04221020") and len(line) == len(b"t04221020") + 4 + 1, line
    assert device.counters["tx_frames"] == 1


def test_recv_waits_quietly_until_a_host_opens_the_pty():
    master_fd, slave_path = open_pty()
    with SlcanDeviceBus(master_fd, channel=slave_path) as device:
        assert device.recv(timeout=0.1) is None


def test_host_hang_up_raises_device_lost_naming_the_pty(device_and_host):
    device, host, slave_path = device_and_host
    exchange(device, host, b"O\r", 1)
    host.close()
    with pytest.raises(DeviceLost, match=slave_path):
        device.recv(timeout=READ_TIMEOUT_S)
    with pytest.raises(DeviceLost, match="device lost"):
        device.send(can.Message(arbitration_id=1, is_extended_id=False))


def test_recv_with_zero_timeout_still_answers_pending_commands(device_and_host):
    device, host, _ = device_and_host
    host.write(b"O\rt1000\r")
    host.flush()
    assert device.recv(timeout=0).arbitration_id == 0x100
    assert host.read(3) == OK + b"z\r"


def test_a_host_that_stops_reading_makes_the_device_drop_frames_not_stall():
    """A real adapter overruns when its host stops reading; the board's loop (and watchdogs) never block."""
    master_fd, slave_path = open_pty()
    host_fd = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    try:
        device = SlcanDeviceBus(master_fd, channel=slave_path)
        os.write(host_fd, b"S6\rO\r")
        device.recv(timeout=0.2)  # processes the commands
        msg = can.Message(arbitration_id=0x123, data=bytes(8), is_extended_id=False)
        for _ in range(5000):  # far more than a pty buffer holds; the host reads none of it
            device.send(msg)  # without overrun handling this raises HilTimeout once the pty is full
        assert device.counters["dropped_overrun"] > 0 and device.counters["tx_frames"] > 0
        device.shutdown()
    finally:
        os.close(host_fd)
