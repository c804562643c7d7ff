"""Cell files: every shipped file loads, and each kind of bad input fails at load naming file and key."""
from pathlib import Path

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.model.cell import load_cell
from hil.model.pack import Pack

CELLS = Path(__file__).resolve().parents[2] / "fixtures" / "cells"


MINIMAL = """
capacity_ah = 2.0
r0_ohm = 0.01
[ocv]
soc = [0.0, 0.5, 1.0]
volts = [3.0, 3.6, 4.2]
[[rc]]
r_ohm = 0.005
c_f = 1000.0
"""


@pytest.mark.parametrize("path", sorted(CELLS.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_cells_load_and_step(path):
    cell = load_cell(path)
    assert cell.v_min_v < cell.ocv(0.5) < cell.v_max_v
    pack = Pack(cell, 2, soc0=0.5)
    pack.step(cell.capacity_ah, 1.0)
    assert np.all(pack.cell_voltage_v < cell.ocv(0.5))


def test_minimal_file_loads_with_defaults(write_cell):
    cell = load_cell(write_cell(MINIMAL))
    assert cell.capacity_ah == 2.0
    assert cell.ocv(0.25) == pytest.approx(3.3)
    assert (cell.v_min_v, cell.v_max_v) == (3.0, 4.2)
    assert cell.resistance_factor(0.3, -20.0) == 1.0


@pytest.mark.parametrize("old, new, key", [
    ("capacity_ah = 2.0", "capacity_ah = -2.0", "capacity_ah"),
    ("capacity_ah = 2.0", "", "capacity_ah"),
    ("r0_ohm = 0.01", "r0_ohm = 'low'", "r0_ohm"),
    ("volts = [3.0, 3.6, 4.2]", "volts = [3.0, 4.3, 4.2]", "ocv.volts"),
    ("soc = [0.0, 0.5, 1.0]", "soc = [0.0, 0.5, 1.2]", "ocv.soc"),
    ("soc = [0.0, 0.5, 1.0]", "soc = [0.0, 0.7, 0.5]", "ocv.soc"),
    ("volts = [3.0, 3.6, 4.2]", "volts = [3.0, 4.2]", "ocv.volts"),
    ("c_f = 1000.0", "", "c_f"),
    ("r0_ohm = 0.01", "r0_ohm = 0.01\ncapacity_Ah = 2.0", "capacity_Ah"),
])
def test_bad_files_fail_naming_file_and_key(write_cell, old, new, key):
    path = write_cell(MINIMAL.replace(old, new))
    with pytest.raises(ConfigError) as error:
        load_cell(path)
    assert str(path) in str(error.value)
    assert key in str(error.value)


@pytest.mark.parametrize("extra, key", [
    ("[resistance]\nsoc = [0.0, 1.0]\nfactor = [1.0, -1.0]", "resistance.factor"),
    ("[resistance]\nactivation_energy_j_per_mol = -5.0", "activation_energy_j_per_mol"),
    ("[hysteresis]\nvolts = 0.01", "rate"),
    ("[thermal]\nheat_capacity_j_per_k = 0.0\nh_ambient_w_per_k = 0.1", "heat_capacity_j_per_k"),
])
def test_bad_optional_tables_fail_naming_the_key(write_cell, extra, key):
    path = write_cell(MINIMAL + extra)
    with pytest.raises(ConfigError, match=key):
        load_cell(path)


def test_entropic_column_must_match_the_soc_column(write_cell):
    path = write_cell(MINIMAL.replace("volts = [3.0, 3.6, 4.2]",
                                                "volts = [3.0, 3.6, 4.2]\ndv_dt_v_per_k = [0.0, 0.0]"))
    with pytest.raises(ConfigError, match="ocv.dv_dt_v_per_k"):
        load_cell(path)


def test_missing_file_and_bad_syntax_name_the_file(tmp_path, write_cell):
    with pytest.raises(ConfigError, match="not found"):
        load_cell(tmp_path / "nope.toml")
    path = write_cell("capacity_ah = ")
    with pytest.raises(ConfigError, match="TOML syntax"):
        load_cell(path)
    path = write_cell(MINIMAL.replace("[[rc]]\nr_ohm = 0.005\nc_f = 1000.0", ""))
    with pytest.raises(ConfigError, match="'rc'"):
        load_cell(path)


PLAUSIBLE = ", the plausible range for one cell"


@pytest.mark.parametrize("old, new, problem, hint", [
    # A wrong unit fails with the range and the unit it was likely written in.
    ("capacity_ah = 2.0", "capacity_ah = 5000", ": key 'capacity_ah' = 5000, outside 0.01..2000 Ah",
     " (in mAh? 5000 mAh is 5 Ah)"),
    ("r0_ohm = 0.01", "r0_ohm = 23.3", ": key 'r0_ohm' = 23.3, outside 1e-05..1 ohm",
     " (in mOhm? 23.3 mOhm is 0.0233 ohm)"),
    ("volts = [3.0, 3.6, 4.2]", "volts = [3000, 3600, 4200]", ": key 'ocv.volts' has 3000, outside 0.5..5.5 V",
     " (in mV? 3000 mV is 3 V)"),
    ("r_ohm = 0.005", "r_ohm = 5", " [[rc]] #1: key 'rc.r_ohm' = 5, outside 1e-05..1 ohm",
     " (in mOhm? 5 mOhm is 0.005 ohm)"),
    ("r0_ohm = 0.01", "r0_ohm = 0.01\nv_max_v = 4200", ": key 'v_max_v' = 4200, outside 0.5..5.5 V",
     " (in mV? 4200 mV is 4.2 V)"),
    ("volts = [3.0, 3.6, 4.2]", "volts = [3.0, 3.6, 4.2]\nreference_c = 298.15",
     ": key 'ocv.reference_c' = 298.15, outside -60..100 degC", " (in K? 298.15 K is 25 degC)"),
    ("volts = [3.0, 3.6, 4.2]", "volts = [3.0, 3.6, 4.2]\ndv_dt_v_per_k = [-0.3, 0.0, 0.1]",
     ": key 'ocv.dv_dt_v_per_k' has -0.3, outside -0.005..0.005 V/K", " (in mV/K? -0.3 mV/K is -0.0003 V/K)"),
    # Out of range with no likely unit: the range alone.
    ("capacity_ah = 2.0", "capacity_ah = 0.0", ": key 'capacity_ah' = 0, outside 0.01..2000 Ah", ""),
    ("r0_ohm = 0.01", "r0_ohm = 5000.0", ": key 'r0_ohm' = 5000, outside 1e-05..1 ohm", ""),
])
def test_implausible_values_fail_naming_key_range_and_likely_unit(write_cell, old, new, problem, hint):
    path = write_cell(MINIMAL.replace(old, new))
    with pytest.raises(ConfigError) as error:
        load_cell(path)
    assert str(error.value) == f"{path}{problem}{PLAUSIBLE}{hint}"


@pytest.mark.parametrize("extra, problem, hint", [
    ("[thermal]\nheat_capacity_j_per_k = 1e-9\nh_ambient_w_per_k = 0.05",
     "key 'thermal.heat_capacity_j_per_k' = 1e-09, outside 0.5..100000 J/K", ""),
    ("[thermal]\nheat_capacity_j_per_k = 0.065\nh_ambient_w_per_k = 0.05",
     "key 'thermal.heat_capacity_j_per_k' = 0.065, outside 0.5..100000 J/K", " (in kJ/K? 0.065 kJ/K is 65 J/K)"),
    ("[thermal]\nheat_capacity_j_per_k = 65.0\nh_ambient_w_per_k = 500.0",
     "key 'thermal.h_ambient_w_per_k' = 500, outside 0..100 W/K", ""),
    ("[thermal]\nheat_capacity_j_per_k = 65.0\nh_ambient_w_per_k = 0.05\nh_neighbour_w_per_k = -1.0",
     "key 'thermal.h_neighbour_w_per_k' = -1, outside 0..100 W/K", ""),
    ("[hysteresis]\nvolts = 10\nrate = 60.0", "key 'hysteresis.volts' = 10, outside 0..0.5 V",
     " (in mV? 10 mV is 0.01 V)"),
    ("[resistance]\nactivation_energy_j_per_mol = 2e6",
     "key 'resistance.activation_energy_j_per_mol' = 2e+06, outside 0..200000 J/mol", ""),
    ("[resistance]\nreference_c = 298.15", "key 'resistance.reference_c' = 298.15, outside -60..100 degC",
     " (in K? 298.15 K is 25 degC)"),
])
def test_implausible_optional_values_fail_naming_key_and_range(write_cell, extra, problem, hint):
    path = write_cell(MINIMAL + extra)
    with pytest.raises(ConfigError) as error:
        load_cell(path)
    assert str(error.value) == f"{path}: {problem}{PLAUSIBLE}{hint}"


def test_a_capacity_in_mah_within_the_ah_range_fails_against_the_heat_capacity(write_cell):
    """1500 (mAh) is a plausible number of Ah for a huge cell, but not for one of 42 J/K (about 42 g)."""
    path = write_cell(MINIMAL.replace("capacity_ah = 2.0", "capacity_ah = 1500")
                      + "[thermal]\nheat_capacity_j_per_k = 42.0\nh_ambient_w_per_k = 0.2")
    with pytest.raises(ConfigError) as error:
        load_cell(path)
    assert str(error.value).startswith(f"{path}: key 'capacity_ah' = 1500 at a mean OCV of 3.60 V in a cell of "
                                       "at most 60 g (from 'thermal.heat_capacity_j_per_k' = 42 J/K) is ")
    assert "Wh/kg; expected at most 1000 Wh/kg" in str(error.value)
    assert str(error.value).endswith("(in mAh? 1500 mAh is 1.5 Ah)")


@pytest.mark.parametrize("soc, covered", [("[0.1, 0.5, 1.0]", "0.1..1"), ("[0.0, 0.5, 0.9]", "0..0.9")])
def test_an_ocv_table_short_of_soc_0_to_1_fails_naming_the_range_it_covers(write_cell, soc, covered):
    path = write_cell(MINIMAL.replace("soc = [0.0, 0.5, 1.0]", f"soc = {soc}"))
    with pytest.raises(ConfigError) as error:
        load_cell(path)
    assert str(error.value) == (f"{path}: key 'ocv.soc' covers SOC {covered}; expected a table from 0 to 1 "
                                "(a full discharge to a full charge)")
