"""Buses from rig tables: python-can keywords pass through, several buses coexist, and every way opening
fails says what to fix."""
from __future__ import annotations

import os
import re
import socket
import threading

import can
import pytest
from .conftest import fresh_channel

from hil.can.bus import open_bus
from hil.errors import ConfigError, DeviceLost
from hil.serial.slcan import SlcanDeviceBus, open_pty

WHERE = "rigs/lab.toml [can.main]"
RECV_TIMEOUT_S = 5.0


def test_several_buses_from_one_rig_with_can_fd_options_passed_through():
    tables = {"main": {"interface": "virtual", "channel": fresh_channel(), "bitrate": 500000},
              "fd": {"interface": "virtual", "channel": fresh_channel(), "bitrate": 500000, "fd": True,
                     "data_bitrate": 2000000, "receive_own_messages": True}}
    buses = {name: open_bus(table, f"rigs/lab.toml [can.{name}]") for name, table in tables.items()}
    try:
        listener = open_bus(dict(tables["main"]), WHERE)
        long_frame = can.Message(arbitration_id=0x18DAF110, data=bytes(range(64)), is_fd=True,
                                 bitrate_switch=True)
        buses["fd"].send(long_frame)
        echoed = buses["fd"].recv(RECV_TIMEOUT_S)  # receive_own_messages passed through to python-can
        assert echoed.is_fd and bytes(echoed.data) == bytes(range(64)) and echoed.is_extended_id
        buses["main"].send(can.Message(arbitration_id=0x100, data=b"\x01"))
        assert listener.recv(RECV_TIMEOUT_S).arbitration_id == 0x100
        assert listener.recv(0) is None  # the FD bus is a different bus
        listener.shutdown()
    finally:
        for bus in buses.values():
            bus.shutdown()


def test_slcan_on_a_pty_gets_the_rig_bitrate_and_carries_frames():
    master_fd, slave_path = open_pty()
    device = SlcanDeviceBus(master_fd, slave_path)
    stop = threading.Event()

    def board():  # the device side answers the host's commands and echoes each frame back at ID + 1
        try:
            while not stop.is_set():
                msg = device.recv(timeout=0.01)
                if msg is not None:
                    device.send(can.Message(arbitration_id=msg.arbitration_id + 1, data=msg.data,
                                            is_extended_id=False))
        except DeviceLost:
            pass  # the host closed the pty: an emulated board stops, as a real one loses its USB host

    thread = threading.Thread(target=board, daemon=True)
    thread.start()
    bus = open_bus({"interface": "slcan", "channel": slave_path, "bitrate": 250000, "sleep_after_open": 0},
                   "rigs/slcan.toml [can.main]")
    try:
        bus.send(can.Message(arbitration_id=0x210, data=b"\x01\x02", is_extended_id=False))
        reply = bus.recv(RECV_TIMEOUT_S)
        assert reply is not None and reply.arbitration_id == 0x211 and bytes(reply.data) == b"\x01\x02"
        assert device.bitrate_bps == 250000
    finally:
        stop.set()
        bus.shutdown()
        thread.join(RECV_TIMEOUT_S)
        device.shutdown()


def test_an_unknown_interface_names_the_closest():
    with pytest.raises(ConfigError, match=r"rigs/lab.toml \[can.main\]: key 'interface' = 'virutal' is not a "
                                          r"python-can interface \(did you mean 'virtual'\?\)"):
        open_bus({"interface": "virutal", "channel": "x"}, WHERE)


def test_a_keyword_typo_is_refused_instead_of_silently_ignored():
    with pytest.raises(ConfigError, match=r"key 'bitrat' is not a keyword of python-can's 'slcan' interface "
                                          r"\(did you mean 'bitrate'\?\)"):
        open_bus({"interface": "slcan", "channel": "/dev/ttyACM0", "bitrat": 500000}, WHERE)


def test_a_missing_driver_says_what_to_install():
    try:
        bus = can.Bus(interface="pcan", channel="PCAN_USBBUS1")
    except Exception:  # noqa: BLE001 - the usual case here: no PCAN-Basic library
        pass
    else:
        bus.shutdown()
        pytest.skip("PEAK's PCAN-Basic library is installed here, so its absence cannot be shown")
    with pytest.raises(ConfigError, match=r"python-can's 'pcan' interface cannot load its driver: .*To fix: install "
                                          r"PEAK's PCAN-Basic library"):
        open_bus({"interface": "pcan", "channel": "PCAN_USBBUS1", "bitrate": 500000}, WHERE)


def test_a_missing_device_names_interface_and_channel(tmp_path):
    absent = str(tmp_path / "ttyUSB7")
    with pytest.raises(DeviceLost, match=rf"cannot open CAN device: interface 'slcan' channel '{absent}': .*"
                                         r"Is the adapter plugged in and powered, and does 'channel' name it\?"):
        open_bus({"interface": "slcan", "channel": absent, "bitrate": 500000, "sleep_after_open": 0}, WHERE)


def test_socketcan_without_kernel_support_or_without_the_interface_is_explained():
    channel = "hilnone0"
    if os.path.exists(f"/sys/class/net/{channel}"):
        pytest.skip(f"a network interface {channel} exists here")
    # Without CONFIG_CAN (these machines) the kernel is the problem; with it, the missing interface is.
    try:
        socket.socket(socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW).close()
        kernel_has_can = True
    except OSError:
        kernel_has_can = False
    expected_error, expected_text = ((DeviceLost, f"channel '{channel}'") if kernel_has_can
                                     else (ConfigError, "this kernel has no SocketCAN"))
    with pytest.raises(expected_error, match=re.escape(expected_text)):
        open_bus({"interface": "socketcan", "channel": channel}, WHERE)


def test_settings_python_can_rejects_are_config_errors():
    with pytest.raises(ConfigError, match=r"python-can rejected the settings .*'slcan'.*channel"):
        open_bus({"interface": "slcan", "bitrate": 500000}, WHERE)
