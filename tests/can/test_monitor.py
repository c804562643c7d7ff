"""The Monitor: latest values with timestamps, cycle statistics, absence, waits on both clocks."""
from __future__ import annotations

import threading
import time

import can
import pytest
from .conftest import ROOT, fresh_channel

from hil.can.dbc import encode
from hil.can.monitor import Monitor
from hil.errors import ConfigError, HilTimeout


def frame(db, name: str, **signals) -> can.Message:
    message = db.get_message_by_name(name)
    return can.Message(arbitration_id=message.frame_id, data=encode(message, signals), is_extended_id=False)


class ManualClock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_latest_value_of_every_signal_with_its_time(db):
    clock = ManualClock()
    monitor = Monitor(db, clock)
    clock.now_s = 1.25
    monitor.on_message_received(frame(db, "BMS_SOC", BMS_SOC=61.5, BMS_SOH=97.0))
    clock.now_s = 1.5
    monitor.on_message_received(frame(db, "BMS_CellVoltages", BMS_CellVoltages_Mux=1, BMS_Cell05_Voltage=3.712))
    assert monitor.get("BMS_SOC") == pytest.approx(61.5)
    assert monitor.value_time_s["BMS_SOH"] == 1.25
    assert monitor.get("BMS_Cell05_Voltage") == pytest.approx(3.712)
    assert monitor.value_time_s["BMS_Cell05_Voltage"] == 1.5
    assert "BMS_Cell01_Voltage" not in monitor.values  # mux group 0 never came
    assert monitor.snapshot(["BMS_SOC", "BMS_Cell01_Voltage"]) == {"BMS_SOC": pytest.approx(61.5),
                                                                  "BMS_Cell01_Voltage": None}


def test_value_updates_counts_the_frames_that_changed_values(db):
    """The bench reads the BMS's limits and contactors again only when this count moves: every frame that
    updates `values` must move it, and one that does not (an unknown ID, an error frame) need not."""
    monitor = Monitor(db, ManualClock())
    monitor.on_message_received(frame(db, "BMS_SOC", BMS_SOC=61.5, BMS_SOH=97.0))
    assert monitor.value_updates == 1
    monitor.on_message_received(can.Message(arbitration_id=0x7FF, data=bytes(8), is_extended_id=False))
    monitor.on_message_received(can.Message(is_error_frame=True))
    assert monitor.value_updates == 1
    monitor.on_message_received(frame(db, "BMS_SOC", BMS_SOC=40.0, BMS_SOH=97.0))
    assert monitor.value_updates == 2 and monitor.values["BMS_SOC"] == pytest.approx(40.0)


def test_cycle_statistics_mean_jitter_and_max_gap(db):
    clock = ManualClock()
    monitor = Monitor(db, clock)
    for t_s in (0.0, 0.020, 0.041, 0.060, 0.080, 0.130):
        clock.now_s = t_s
        monitor.on_message_received(frame(db, "BMS_Limits"))
    stats = monitor.stats["BMS_Limits"]
    gaps = [0.020, 0.021, 0.019, 0.020, 0.050]
    mean = sum(gaps) / 5
    assert stats.count == 6
    assert stats.mean_cycle_s == pytest.approx(mean)
    assert stats.jitter_s == pytest.approx((sum((g - mean) ** 2 for g in gaps) / 5) ** 0.5)
    assert stats.max_gap_s == pytest.approx(0.050)
    summary = monitor.summary()["messages"]["BMS_Limits"]
    assert summary["frames"] == 6 and summary["max_gap_ms"] == pytest.approx(50.0)
    assert summary["cycle_ms"] == 100.0  # from the DBC


def test_absence_after_k_cycles_says_how_long_and_the_cycle(db):
    clock = ManualClock()
    monitor = Monitor(db, clock)
    assert monitor.absence("BMS_Status") == "BMS_Status never received"
    monitor.on_message_received(frame(db, "BMS_Status"))
    clock.now_s = 0.060
    assert not monitor.is_absent("BMS_Status")                       # 3 cycles of 20 ms: still alive
    clock.now_s = 0.230
    assert monitor.is_absent("BMS_Status")
    assert monitor.absence("BMS_Status") == "BMS_Status stopped: last frame 230 ms ago (cycle 20 ms)"
    assert monitor.absence("BMS_Status", k_cycles=20) is None
    assert monitor.stopped() == ["BMS_Status stopped: last frame 230 ms ago (cycle 20 ms)"]
    assert monitor.age_s("BMS_Status") == pytest.approx(0.230)


def test_wait_for_on_the_virtual_clock_returns_the_matching_frame(mini):
    state = {"value": 1}
    mini.device.add("BMS_Status", provider=lambda: {"BMS_State": state["value"]}, cycle_s=0.02)
    mini.loop.run_for(0.1)
    state["value"] = 3
    sample = mini.monitor.wait_for("BMS_Status", {"BMS_State": "NORMAL"}, 1.0, run=mini.loop.run_until)
    assert sample.message == "BMS_Status" and sample.time_s == pytest.approx(0.1)
    assert sample.signals["BMS_State"] == 3
    ok = mini.monitor.wait_for("BMS_Status", lambda v: v["BMS_Status_Counter"] == 9, 1.0, run=mini.loop.run_until)
    assert ok.time_s == pytest.approx(0.18)


def test_wait_for_matches_numbers_within_half_a_resolution_step(mini):
    mini.device.add("BMS_PackData", {"BMS_PackVoltage": 57.604})  # 0.01 V per bit: sent as 57.60
    sample = mini.monitor.wait_for("BMS_PackData", {"BMS_PackVoltage": 57.6}, 0.1, run=mini.loop.run_until)
    assert sample.signals["BMS_PackVoltage"] == pytest.approx(57.6)


def test_wait_for_timeout_shows_the_last_values_seen(mini):
    mini.device.add("BMS_Status", {"BMS_State": 1, "BMS_FaultBits": 4}, cycle_s=0.02)
    with pytest.raises(HilTimeout) as caught:
        mini.monitor.wait_for("BMS_Status", {"BMS_State": 3}, 0.1, run=mini.loop.run_until)
    text = str(caught.value)
    assert "waiting for BMS_Status with BMS_State=3: 5 frame(s) came, none matched" in text
    assert "BMS_State=STANDBY (1) " in text and "BMS_FaultBits=4" in text  # a value table's name, as asked


def test_wait_for_timeout_names_the_value_table_entries_seen(mini):
    mini.device.add("BMS_Status", {"BMS_State": 0}, cycle_s=0.02)
    with pytest.raises(HilTimeout, match=r"with BMS_State=FAULT: .* BMS_State=INIT \(0\)"):
        mini.monitor.wait_for("BMS_Status", {"BMS_State": "FAULT"}, 0.1, run=mini.loop.run_until)


def test_wait_for_timeout_when_the_message_never_comes(mini):
    with pytest.raises(HilTimeout, match="no BMS_Status frame came while waiting; BMS_Status never received"):
        mini.monitor.wait_for("BMS_Status", {"BMS_State": 3}, 0.05, run=mini.loop.run_until)


def test_wait_for_without_run_waits_on_frames_from_a_notifier_thread(db):
    channel = fresh_channel()
    with can.Bus(interface="virtual", channel=channel) as rx, can.Bus(interface="virtual", channel=channel) as tx:
        monitor = Monitor(db, time.monotonic)
        notifier = can.Notifier(rx, [monitor], timeout=0.01)
        try:
            sender = threading.Timer(0.05, lambda: [tx.send(frame(db, "BMS_Status", BMS_State=s)) for s in (2, 3)])
            sender.start()
            sample = monitor.wait_for("BMS_Status", {"BMS_State": 3}, timeout_s=5.0)
            sender.join()
            assert sample.signals["BMS_State"] == 3
            with pytest.raises(HilTimeout, match="not within 0.05 s: waiting for BMS_Status with BMS_State=4: "):
                monitor.wait_for("BMS_Status", {"BMS_State": 4}, timeout_s=0.05)
        finally:
            notifier.stop()


def test_wait_for_reraises_a_predicate_error(mini):
    mini.device.add("BMS_SOC", {"BMS_SOC": 50.0})
    with pytest.raises(KeyError, match="BMS_Nope"):
        mini.monitor.wait_for("BMS_SOC", lambda v: v["BMS_Nope"] > 1, 0.5, run=mini.loop.run_until)


def test_wait_for_refuses_names_it_cannot_match(mini):
    wait = mini.monitor.wait_for
    with pytest.raises(ConfigError, match="message 'BMS_Stat' is not in the loaded DBC files \\(did you mean 'BMS_Status'"):
        wait("BMS_Stat", {"BMS_State": 3}, 0.1)
    with pytest.raises(ConfigError, match="signal 'BMS_Stat' is not in the loaded DBC files \\(did you mean 'BMS_State'"):
        wait("BMS_Status", {"BMS_Stat": 3}, 0.1)
    with pytest.raises(ConfigError, match="signal 'BMS_SOC' is in message 'BMS_SOC', not in 'BMS_Status'"):
        wait("BMS_Status", {"BMS_SOC": 3}, 0.1)
    with pytest.raises(ConfigError, match="'NORMALL' is not in its value table \\(did you mean 'NORMAL'\\?\\)"):
        wait("BMS_Status", {"BMS_State": "NORMALL"}, 0.1)



def test_reset_stats_starts_a_fresh_window_but_keeps_counting_counter_jumps():
    from hil.can import e2e
    from hil.can.dbc import load_dbc
    db = load_dbc(ROOT / "dbc" / "bms.dbc")
    status = db.get_message_by_name("BMS_Status")
    now = [0.0]
    monitor = Monitor(db, lambda: now[0])

    def frame(counter: int, t_s: float) -> None:
        now[0] = t_s
        data = e2e.seal(bytearray(encode(status, {"BMS_Status_Counter": counter})))
        monitor.on_message_received(can.Message(arbitration_id=status.frame_id, data=data, is_extended_id=False))

    frame(0, 0.0)
    frame(1, 0.5)          # a start-up gap
    monitor.reset_stats()
    frame(3, 0.52)         # counter jumps across the reset (2 is missing)
    frame(4, 0.54)
    stats = monitor.stats["BMS_Status"]
    assert stats.count == 2 and stats.max_gap_s == pytest.approx(0.02) and stats.bad_counter == 1
