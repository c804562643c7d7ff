"""Rest-bus simulation: frames on the cycle grid of a virtual clock, live signal changes, stop and restart,
skip-ahead when late, alive counters and CRCs that the Monitor accepts (or flags, when they are wrong), and
multiplexed cycles spread over ticks."""
from __future__ import annotations

import math

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


def test_injected_faults_are_what_a_receiver_must_catch_and_end_when_cleared(mini):
    """A frozen counter repeats the last sound frame's counter, CRC sealed to match (a repetition); an inverted CRC
    fails every frame's check (a corruption). Cleared, the counter carries on from the last sound one. A message
    without what a fault breaks, or a fault of another name, is refused."""
    mini.device.add("BMS_Status", {"BMS_State": 1}, cycle_s=0.02)
    mini.device.add("BMS_PackData", {"BMS_PackVoltage": 50.0}, cycle_s=0.02)
    mini.loop.run_for(0.1)
    last_counter = mini.monitor.values["BMS_Status_Counter"]
    mini.device.inject("BMS_Status", "frozen_counter")
    mini.device.inject("BMS_PackData", "bad_crc")
    mini.loop.run_for(0.1)
    assert mini.monitor.values["BMS_Status_Counter"] == last_counter
    stats = mini.monitor.stats
    assert (stats["BMS_Status"].bad_counter, stats["BMS_Status"].bad_crc) == (5, 0)
    assert (stats["BMS_PackData"].bad_counter, stats["BMS_PackData"].bad_crc) == (0, 5)
    mini.device.inject("BMS_Status", None)
    mini.device.inject("BMS_PackData", None)
    mini.loop.run_for(0.1)
    assert (stats["BMS_Status"].bad_counter, stats["BMS_PackData"].bad_crc) == (5, 5), "sound again"
    assert mini.monitor.values["BMS_Status_Counter"] == (last_counter + 5) % 16
    mini.device.add("BMS_Limits", {}, cycle_s=0.1)
    assert mini.device.supports("BMS_Status", "bad_crc") and not mini.device.supports("BMS_Limits", "bad_crc")
    with pytest.raises(ConfigError, match="'BMS_Limits' has no alive counter: nothing for frozen_counter to break"):
        mini.device.inject("BMS_Limits", "frozen_counter")
    with pytest.raises(ConfigError, match="fault 'bit_flip': expected one of frozen_counter, bad_crc"):
        mini.device.inject("BMS_Status", "bit_flip")


def test_a_lost_frame_leaves_out_the_next_frame_only_and_spends_its_counter(recorded, db):
    """What a receiver sees of a frame lost on its way: a gap of two cycles and the alive counter two on, then
    every frame again; the sender's last-sent time is the last frame that went out."""
    sender, bus, now = recorded
    sender.add("BMS_Status", {"BMS_State": 1}, cycle_s=0.02)
    for k in range(11):
        now["s"] = k * 0.01
        if k == 5:
            sender.inject("BMS_Status", "lost_frame")
            assert sender.last_sent_s("BMS_Status") == pytest.approx(0.04)
        sender.tick(now["s"])
        if k == 6:
            assert sender.last_sent_s("BMS_Status") == pytest.approx(0.04), "the lost frame was never sent"
    assert [t for t, _ in bus.frames] == pytest.approx([0.0, 0.02, 0.04, 0.08, 0.1])
    counters = [db.decode_message(msg.arbitration_id, msg.data)["BMS_Status_Counter"] for _, msg in bus.frames]
    assert counters == [0, 1, 2, 4, 5]
    assert sender.supports("BMS_Status", "lost_frame")


def test_a_burst_of_lost_frames_leaves_out_that_many_in_a_row(recorded, db):
    """`frames=3`: three frames in a row never sent, their counters spent; the fourth comes with its counter four
    on. A count that is no count is refused."""
    sender, bus, now = recorded
    sender.add("BMS_Status", {"BMS_State": 1}, cycle_s=0.02)
    for k in range(8):
        now["s"] = k * 0.02
        if k == 2:
            sender.inject("BMS_Status", "lost_frame", frames=3)
        sender.tick(now["s"])
    assert [t for t, _ in bus.frames] == pytest.approx([0.0, 0.02, 0.1, 0.12, 0.14])
    counters = [db.decode_message(msg.arbitration_id, msg.data)["BMS_Status_Counter"] for _, msg in bus.frames]
    assert counters == [0, 1, 5, 6, 7]
    for frames in (0, 2.5, True):
        with pytest.raises(ConfigError, match=r"lost_frame frames=.*: expected a count of frames, at least 1"):
            sender.inject("BMS_Status", "lost_frame", frames=frames)


def test_a_multiplexed_provider_sends_every_group_each_cycle(mini):
    groups = [{"BMS_CellVoltages_Mux": m, **{f"BMS_Cell{4 * m + c + 1:02d}_Voltage": 3.0 + m / 10 + c / 1000
                                             for c in range(4)}} for m in range(4)]
    mini.device.add("BMS_CellVoltages", provider=lambda: [dict(g) for g in groups])
    mini.loop.run_for(0.15)
    assert mini.monitor.stats["BMS_CellVoltages"].count == 8
    assert mini.monitor.values["BMS_Cell16_Voltage"] == pytest.approx(3.303)


def test_bad_names_are_refused_with_close_matches(recorded):
    sender, _, _ = recorded
    with pytest.raises(ConfigError, match="did you mean 'VCU_Heartbeat'"):
        sender.add("VCU_Hartbeat")
    sender.add("VCU_Request")
    with pytest.raises(ConfigError, match="no signal 'VCU_ModeRequst' \\(did you mean 'VCU_ModeRequest'"):
        sender.set("VCU_Request", VCU_ModeRequst=1)
    with pytest.raises(ConfigError, match="not scheduled; scheduled: \\['VCU_Request'\\]"):
        sender.stop("VCU_Heartbeat")
    with pytest.raises(ConfigError, match="cycle_s = 0"):
        sender.add("VCU_Heartbeat", cycle_s=0)


def _cell_groups(n_groups: int) -> list[dict]:
    return [{"BMS_CellVoltages_Mux": m, f"BMS_Cell{4 * m + 1:02d}_Voltage": 3.0 + m / 100} for m in range(n_groups)]


def _mux_times(db, frames) -> dict[int, list[float]]:
    """Send times of each BMS_CellVoltages group."""
    message = db.get_message_by_name("BMS_CellVoltages")
    times: dict[int, list[float]] = {}
    for t_s, msg in frames:
        times.setdefault(message.decode(msg.data)["BMS_CellVoltages_Mux"], []).append(t_s)
    return times


def test_a_multiplexed_cycle_goes_out_one_frame_per_millisecond_from_one_provider_call(recorded, db):
    sender, bus, now = recorded
    calls = []
    sender.add("BMS_CellVoltages", provider=lambda: calls.append(now["s"]) or _cell_groups(24))  # 100 ms
    tick_every(sender, now, 0.001, 0.25)
    assert calls == pytest.approx([0.0, 0.1, 0.2])
    times = _mux_times(db, bus.frames)
    # each group once per cycle, always at the same offset: its cycle time is the message's
    assert times == {m: pytest.approx([m * 0.001, 0.1 + m * 0.001, 0.2 + m * 0.001]) for m in range(24)}
    assert max(sum(1 for t, _ in bus.frames if t == t_s) for t_s, _ in bus.frames) == 1


def test_a_cycle_too_short_for_its_frames_spaces_them_closer(recorded, db):
    sender, bus, now = recorded
    sender.add("BMS_CellVoltages", provider=lambda: _cell_groups(24), cycle_s=0.01)
    tick_every(sender, now, 0.001, 0.03)
    times = _mux_times(db, bus.frames)
    for m in range(24):  # 24 frames in 10 ms: 0.4167 ms apart, so two or three per 1 ms tick
        assert times[m][:3] == pytest.approx([c * 0.01 + math.ceil(m * 0.01 / 24 / 0.001 - 1e-6) * 0.001
                                          for c in range(3)], abs=1e-9)


def test_frame_spacing_zero_sends_a_whole_cycle_on_one_tick(db):
    now = {"s": 0.0}
    bus = Recorder(lambda: now["s"])
    sender = PeriodicSender(bus, db, frame_spacing_s=0.0)
    sender.add("BMS_CellVoltages", provider=lambda: _cell_groups(24))
    tick_every(sender, now, 0.001, 0.15)
    assert sorted({t for t, _ in bus.frames}) == pytest.approx([0.0, 0.1])
    assert len(bus.frames) == 48


def test_late_ticks_send_the_frames_due_and_a_new_cycle_first_finishes_the_last(recorded, db):
    sender, bus, now = recorded
    sender.add("BMS_CellVoltages", provider=lambda: _cell_groups(4), cycle_s=0.01)
    for t_s in (0.0, 0.0025, 0.011):  # late: groups 1 and 2 at 2.5 ms; group 3 only when cycle 2 is due
        now["s"] = t_s
        sender.tick(t_s)
    mux = [db.get_message_by_name("BMS_CellVoltages").decode(m.data)["BMS_CellVoltages_Mux"] for _, m in bus.frames]
    assert [t for t, _ in bus.frames] == [0.0, 0.0025, 0.0025, 0.011, 0.011]
    assert mux == [0, 1, 2, 3, 0]


def test_every_frame_of_a_cycle_carries_its_alive_counter_and_stop_drops_the_rest(recorded, db):
    sender, bus, now = recorded
    status = db.get_message_by_name("BMS_Status")
    sender.add("BMS_Status", provider=lambda: [{"BMS_State": 1}, {"BMS_State": 2}, {"BMS_State": 3}],
               cycle_s=0.02)
    tick_every(sender, now, 0.001, 0.06)
    counters = [status.decode(m.data)["BMS_Status_Counter"] for _, m in bus.frames]
    assert counters == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert all(crc8_j1850(bytes(m.data[:7])) == m.data[7] for _, m in bus.frames)
    sender.stop("BMS_Status")
    for k in range(61, 100):
        now["s"] = k * 0.001
        sender.tick(now["s"])
    assert len(bus.frames) == 10  # the 60 ms cycle's first frame only
