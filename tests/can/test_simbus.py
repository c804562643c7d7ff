"""SimBus: python-can's virtual bus semantics, without its copies and locks (hil/can/simbus.py)."""
from __future__ import annotations

import contextlib
import threading
import time

import can
import pytest
from can.interfaces.virtual import VirtualBus

from hil.bench import Bench
from hil.can.simbus import SimBus
from hil.rig import PROJECT_ROOT, load_rig
from tests.can.conftest import fresh_channel


@contextlib.contextmanager
def _buses(*classes, **kwargs):
    channel = fresh_channel()
    buses = [cls(channel=channel, **kwargs) for cls in classes]
    try:
        yield buses
    finally:
        for bus in buses:
            bus.shutdown()


def _frame(arbitration_id=0x123, data=b"\x01\x02\x03", **kwargs) -> can.Message:
    return can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False, **kwargs)


def test_a_frame_arrives_as_a_received_copy():
    with _buses(SimBus, SimBus) as (tx, rx):
        sent = _frame(timestamp=12.5)
        tx.send(sent)
        got = rx.recv(timeout=0)
        assert got is not sent
        assert (got.arbitration_id, bytes(got.data), got.dlc, got.is_extended_id) == (0x123, b"\x01\x02\x03", 3, False)
        assert got.is_rx and got.channel == tx.channel_id
        got.data[0] = 0xFF  # a receiver that scribbles on its frame does not change the sender's
        assert sent.data[0] == 0x01
        assert tx.recv(timeout=0) is None  # not its own frame, unless asked
        assert rx.recv(timeout=0) is None


def test_a_received_copy_has_every_field_of_a_message():
    """The copy sets python-can's Message fields one by one: one it did not know would be missing here."""
    with _buses(SimBus, SimBus) as (tx, rx):
        sent = _frame(data=b"\x05" * 12, is_fd=True, bitrate_switch=True, error_state_indicator=True, dlc=12)
        tx.send(sent)
        got = rx.recv(timeout=0)
    set_by_the_bus = {"timestamp": got.timestamp, "channel": tx.channel_id, "is_rx": True}
    for field in set(can.Message.__slots__) - {"__weakref__"}:
        assert getattr(got, field) == set_by_the_bus.get(field, getattr(sent, field)), field


def test_frames_keep_their_order_and_reach_every_receiver():
    with _buses(SimBus, SimBus, SimBus) as (tx, rx1, rx2):
        for i in range(5):
            tx.send(_frame(data=[i]))
        for rx in (rx1, rx2):
            assert [rx.recv(timeout=0).data[0] for _ in range(5)] == [0, 1, 2, 3, 4]


def test_plain_virtual_bus_on_the_channel_sends_and_receives():
    """A test's sniffer or injector on python-can's own virtual bus still sees the sim bus and is seen."""
    with _buses(SimBus, VirtualBus) as (sim, plain):
        sim.send(_frame(0x10))
        plain.send(_frame(0x20))
        assert plain.recv(timeout=0.1).arbitration_id == 0x10
        assert sim.recv(timeout=0.1).arbitration_id == 0x20


def test_shutting_down_one_empty_bus_leaves_the_others_connected():
    """Empty deques are equal: VirtualBus.shutdown removes its queue by ==, so it must be identity here."""
    with _buses(SimBus, SimBus, SimBus) as (a, b, c):
        b.shutdown()
        a.send(_frame())
        assert c.recv(timeout=0) is not None
        with pytest.raises(can.CanOperationError):
            b.recv(timeout=0)


@pytest.mark.parametrize("bus_class", [VirtualBus, SimBus])
def test_own_messages_and_filters_work_as_on_the_virtual_bus(bus_class):
    with _buses(bus_class, bus_class, receive_own_messages=True) as (tx, rx):
        rx.set_filters([{"can_id": 0x20, "can_mask": 0x7FF, "extended": False}])
        tx.send(_frame(0x10))
        tx.send(_frame(0x20))
        own = [tx.recv(timeout=0) for _ in range(3)]
        assert [(m.arbitration_id, m.is_rx) for m in own if m is not None] == [(0x10, False), (0x20, False)]
        # With timeout 0 python-can's recv returns None for a frame its filters drop, then the next one.
        assert [m.arbitration_id for m in (rx.recv(timeout=0) for _ in range(3)) if m is not None] == [0x20]


def test_a_blocking_receive_on_an_empty_bus_times_out():
    with _buses(SimBus) as (bus,):
        assert bus.recv(timeout=0.02) is None


def test_a_blocking_sim_bus_wakes_a_waiting_reader_in_another_thread():
    """On a real clock the harness's bus is read by a Notifier thread: its receive must not poll."""
    with _buses(SimBus, SimBus) as (tx, rx_polled):
        rx = SimBus(channel=tx.channel_id, blocking=True)
        try:
            got = []
            reader = threading.Thread(target=lambda: got.append(rx.recv(timeout=5.0)))
            reader.start()
            time.sleep(0.05)  # the reader is waiting on the empty inbox
            tx.send(_frame(0x42))
            reader.join(timeout=5.0)
            assert [m.arbitration_id for m in got] == [0x42] and got[0].is_rx
            assert rx.recv(timeout=0) is None and rx.recv(timeout=0.01) is None
            rx.send(_frame(0x43))  # and it sends, as any sim bus, to the polled ones
            assert rx_polled.recv(timeout=0).arbitration_id == 0x42
            assert rx_polled.recv(timeout=0).arbitration_id == 0x43
        finally:
            rx.shutdown()


@pytest.mark.parametrize("clock", ["virtual", "real"])
def test_the_sim_rig_uses_it_on_both_clocks(clock):
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [f'rig.clock="{clock}"'])
    with Bench(rig) as bench:
        assert type(bench.bus) is SimBus and type(bench._board_bus) is SimBus
        # A Notifier thread reads the harness's bus on a real clock: it must block, not poll.
        assert (bench.bus.blocking, bench._board_bus.blocking) == (clock == "real", False)
        bench.power_up()  # frames cross both ways: the BMS answers the harness
        assert bench.bms.contactors_closed
