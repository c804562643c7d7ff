"""The BMS's CAN interface: cycle times, alive counters, CRCs, values that match the pack, bus load."""
import can
import pytest

from hil.can.dbc import load_dbcs
from hil.errors import HilError
from hil.rig import load_rig
from hil.spec import load_spec

# The reference BMS's periodic messages: what a rig that cannot be loaded is collected with (its `rig`
# fixture then fails the first test with the reason and stops the run).
REFERENCE_PERIODIC = ("BMS_Status", "BMS_PackData", "BMS_Limits", "BMS_SOC")


def pytest_generate_tests(metafunc):
    """One test per message the rig's spec gives a cycle time ([cycle_times]: the BMS's own names); the alive
    counter and CRC test, per such message whose DBC gives it a `<name>_Counter` or `<name>_CRC`."""
    if "message" in metafunc.fixturenames:
        messages = _spec_messages(metafunc.config)
        if metafunc.definition.name == "test_alive_counters_and_crcs_are_valid":
            messages = [name for name, signals in messages.items()
                        if signals is None or {f"{name}_Counter", f"{name}_CRC"} & signals]
        metafunc.parametrize("message", list(messages))


def _spec_messages(config) -> dict[str, set[str] | None]:
    """The spec's timed messages, each with its DBC signal names (None where the rig could not be loaded)."""
    try:
        rig = load_rig(config.getoption("rig"), config.getoption("hil_set"))
        db = load_dbcs(rig.dbc_paths(rig.data["dut"]["bus"]))
        messages = {message.name: message for message in db.messages}
        return {name: ({signal.name for signal in messages[name].signals} if name in messages else None)
                for name in load_spec(rig.spec_path).data["cycle_times"]}
    except HilError:
        return dict.fromkeys(REFERENCE_PERIODIC)


@pytest.fixture
def running(bench):
    bench.power_up()
    bench.set_load(8.0)
    bench.loop.run_for(0.5)
    bench.monitor.reset_stats()  # measure steady operation, not the start-up
    bench.loop.run_for(3.0)
    return bench


@pytest.mark.verifies("cycle_times.{message}")
def test_cycle_time_within_tolerance(running, spec, measure, message):
    expected = spec.value(f"cycle_times.{message}")
    stats = running.monitor.stats[message]
    tolerance_ms = expected["cycle_ms"] * expected["tolerance_pct"] / 100
    measure(f"{message}_mean_cycle", stats.mean_cycle_s * 1000, low=expected["cycle_ms"] - tolerance_ms,
            high=expected["cycle_ms"] + tolerance_ms, unit="ms")
    # A single late frame is allowed one extra cycle, never a silence.
    measure(f"{message}_max_gap", stats.max_gap_s * 1000, high=2 * expected["cycle_ms"], unit="ms")


@pytest.mark.verifies("cycle_times.{message}")
def test_alive_counters_and_crcs_are_valid(running, message):
    stats = running.monitor.stats[message]
    assert stats.count > 20
    assert stats.bad_counter == 0, f"{message}: {stats.bad_counter} counter jumps in {stats.count} frames"
    assert stats.bad_crc == 0, f"{message}: {stats.bad_crc} bad CRCs in {stats.count} frames"


@pytest.mark.verifies("accuracy")
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


@pytest.mark.verifies("cycle_times")
def test_bms_keeps_working_under_bus_load(bench, spec, measure):
    """Unknown traffic at several hundred frames per second must not disturb the BMS's own cycle."""
    bench.power_up()
    bench.monitor.reset_stats()  # the gaps under load, not the start-up's
    noise = can.Message(arbitration_id=0x7A0, data=bytes(8), is_extended_id=False)
    for _ in range(2000):  # 2 s, one unknown frame per ms
        bench.bus.send(noise)
        bench.loop.step()
    assert bench.bms.contactors_closed and not bench.bms.faults, bench.bms.describe()
    # the BMS's fastest timed message: the one a disturbed CAN stack delays first
    name, timing = min(spec.section("cycle_times").items(), key=lambda item: item[1]["cycle_ms"])
    measure(f"{name}_max_gap_under_load", bench.monitor.stats[name].max_gap_s * 1000, high=2 * timing["cycle_ms"],
            unit="ms")
