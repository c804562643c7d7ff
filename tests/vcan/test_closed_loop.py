"""The closed loop over real SocketCAN: `rigs/vcan.toml`, boards in their own `hil emulate` process on vcan0.

Outside a vcan-capable kernel these skip (see conftest.py); CI runs them inside `hil vcan-vm`.
"""
from pathlib import Path

import can
import pytest

from hil.bench import Bench
from hil.protocol import BmsState
from hil.rig import load_rig

pytestmark = pytest.mark.vcan

VCAN_RIG = Path(__file__).resolve().parents[2] / "rigs" / "vcan.toml"


@pytest.fixture
def vcan_bench():
    with Bench(load_rig(VCAN_RIG)) as bench:
        try:
            yield bench
        finally:
            bench.make_safe()


def test_bms_status_cycle_times(vcan_bench):
    spec = vcan_bench.spec
    vcan_bench.power_up(timeout_s=10.0)
    # Steady operation, not start-up: a harness that stalled while the boards' process ran on (a slow VM)
    # reads a backlog of frames at once, and those short gaps say nothing of the BMS's cycle time.
    vcan_bench.monitor.reset_stats()
    vcan_bench.loop.run_for(3.0)
    for message in ("BMS_Status", "BMS_PackData"):
        expected = spec.value(f"cycle_times.{message}")
        stats = vcan_bench.monitor.stats[message]
        tolerance_s = expected["cycle_ms"] * expected["tolerance_pct"] / 100 / 1000
        assert abs(stats.mean_cycle_s - expected["cycle_ms"] / 1000) <= tolerance_s, (message, stats)
        assert stats.bad_counter == 0 and stats.bad_crc == 0, (message, stats)


def test_overvoltage_trip_over_socketcan(vcan_bench):
    vcan_bench.power_up(timeout_s=10.0)
    ov = vcan_bench.spec.protections["cell_ov"]
    vcan_bench.force_cell(4, ov.high + 0.02)
    vcan_bench.bms.wait_state(BmsState.FAULT, 3.0)
    vcan_bench.bms.wait_contactors_open(1.0)
    assert "cell_ov" in vcan_bench.bms.faults


def test_heartbeat_loss_over_socketcan(vcan_bench):
    vcan_bench.power_up(timeout_s=10.0)
    vcan_bench.bms.heartbeat(False)
    timeout_s = vcan_bench.spec.value("heartbeat.max_reaction_ms") / 1000
    vcan_bench.bms.wait_contactors_open(3 * timeout_s)
    assert "heartbeat" in vcan_bench.bms.faults


def test_board_frames_seen_by_a_raw_socketcan_listener(vcan_bench, vcan_channel):
    """A second, independent CAN_RAW socket sees the BMS's frames with valid E2E protection."""
    from hil.can import e2e
    with can.Bus(interface="socketcan", channel=vcan_channel,
                 can_filters=[{"can_id": 0x100, "can_mask": 0x7FF}]) as listener:
        vcan_bench.loop.run_for(0.5)
        frames = []
        while (msg := listener.recv(timeout=0)) is not None:
            frames.append(msg)
    assert len(frames) >= 10, f"only {len(frames)} BMS_Status frames in 0.5 s"
    assert all(msg.arbitration_id == 0x100 and e2e.crc_ok(bytes(msg.data)) for msg in frames)


# rigs/vcan.toml with the cell emulator on a bus of its own, vcan1, as rigs/slcan-ce-bus.toml has it over slcan.
TWO_BUSES = ['can.main.dbc=["../dbc/bms.dbc", "../dbc/vcu.dbc"]', 'can.ce.interface="socketcan"',
             'can.ce.channel="vcan1"', 'can.ce.dbc=["../dbc/cell_emulator.dbc"]', 'cell_emulator.bus="ce"']


def test_the_cell_emulator_on_a_socketcan_bus_of_its_own():
    """The setpoints go on vcan1 and reach the emulator in the boards' process; the BMS, which reads that
    emulator's outputs, trips on a cell forced over OV; no cell-emulator frame shows on the BMS's vcan0."""
    if not Path("/sys/class/net/vcan1").exists():
        pytest.skip("no vcan1 interface: `sudo ip link add dev vcan1 type vcan && sudo ip link set up vcan1` "
                    "(hil vcan-vm brings it up)")
    with Bench(load_rig(VCAN_RIG, TWO_BUSES)) as bench:
        try:
            assert bench.ce_bus is not bench.bus
            bench.power_up(timeout_s=10.0)
            bench.force_cell(4, bench.spec.protections["cell_ov"].high + 0.02)
            bench.bms.wait_state(BmsState.FAULT, 3.0)
            assert "cell_ov" in bench.bms.faults
            assert bench.ce_monitor.stats["CE_Status"].count > 0
            assert bench.monitor.counters["unknown_id"] == 0   # no CE frame on the BMS's bus
        finally:
            bench.make_safe()
