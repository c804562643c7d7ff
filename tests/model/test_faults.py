"""Each fault has its visible effect; measurement faults leave the true state alone."""
import numpy as np
import pytest

from hil.model.pack import Pack


def _run(pack, current_a=5.0, seconds=10.0, dt_s=0.01):
    for _ in range(round(seconds / dt_s)):
        pack.step(current_a, dt_s)


def _twins(cell, **kwargs):
    return Pack(cell, 4, soc0=0.6, **kwargs), Pack(cell, 4, soc0=0.6, **kwargs)


def test_measured_arrays_follow_the_truth_without_faults(m50):
    pack = Pack(m50, 4, soc0=0.6)
    measured_v, measured_t = pack.measured_cell_voltage_v, pack.measured_temperature_c
    _run(pack)
    assert measured_v is pack.measured_cell_voltage_v and measured_t is pack.measured_temperature_c
    np.testing.assert_array_equal(measured_v, pack.cell_voltage_v)
    np.testing.assert_array_equal(measured_t, pack.temperature_c)


@pytest.mark.parametrize("name, values", [
    ("voltage_offset", {"offset_v": 0.05}),
    ("voltage_noise", {"rms_v": 0.01}),
    ("open_sense_wire", {}),
    ("thermistor_open", {}),
    ("thermistor_short", {}),
])
def test_measurement_faults_leave_the_cells_alone(m50, name, values):
    healthy, faulty = _twins(m50)
    faulty.faults.set(name, block=1, **values)
    _run(healthy)
    _run(faulty)
    np.testing.assert_array_equal(faulty.cell_voltage_v, healthy.cell_voltage_v)
    np.testing.assert_array_equal(faulty.soc, healthy.soc)
    np.testing.assert_array_equal(faulty.temperature_c, healthy.temperature_c)
    # Rounding in the node sums of an open-wire reading stays far below a microvolt.
    changed = ~np.isclose(faulty.measured_cell_voltage_v, healthy.measured_cell_voltage_v, rtol=0, atol=1e-9) | \
        (faulty.measured_temperature_c != healthy.measured_temperature_c)
    assert changed[1]
    assert not changed[[0, 3]].any()


def test_open_sense_wire_reads_zero_below_and_the_sum_above(m50):
    pack = Pack(m50, 4, soc0=0.6)
    pack.faults.set("open_sense_wire", block=1)
    _run(pack)
    true_v, seen_v = pack.cell_voltage_v, pack.measured_cell_voltage_v
    assert seen_v[1] == 0.0
    assert seen_v[2] == pytest.approx(true_v[1] + true_v[2])
    assert seen_v.sum() == pytest.approx(true_v.sum())


def test_thermistor_open_reads_cold_and_short_reads_hot(m50):
    pack = Pack(m50, 4, soc0=0.6)
    pack.faults.set("thermistor_open", block=0)
    pack.faults.set("thermistor_short", block=2)
    assert pack.measured_temperature_c[0] == -40.0
    assert pack.measured_temperature_c[2] == 125.0
    pack.faults.clear()
    np.testing.assert_array_equal(pack.measured_temperature_c, pack.temperature_c)


def test_noise_is_seeded(m50):
    first, second = _twins(m50, seed=7)
    for pack in (first, second):
        pack.faults.set("voltage_noise", block=0, rms_v=0.002)
        _run(pack, seconds=1.0)
    assert first.measured_cell_voltage_v[0] == second.measured_cell_voltage_v[0]
    assert first.measured_cell_voltage_v[0] != first.cell_voltage_v[0]


def test_internal_short_drains_and_heats_its_block(m50):
    healthy, faulty = _twins(m50)
    faulty.faults.set("internal_short", block=3, r_ohm=1.0)
    _run(healthy, current_a=0.0, seconds=60.0, dt_s=0.1)
    _run(faulty, current_a=0.0, seconds=60.0, dt_s=0.1)
    # About 3.8 A through 1 ohm for a minute drains about 0.063 Ah of 5 Ah.
    assert healthy.soc[3] - faulty.soc[3] == pytest.approx(3.8 * 60 / 3600 / 5.0, rel=0.05)
    assert faulty.temperature_c[3] > healthy.temperature_c[3] + 1.0
    np.testing.assert_array_equal(faulty.soc[:3], healthy.soc[:3])


def test_high_resistance_sags_more_under_load(m50):
    pack = Pack(m50, 4, soc0=0.6)
    pack.faults.set("high_resistance", block=2, factor=3.0)
    _run(pack, seconds=1.0)
    assert pack.cell_voltage_v[2] < pack.cell_voltage_v[1] - 0.05


def test_runaway_heating_heats_only_its_cell(m50):
    pack = Pack(m50, 4, soc0=0.6)
    pack.faults.set("runaway_heating", block=0, power_w=20.0)
    _run(pack, current_a=0.0, seconds=30.0, dt_s=0.1)
    # 20 W into 65 J/K is about 0.3 K/s.
    assert pack.temperature_c[0] > 25.0 + 5.0
    assert pack.temperature_c[1] < 25.0 + 1.0
    pack.faults.clear("runaway_heating")
    assert pack.faults.active == []


def test_bad_fault_requests_are_refused(m50):
    pack = Pack(m50, 4)
    with pytest.raises(ValueError, match="unknown fault"):
        pack.faults.set("melted", block=0)
    with pytest.raises(ValueError, match="block 4"):
        pack.faults.set("voltage_offset", block=4, offset_v=0.1)
    with pytest.raises(ValueError, match="r_ohm"):
        pack.faults.set("internal_short", block=0, r_ohm=-1.0)
    with pytest.raises(ValueError, match="missing value"):
        pack.faults.set("high_resistance", block=0)
