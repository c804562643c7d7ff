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
