"""The BMS's CAN interface: cycle times, alive counters, CRCs, values that match the pack, bus load."""
import can
import pytest

from hil.spec import CYCLE_MESSAGES

PERIODIC = CYCLE_MESSAGES  # the periodic messages a spec gives cycle times for (hil.spec checks it has them)


@pytest.fixture
def running(bench):
    bench.power_up()
    bench.set_load(8.0)
    bench.loop.run_for(0.5)
    bench.monitor.reset_stats()  # measure steady operation, not the start-up
    bench.loop.run_for(3.0)
    return bench


@pytest.mark.parametrize("message", PERIODIC)
def test_cycle_time_within_tolerance(running, spec, measure, message):
    expected = spec.value(f"cycle_times.{message}")
    stats = running.monitor.stats[message]
    tolerance_ms = expected["cycle_ms"] * expected["tolerance_pct"] / 100
    measure(f"{message}_mean_cycle", stats.mean_cycle_s * 1000, low=expected["cycle_ms"] - tolerance_ms,
            high=expected["cycle_ms"] + tolerance_ms, unit="ms")
    # A single late frame is allowed one extra cycle, never a silence.
    measure(f"{message}_max_gap", stats.max_gap_s * 1000, high=2 * expected["cycle_ms"], unit="ms")


@pytest.mark.parametrize("message", ["BMS_Status", "BMS_PackData", "BMS_SOC"])
def test_alive_counters_and_crcs_are_valid(running, message):
    stats = running.monitor.stats[message]
    assert stats.count > 20
    assert stats.bad_counter == 0, f"{message}: {stats.bad_counter} counter jumps in {stats.count} frames"
    assert stats.bad_crc == 0, f"{message}: {stats.bad_crc} bad CRCs in {stats.count} frames"


def test_reported_pack_voltage_and_current_match_the_pack(running, spec, measure):
    """Under a steady load, within the spec's [accuracy] (tests/bms/test_measurement.py steps each one)."""
    accuracy = spec.section("accuracy")
    bms = running.bms
    if bms.pack_voltage_v is not None:
        # the reference BMS: 16 cells x (1.5 mV noise + 0.5 mV setpoint quantisation) plus one 20 ms frame of drift
        measure("pack_voltage_error", abs(bms.pack_voltage_v - running.pack.pack_voltage_v),
                high=accuracy["pack_voltage_v"], unit="V")
    flowing_a = running.pack_current_a
    measure("pack_current_error", abs(bms.pack_current_a - flowing_a),
            high=accuracy["pack_current_a"] + accuracy.get("pack_current_pct", 0.0) / 100 * abs(flowing_a), unit="A")


def test_bms_keeps_working_under_bus_load(bench, spec, measure):
    """Unknown traffic at several hundred frames per second must not disturb the BMS's own cycle."""
    bench.power_up()
    bench.monitor.reset_stats()  # the gaps under load, not the start-up's
    noise = can.Message(arbitration_id=0x7A0, data=bytes(8), is_extended_id=False)
    for _ in range(2000):  # 2 s, one unknown frame per ms
        bench.bus.send(noise)
        bench.loop.step()
    assert bench.bms.contactors_closed and not bench.bms.faults, bench.bms.describe()
    stats = bench.monitor.stats["BMS_Status"]
    measure("status_max_gap_under_load", stats.max_gap_s * 1000,
            high=2 * spec.value("cycle_times.BMS_Status.cycle_ms"), unit="ms")
