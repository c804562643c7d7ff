"""SerialLink over a TCP socket and a pty: retries, resync, timeouts that show what was seen, lost devices."""

import os

import pytest

from hil.errors import ConfigError, DeviceLost, HilTimeout
from hil.serial.link import SerialLink
from hil.serial.protocols.cell_emulator import PROTOCOL
from hil.serial.slcan import open_pty

TIMEOUT_S = 0.3
REQUEST = PROTOCOL.build_message("read_cell_voltages")
RESPONSE = PROTOCOL.build_message("cell_voltages", cell_voltages_mv=[3700, 3650, 4100])


def corrupt_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


def open_link(url: str, retries: int = 2) -> SerialLink:
    return SerialLink(url, PROTOCOL, timeout_s=TIMEOUT_S, retries=retries)


def test_request_returns_the_response(scripted_device):
    device = scripted_device(PROTOCOL, lambda request, index: RESPONSE)
    with open_link(device.url) as link:
        assert link.request(REQUEST) == RESPONSE
    assert device.requests == [REQUEST]


def test_garbage_before_the_response_is_skipped(scripted_device):
    garbage = b"\x00\xaa\xaa\x55\xff\x13\x37" + b"\xaa\x55\x04\x82"  # a torn frame, then the real one
    device = scripted_device(PROTOCOL, lambda request, index: garbage + RESPONSE)
    with open_link(device.url) as link:
        assert link.request(REQUEST) == RESPONSE
        assert link.counters["resyncs"] >= 1 and link.counters["retries"] == 0


def test_bad_checksum_is_dropped_and_the_request_retried(scripted_device):
    device = scripted_device(PROTOCOL, lambda request, index: corrupt_crc(RESPONSE) if index == 0 else RESPONSE)
    with open_link(device.url) as link:
        assert link.request(REQUEST) == RESPONSE
        assert (link.counters["bad_crc"], link.counters["timeouts"], link.counters["retries"]) == (1, 1, 1)
    assert len(device.requests) == 2


def test_answers_that_accept_refuses_are_skipped(scripted_device):
    heartbeat = PROTOCOL.build_message("heartbeat_reply", sequence=7, uptime_ms=10, outputs_enabled=False)
    device = scripted_device(PROTOCOL, lambda request, index: heartbeat + RESPONSE)
    with open_link(device.url) as link:
        response = link.request(REQUEST, accept=lambda fields: fields.message.value.command == "cell_voltages")
        assert response == RESPONSE and link.counters["unexpected"] == 1


def test_silent_device_times_out_after_every_retry(scripted_device):
    device = scripted_device(PROTOCOL, lambda request, index: b"")
    with open_link(device.url, retries=1) as link, pytest.raises(HilTimeout) as raised:
        link.request(REQUEST)
    assert "2 attempts" in str(raised.value) and "Nothing was received" in str(raised.value)
    assert len(device.requests) == 2


def test_truncated_frame_times_out_showing_the_partial_bytes(scripted_device):
    truncated = RESPONSE[:-3]
    device = scripted_device(PROTOCOL, lambda request, index: truncated if index == 0 else b"")
    with open_link(device.url, retries=0) as link, pytest.raises(HilTimeout) as raised:
        link.request(REQUEST)
    message = str(raised.value)
    assert truncated.hex(" ") in message and f"of the {len(RESPONSE)} its header declares" in message
    assert device.url in message


def test_device_hanging_up_mid_test_is_device_lost(scripted_device):
    device = scripted_device(PROTOCOL, lambda request, index: RESPONSE if index == 0 else None)
    with open_link(device.url) as link:
        link.request(REQUEST)
        with pytest.raises(DeviceLost, match="device lost") as raised:
            link.request(REQUEST)
    assert device.url in str(raised.value)


def test_pty_device_lost_when_the_other_end_closes():
    master_fd, slave_path = open_pty()
    with open_link(slave_path) as link:
        os.close(master_fd)
        with pytest.raises(DeviceLost, match="device lost") as raised:
            link.request(REQUEST)
    assert slave_path in str(raised.value)


def test_missing_port_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="/dev/hil-no-such-port.*cell emulator"):
        open_link("/dev/hil-no-such-port")


def test_refused_socket_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="socket://127.0.0.1:1"):
        open_link("socket://127.0.0.1:1")


def test_busy_port_is_a_config_error_saying_so():
    master_fd, slave_path = open_pty()
    try:
        with open_link(slave_path), pytest.raises(ConfigError, match="no other program holds the port"):
            open_link(slave_path)
    finally:
        os.close(master_fd)
