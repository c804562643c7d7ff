"""Bad input is counted and reported, and never stops the harness: each case below is followed by a good
frame that must still be decoded, on the Notifier thread the bench uses on a real clock."""
from __future__ import annotations

import time

import can
import pytest
from .conftest import fresh_channel

from hil.can.dbc import encode, load_dbc
from hil.can.monitor import CAN_ERR_BUSOFF, Monitor
from hil.errors import ConfigError

WAIT_S = 5.0


def status(db, state: int) -> can.Message:
    message = db.get_message_by_name("BMS_Status")
    return can.Message(arbitration_id=message.frame_id, data=encode(message, {"BMS_State": state}),
                       is_extended_id=False)


@pytest.fixture
def notified(db):
    """A Monitor behind a python-can Notifier, and a bus to send it frames."""
    channel = fresh_channel()
    rx = can.Bus(interface="virtual", channel=channel)
    tx = can.Bus(interface="virtual", channel=channel)
    monitor = Monitor(db, time.monotonic)
    notifier = can.Notifier(rx, [monitor], timeout=0.01)
    yield monitor, tx
    notifier.stop()
    rx.shutdown()
    tx.shutdown()


def send_then_good(db, monitor, tx, bad: can.Message, state: int) -> None:
    """Send `bad`, then a good frame with a `state` not seen before, and wait until that is decoded."""
    tx.send(bad)
    tx.send(status(db, state))
    monitor.wait_for("BMS_Status", {"BMS_State": state}, WAIT_S)


def test_unknown_id_is_counted_by_id(db, notified):
    monitor, tx = notified
    send_then_good(db, monitor, tx, can.Message(arbitration_id=0x7A0, data=bytes(8), is_extended_id=False), 1)
    tx.send(can.Message(arbitration_id=0x18FF50E5, data=bytes(8), is_extended_id=True))
    send_then_good(db, monitor, tx, can.Message(arbitration_id=0x100, data=bytes(8), is_extended_id=True), 2)
    assert monitor.counters["unknown_id"] == 3  # 0x100 is BMS_Status only as an 11-bit ID
    assert monitor.problems()[0] == ("3 frame(s) with an ID not in the DBC: 0x7A0 x1, "
                                     "0x00000100 (29-bit) x1, 0x18FF50E5 (29-bit) x1")


def test_a_frame_shorter_than_the_dbc_is_counted_not_decoded(db, notified):
    monitor, tx = notified
    send_then_good(db, monitor, tx, can.Message(arbitration_id=0x110, data=bytes(4), is_extended_id=False), 1)
    assert monitor.counters["bad_dlc"] == 1 and monitor.stats["BMS_PackData"].bad_dlc == 1
    assert "BMS_PackVoltage" not in monitor.values
    assert "BMS_PackData: 1 frame(s) shorter than its DBC length of 8 bytes" in monitor.problems()


def test_error_frames_and_bus_off_are_counted(db, notified):
    monitor, tx = notified
    send_then_good(db, monitor, tx, can.Message(is_error_frame=True, arbitration_id=0x04, data=bytes(8)), 1)
    send_then_good(db, monitor, tx, can.Message(is_error_frame=True, arbitration_id=CAN_ERR_BUSOFF, data=bytes(8)), 2)
    assert (monitor.counters["error_frames"], monitor.counters["bus_off"]) == (2, 1)
    assert "2 error frame(s), 1 of them bus-off" in monitor.problems()


class FlakyBus(can.BusABC):
    """A bus whose driver raises once (as an adapter does on bus-off or a USB hiccup), then delivers."""

    def __init__(self, frames):
        super().__init__(channel="flaky")
        self.frames = list(frames)
        self.raised = False

    def _recv_internal(self, timeout):
        if not self.raised:
            self.raised = True
            raise can.CanOperationError("bus-off (adapter reported)")
        if self.frames:
            return self.frames.pop(0), False
        time.sleep(timeout or 0)
        return None, False

    def send(self, msg, timeout=None):
        raise NotImplementedError


def test_an_exception_from_the_bus_is_counted_and_reception_goes_on(db):
    monitor = Monitor(db, time.monotonic)
    bus = FlakyBus([status(db, 3)])
    notifier = can.Notifier(bus, [monitor], timeout=0.01)
    try:
        monitor.wait_for("BMS_Status", {"BMS_State": 3}, WAIT_S)
    finally:
        notifier.stop()
        bus.shutdown()
    assert monitor.counters["bus_errors"] == 1
    assert "1 error(s) raised by the bus; last: CanOperationError: bus-off (adapter reported)" in monitor.problems()


def test_a_signal_name_not_in_the_dbc_lists_close_matches(db):
    monitor = Monitor(db, time.monotonic)
    with pytest.raises(ConfigError, match="signal 'BMS_PackVoltag' is not in the loaded DBC files "
                                          r"\(did you mean 'BMS_PackVoltage'"):
        monitor.get("BMS_PackVoltag")


def test_a_dbc_with_a_syntax_error_names_file_and_line(tmp_path):
    broken = tmp_path / "broken.dbc"
    broken.write_text('VERSION ""\n\nBU_: BMS\n\nBO_ 256 BMS_Status 8 BMS\n SG_ S : 0|8@1+ (1,0) [0|1] "" X\n')
    with pytest.raises(ConfigError, match=r"broken\.dbc:5: not a valid DBC file: Invalid syntax at line 5"):
        load_dbc(broken)
