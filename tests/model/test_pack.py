"""Pack behaviour: in-place state, parallel current sharing, heating, variation, ageing, bad arguments."""
import numpy as np
import pytest

from hil.errors import ConfigError
from hil.model.pack import Pack
from hil.model.tables import Lookup


def test_block_arrays_are_updated_in_place(m50):
    pack = Pack(m50, 4, soc0=0.7, n_parallel=3)
    arrays = [pack.cell_voltage_v, pack.soc, pack.temperature_c, pack.measured_cell_voltage_v,
              pack.measured_temperature_c]
    before = [a.copy() for a in arrays]
    for _ in range(2000):
        pack.step(30.0, 0.001)
    for array, old in zip(arrays, before):
        assert array.shape == (4,)
        assert not np.array_equal(array, old)
    assert arrays[0] is pack.cell_voltage_v and arrays[1] is pack.soc and arrays[2] is pack.temperature_c
    assert pack.pack_current_a == 30.0
    assert pack.pack_voltage_v == pytest.approx(pack.cell_voltage_v.sum())


def test_parallel_cells_share_current_inversely_to_resistance(m50, constant):
    cell = constant(m50, rc_r_ohm=(1e-6,), rc_c_f=(1.0,))  # R0 only, so the split is plain Ohm's law
    pack = Pack(cell, 1, soc0=0.5, n_parallel=2)
    pack.faults.set("high_resistance", block=0, cell=1, factor=2.0)
    pack.step(9.0, 0.001)
    currents = pack.cell_current_a[0]
    assert currents.sum() == pytest.approx(9.0, abs=1e-9)
    assert currents[0] / currents[1] == pytest.approx(2.0, rel=1e-3)


def test_parallel_cells_at_different_soc_equalise_at_rest(m50):
    pack = Pack(m50, 1, soc0=[[0.3, 0.7]], n_parallel=2)
    for _ in range(3600):
        pack.step(0.0, 1.0)
    currents = pack.cell_current_a[0]
    assert currents.sum() == pytest.approx(0.0, abs=1e-9)
    spread = pack.cell_soc[0, 1] - pack.cell_soc[0, 0]
    assert 0 < spread < 0.3  # the fuller cell charged the emptier one
    assert pack.soc[0] == pytest.approx(0.5, abs=1e-9)  # charge is conserved


def test_higher_resistance_cell_heats_more(m50):
    pack = Pack(m50, 3, soc0=0.6)
    pack.faults.set("high_resistance", block=1, factor=2.0)
    for _ in range(120):
        pack.step(10.0, 1.0)
    assert pack.temperature_c[1] > pack.temperature_c[0] + 0.5
    assert pack.cell_heat_w[1, 0] > 1.5 * pack.cell_heat_w[0, 0]


def test_heat_flows_to_neighbours(m50):
    pack = Pack(m50, 5, soc0=0.6)
    pack.faults.set("runaway_heating", block=2, power_w=10.0)
    for _ in range(60):
        pack.step(0.0, 1.0)
    t = pack.temperature_c
    assert t[2] > t[1] > t[0] > 25.0
    assert t[1] == pytest.approx(t[3])


def test_variation_is_seeded(m50):
    options = dict(capacity_spread=0.02, resistance_spread=0.05, soc_spread=0.01)
    first, same, other = (Pack(m50, 8, soc0=0.5, seed=s, **options) for s in (1, 1, 2))
    for pack in (first, same, other):
        for _ in range(100):
            pack.step(5.0, 1.0)
    np.testing.assert_array_equal(first.cell_voltage_v, same.cell_voltage_v)
    np.testing.assert_array_equal(first.capacity_ah, same.capacity_ah)
    assert not np.array_equal(first.cell_voltage_v, other.cell_voltage_v)
    assert np.ptp(first.capacity_ah) > 0 and np.ptp(first.cell_r0_ohm) > 0 and np.ptp(first.soc) > 0


def test_ageing_fades_capacity_and_grows_resistance(m50):
    new, aged = Pack(m50, 1, soc0=0.8), Pack(m50, 1, soc0=0.8, soh_capacity=0.8, soh_resistance=1.5)
    assert aged.cell_r0_ohm[0, 0] == pytest.approx(1.5 * new.cell_r0_ohm[0, 0], rel=1e-12)
    for pack in (new, aged):
        for _ in range(600):
            pack.step(5.0, 1.0)
    assert (0.8 - aged.soc[0]) == pytest.approx((0.8 - new.soc[0]) / 0.8, rel=1e-12)
    assert aged.cell_voltage_v[0] < new.cell_voltage_v[0] - 0.03


@pytest.mark.parametrize("options, name", [
    (dict(n_series=0), "n_series"),
    (dict(n_parallel=1.5), "n_parallel"),
    (dict(soc0=1.2), "soc0"),
    (dict(capacity_spread=0.5), "capacity_spread"),
    (dict(soh_capacity=[[0.9, 0.8]]), "soh_capacity"),
    (dict(thermal_dt_s=0.0), "thermal_dt_s"),
])
def test_bad_pack_arguments_are_refused(m50, options, name):
    arguments = dict(n_series=2) | options
    with pytest.raises(ConfigError, match=name):
        Pack(m50, **arguments)


class _AlwaysSearching(Lookup):
    def __call__(self, x, out, moved=None):
        return super().__call__(x, out)


@pytest.mark.parametrize("n_parallel", [1, 2])
def test_the_lookups_skipped_search_changes_no_step(m50, n_parallel):
    """The pack tells its OCV lookup how far SOC can have moved, so the lookup skips its segment search
    while no cell can have left its segment: bit for bit what a search at every step gives, through
    segment crossings, the table's lower end and current reversals."""
    searched, skipping = (Pack(m50, 3, soc0=0.04, n_parallel=n_parallel, capacity_spread=0.05, seed=2)
                          for _ in range(2))
    searched._lookup = _AlwaysSearching(searched._ocv_table, searched._x.shape)
    searched._lookup(searched._x, np.empty_like(searched._x))  # the segments a parallel solve starts from
    currents_a = [60.0] * 200 + [-45.0] * 900 + [0.0] * 5 + [30.0] * 400 + [-90.0] * 600
    for current_a in currents_a:
        for pack in (searched, skipping):
            pack.step(current_a, 0.1)
        np.testing.assert_array_equal(skipping.cell_voltage_v, searched.cell_voltage_v)
        np.testing.assert_array_equal(skipping.cell_soc, searched.cell_soc)
