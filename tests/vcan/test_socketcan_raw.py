"""Raw frames through python-can's socketcan interface on a real vcan0: the kernel's CAN_RAW sockets.

Two buses on one vcan0 see each other's frames (vcan loops every frame back to all other sockets),
so these tests check the kernel path the vcan rig uses, without any emulated board.
"""

import can
import pytest

pytestmark = pytest.mark.vcan

# Generous: under software emulation in `hil vcan-vm` a frame still arrives in milliseconds, but a
# loaded CI machine can stall the VM for a while.
RECV_TIMEOUT_S = 5.0
# How long to wait before concluding a frame did not arrive.
ABSENCE_WAIT_S = 0.3


@pytest.fixture
def sender(vcan_channel):
    with can.Bus(interface="socketcan", channel=vcan_channel) as bus:
        yield bus


@pytest.fixture
def receiver(vcan_channel):
    with can.Bus(interface="socketcan", channel=vcan_channel) as bus:
        yield bus


def _receive(bus: can.BusABC) -> can.Message:
    message = bus.recv(timeout=RECV_TIMEOUT_S)
    assert message is not None, f"no frame on {bus.channel_info} within {RECV_TIMEOUT_S} s"
    return message


def test_standard_11_bit_frame(sender, receiver):
    sender.send(can.Message(arbitration_id=0x123, data=bytes([1, 2, 3, 4, 5, 6, 7, 8]), is_extended_id=False))

    received = _receive(receiver)

    assert received.arbitration_id == 0x123
    assert not received.is_extended_id
    assert received.data == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert received.dlc == 8
    assert received.channel == receiver.channel


def test_extended_29_bit_frame(sender, receiver):
    sender.send(can.Message(arbitration_id=0x18FF50E5, data=b"\xde\xad", is_extended_id=True))

    received = _receive(receiver)

    assert received.arbitration_id == 0x18FF50E5
    assert received.is_extended_id
    assert received.data == b"\xde\xad"


def test_remote_frame_carries_dlc_without_data(sender, receiver):
    sender.send(can.Message(arbitration_id=0x321, is_remote_frame=True, dlc=4, is_extended_id=False))

    received = _receive(receiver)

    assert received.is_remote_frame
    assert received.arbitration_id == 0x321
    assert received.dlc == 4


def test_frames_arrive_in_order_and_error_free(sender, receiver):
    for counter in range(20):
        sender.send(can.Message(arbitration_id=0x200 + counter, data=bytes([counter]), is_extended_id=False))

    received = [_receive(receiver) for _ in range(20)]

    assert [m.arbitration_id for m in received] == [0x200 + i for i in range(20)]
    assert [m.data[0] for m in received] == list(range(20))
    assert not any(m.is_error_frame for m in received)
    assert receiver.recv(timeout=ABSENCE_WAIT_S) is None, "more frames than were sent"


def test_sender_does_not_receive_its_own_frames_by_default(sender, receiver):
    sender.send(can.Message(arbitration_id=0x55, data=b"\x01", is_extended_id=False))

    assert _receive(receiver).arbitration_id == 0x55
    assert sender.recv(timeout=ABSENCE_WAIT_S) is None


def test_kernel_filter_passes_only_matching_ids(sender, vcan_channel):
    only_0x100_block = [{"can_id": 0x100, "can_mask": 0x7F0, "extended": False}]
    with can.Bus(interface="socketcan", channel=vcan_channel, can_filters=only_0x100_block) as filtered:
        for arbitration_id in (0x200, 0x105, 0x7FF, 0x10F):
            sender.send(can.Message(arbitration_id=arbitration_id, data=b"", is_extended_id=False))

        passed = [_receive(filtered).arbitration_id for _ in range(2)]

        assert passed == [0x105, 0x10F]
        assert filtered.recv(timeout=ABSENCE_WAIT_S) is None


def test_can_fd_frame_with_64_bytes(vcan_channel):
    payload = bytes(range(64))
    with can.Bus(interface="socketcan", channel=vcan_channel, fd=True) as fd_sender, \
            can.Bus(interface="socketcan", channel=vcan_channel, fd=True) as fd_receiver:
        fd_sender.send(can.Message(arbitration_id=0x42, data=payload, is_fd=True, bitrate_switch=True,
                                   is_extended_id=False))

        received = _receive(fd_receiver)

    assert received.is_fd
    assert received.bitrate_switch
    assert received.data == payload
