"""python-can's own slcan client against the device side running in a separate OS process."""

import os
import subprocess
import sys
from pathlib import Path

import can
import pytest

from hil.serial.slcan import open_pty

pytestmark = pytest.mark.wire

ECHO_SCRIPT = Path(__file__).with_name("slcan_echo_device.py")
REPLY_TIMEOUT_S = 5.0  # generous: the device process may still be importing python-can
EXIT_TIMEOUT_S = 15.0


def start_echo_device() -> tuple[subprocess.Popen, str]:
    """Start the echo board in its own process; returns (process, slave path for the client)."""
    master_fd, slave_path = open_pty()
    process = subprocess.Popen(
        [sys.executable, str(ECHO_SCRIPT), str(master_fd), slave_path],
        pass_fds=[master_fd],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(master_fd)  # the device process owns the master now; its hang-up detection needs that
    return process, slave_path


def open_client(slave_path: str) -> can.BusABC:
    return can.Bus(interface="slcan", channel=slave_path, bitrate=500000, sleep_after_open=0)


def stop(process: subprocess.Popen) -> tuple[str, str]:
    try:
        return process.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"device process ignored the hang-up for {EXIT_TIMEOUT_S} s; stdout: {stdout!r}")


@pytest.fixture(scope="module")
def client():
    """python-can's slcan client talking to one echo device process shared by this module."""
    process, slave_path = start_echo_device()
    bus = open_client(slave_path)
    try:
        yield bus
    finally:
        bus.shutdown()
        stop(process)


def round_trip(client: can.BusABC, msg: can.Message) -> can.Message:
    client.send(msg)
    reply = client.recv(timeout=REPLY_TIMEOUT_S)
    assert reply is not None, f"no echo of {msg} within {REPLY_TIMEOUT_S} s"
    return reply


@pytest.mark.parametrize("dlc", range(9))
@pytest.mark.parametrize("is_extended_id", [False, True])
def test_data_frames_echo_with_next_id(client, dlc, is_extended_id):
    arbitration_id = 0x1ABCDEF0 if is_extended_id else 0x7A0
    data = bytes(range(0xA0, 0xA0 + dlc))
    reply = round_trip(client, can.Message(arbitration_id=arbitration_id, is_extended_id=is_extended_id, data=data))
    assert (reply.arbitration_id, reply.is_extended_id, reply.is_remote_frame) == (
        arbitration_id + 1,
        is_extended_id,
        False,
    )
    assert bytes(reply.data) == data


@pytest.mark.parametrize("is_extended_id", [False, True])
def test_remote_frames_echo_with_dlc(client, is_extended_id):
    reply = round_trip(
        client, can.Message(arbitration_id=0x100, is_extended_id=is_extended_id, is_remote_frame=True, dlc=5)
    )
    assert (reply.arbitration_id, reply.is_extended_id, reply.is_remote_frame, reply.dlc) == (
        0x101,
        is_extended_id,
        True,
        5,
    )


def test_version_and_serial_number_queries(client):
    assert client.get_version(timeout=REPLY_TIMEOUT_S) == (1, 1)
    assert client.get_serial_number(timeout=REPLY_TIMEOUT_S) == "HIL0"


def test_device_process_reports_device_lost_when_client_closes():
    process, slave_path = start_echo_device()
    client = open_client(slave_path)
    try:
        round_trip(client, can.Message(arbitration_id=0x10, is_extended_id=False, data=b"\x01"))
    finally:
        client.shutdown()
    stdout, stderr = stop(process)
    assert process.returncode == 0, f"stdout: {stdout!r} stderr: {stderr!r}"
    assert "DeviceLost" in stdout and slave_path in stdout, stdout
    assert "'rx_frames': 1" in stdout and "'bad_commands': 0" in stdout, stdout
