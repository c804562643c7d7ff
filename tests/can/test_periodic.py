"""Rest-bus simulation: frames on the cycle grid of a virtual clock, live signal changes, stop and restart,
skip-ahead when late, and alive counters and CRCs that the Monitor accepts (or flags, when they are wrong)."""
from __future__ import annotations

import pytest

from hil.can.e2e import crc8_j1850
from hil.can.periodic import PeriodicSender
from hil.errors import ConfigError


class Recorder:
    """Stands in for a bus: keeps (bench time, message) of every frame sent."""

    def __init__(self, clock):
        self.clock = clock
        self.frames = []

    def send(self, msg):
        self.frames.append((self.clock(), msg))


@pytest.fixture
def recorded(db):
    now = {"s": 0.0}
    bus = Recorder(lambda: now["s"])
    return PeriodicSender(bus, db), bus, now


def tick_every(sender, now, step_s: float, until_s: float) -> None:
    k = 0
    while k * step_s <= until_s + 1e-12:
        now["s"] = k * step_s
        sender.tick(now["s"])
        k += 1


def test_frames_go_out_exactly_on_the_cycle_grid_of_a_virtual_clock(recorded):
    sender, bus, now = recorded
    sender.add("VCU_Heartbeat")                   # 100 ms from the DBC
    sender.add("BMS_Status", cycle_s=0.02)
    tick_every(sender, now, 0.001, 0.5)
    times = {name: [t for t, m in bus.frames if m.arbitration_id == frame_id]
             for name, frame_id in (("VCU_Heartbeat", 0x200), ("BMS_Status", 0x100))}
    assert times["VCU_Heartbeat"] == pytest.approx([0.1 * k for k in range(6)], abs=1e-12)
    assert times["BMS_Status"] == pytest.approx([0.02 * k for k in range(26)], abs=1e-12)


def test_a_late_tick_sends_once_and_skips_ahead_on_the_grid(recorded):
    sender, bus, now = recorded
    sender.add("BMS_Status", cycle_s=0.02)
    for t_s in (0.0, 0.02, 0.095, 0.1, 0.11, 0.12):
        now["s"] = t_s
        sender.tick(t_s)
    assert [t for t, _ in bus.frames] == [0.0, 0.02, 0.095, 0.1, 0.12]
    assert sender.skipped_cycles("BMS_Status") == 2  # 0.04 and 0.06 dropped, 0.08 sent late at 0.095


def test_signals_change_while_the_bus_runs(mini):
    mini.sender.add("VCU_Request", {"VCU_ModeRequest": 0})
    mini.loop.run_for(0.25)
    assert mini.device_monitor.values["VCU_ModeRequest"] == 0
    mini.sender.set("VCU_Request", VCU_ModeRequest=1)
    sample = mini.device_monitor.wait_for("VCU_Request", {"VCU_ModeRequest": 1}, 0.2, run=mini.loop.run_until)
    assert sample.time_s == pytest.approx(0.3)  # the next frame on the 100 ms grid carries it


def test_a_message_stops_and_restarts_with_its_counter_carrying_on(mini):
    mini.device.add("BMS_Status", {"BMS_State": 3}, cycle_s=0.02)
    mini.loop.run_for(0.5)
    mini.device.stop("BMS_Status")
    assert not mini.device.is_running("BMS_Status")
    last_s = mini.device.last_sent_s("BMS_Status")
    mini.loop.run_for(0.25)
    assert mini.device.last_sent_s("BMS_Status") == last_s
    assert mini.monitor.absence("BMS_Status") == "BMS_Status stopped: last frame 269 ms ago (cycle 20 ms)"
    mini.device.start("BMS_Status", mini.loop.t_s)
    restart_s = mini.loop.t_s
    mini.loop.run_for(0.1)
    assert mini.monitor.absence("BMS_Status") is None
    assert mini.device.last_sent_s("BMS_Status") == pytest.approx(restart_s + 0.08)
    stats = mini.monitor.stats["BMS_Status"]
    assert (stats.bad_counter, stats.bad_crc) == (0, 0)  # the alive counter resumed where it stopped
    assert stats.max_gap_s == pytest.approx(0.27)  # 0.48 s to 0.75 s


def test_restart_without_a_time_sends_at_the_next_tick(recorded):
    sender, bus, now = recorded
    sender.add("BMS_Status", cycle_s=0.02)
    tick_every(sender, now, 0.001, 0.02)
    sender.stop("BMS_Status")
    sender.start("BMS_Status")
    for t_s in (0.033, 0.04, 0.053):
        now["s"] = t_s
        sender.tick(t_s)
    assert [t for t, _ in bus.frames] == [0.0, 0.02, 0.033, 0.053]  # a new grid from the restart
    assert sender.skipped_cycles("BMS_Status") == 0  # the pause was on purpose, not lateness


def test_counters_roll_over_and_crcs_are_valid_for_the_monitor(mini):
    mini.device.add("BMS_Status", provider=lambda: {"BMS_State": 3, "BMS_FaultBits": int(mini.loop.t_s * 100)},
                    cycle_s=0.02)
    mini.device.add("BMS_PackData", {"BMS_PackVoltage": 57.6, "BMS_PackCurrent": -12.5})
    mini.loop.run_for(1.0)
    for name in ("BMS_Status", "BMS_PackData"):
        stats = mini.monitor.stats[name]
        assert stats.count == 50  # 1 s at 20 ms: the 4-bit counter wrapped three times
        assert (stats.bad_counter, stats.bad_crc) == (0, 0)
    assert mini.monitor.values["BMS_PackCurrent"] == pytest.approx(-12.5)
    assert mini.monitor.problems() == []


def test_the_monitor_flags_a_stuck_counter_and_a_bad_crc(mini):
    mini.device.add("BMS_Status", {"BMS_State": 1}, cycle_s=0.02)
    mini.device.add("BMS_PackData", {"BMS_PackVoltage": 50.0})
    mini.loop.run_for(0.2)
    mini.device.reset_counter("BMS_Status")                                       # counter jumps back to 0
    mini.device.set_crc_source("BMS_PackData", lambda payload: crc8_j1850(payload[:7]) ^ 1)
    mini.loop.run_for(0.1)
    assert mini.monitor.stats["BMS_Status"].bad_counter == 1
    assert mini.monitor.stats["BMS_PackData"].bad_crc == 5
    assert mini.monitor.problems() == ["BMS_Status: 1 alive-counter error(s)", "BMS_PackData: 5 CRC error(s)"]


def test_a_multiplexed_provider_sends_every_group_each_cycle(mini):
    groups = [{"BMS_CellVoltages_Mux": m, **{f"BMS_Cell{4 * m + c + 1:02d}_Voltage": 3.0 + m / 10 + c / 1000
                                             for c in range(4)}} for m in range(4)]
    mini.device.add("BMS_CellVoltages", provider=lambda: [dict(g) for g in groups])
    mini.loop.run_for(0.15)
    assert mini.monitor.stats["BMS_CellVoltages"].count == 8
    assert mini.monitor.values["BMS_Cell16_Voltage"] == pytest.approx(3.303)


def test_bad_names_are_refused_with_close_matches(recorded):
    sender, _, _ = recorded
    with pytest.raises(ConfigError, match="did you mean VCU_Heartbeat"):
        sender.add("VCU_Hartbeat")
    sender.add("VCU_Request")
    with pytest.raises(ConfigError, match="no signal 'VCU_ModeRequst'; did you mean VCU_ModeRequest"):
        sender.set("VCU_Request", VCU_ModeRequst=1)
    with pytest.raises(ConfigError, match="not scheduled; scheduled: \\['VCU_Request'\\]"):
        sender.stop("VCU_Heartbeat")
    with pytest.raises(ConfigError, match="cycle_s = 0"):
        sender.add("VCU_Heartbeat", cycle_s=0)
