"""The thermal network's sub-stepping is bounded: an input that would need millions of sub-steps fails at
once, naming the values, instead of running for minutes."""
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.model.cell import _PLAUSIBLE, load_cell
from hil.model.pack import Pack
from hil.model.thermal import MAX_SUBSTEPS, ThermalNetwork

CELLS = Path(__file__).resolve().parents[2] / "fixtures" / "cells"


def test_a_tiny_heat_capacity_fails_at_the_first_thermal_update_instead_of_hanging(m50):
    # Not loadable from a file (the plausible range refuses it), but a CellParams built in code can have it.
    pack = Pack(dataclasses.replace(m50, heat_capacity_j_per_k=1e-9), 1)
    start_s = time.perf_counter()
    with pytest.raises(ConfigError) as error:
        pack.step(1.0, 1.0)
    assert time.perf_counter() - start_s < 1.0
    assert str(error.value).startswith(f"thermal: a step of 1 s needs 9.06e+08 sub-steps, more than {MAX_SUBSTEPS}: "
                                       "heat_capacity_j_per_k = 1e-09 with h_ambient_w_per_k = 0.053 and "
                                       "h_neighbour_w_per_k = 0.1")
    assert "expected a cell's heat capacity (tens of J/K for a 21700) or a shorter step" in str(error.value)


@pytest.mark.parametrize("args, message", [
    ((0.0, 0.05, 0.0), "thermal: heat_capacity_j_per_k = 0.0, expected a positive number of J/K"),
    ((float("nan"), 0.05, 0.0), "thermal: heat_capacity_j_per_k = nan, expected a positive number of J/K"),
    ((65.0, -0.05, 0.0), "thermal: h_ambient_w_per_k = -0.05, expected a number of W/K >= 0"),
    ((65.0, 0.05, float("inf")), "thermal: h_neighbour_w_per_k = inf, expected a number of W/K >= 0"),
])
def test_bad_network_values_fail_naming_the_key(args, message):
    with pytest.raises(ConfigError, match=message):
        ThermalNetwork(*args)


def test_every_plausible_cell_file_stays_well_inside_the_substep_bound():
    """The worst file the ranges allow (least heat capacity, most conductance) at the 1 s thermal interval."""
    worst = ThermalNetwork(_PLAUSIBLE["thermal.heat_capacity_j_per_k"].low,
                           _PLAUSIBLE["thermal.h_ambient_w_per_k"].high,
                           _PLAUSIBLE["thermal.h_neighbour_w_per_k"].high)
    assert 1.0 / worst.max_dt_s <= MAX_SUBSTEPS / 5
    temperature_c = np.full((2, 2), 25.0)
    worst.advance(temperature_c, np.ones((2, 2)), 25.0, 1.0)
    assert np.all(np.isfinite(temperature_c))


@pytest.mark.parametrize("path", sorted(CELLS.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_cells_need_one_substep_per_thermal_interval(path):
    cell = load_cell(path)
    assert ThermalNetwork(cell.heat_capacity_j_per_k, cell.h_ambient_w_per_k, cell.h_neighbour_w_per_k).max_dt_s >= 1.0
