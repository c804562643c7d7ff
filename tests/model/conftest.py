import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hil.model.cell import load_cell

CELLS = Path(__file__).resolve().parents[2] / "fixtures" / "cells"


@pytest.fixture
def m50():
    return load_cell(CELLS / "lg_m50.toml")


@pytest.fixture
def lfp():
    return load_cell(CELLS / "a123_lfp_26650.toml")


@pytest.fixture
def constant():
    """Makes a copy of a cell with every temperature, SOC and history dependence of its parameters off."""
    def make(cell, **changes):
        return dataclasses.replace(cell, ocv_dv_dt_v_per_k=None, activation_energy_j_per_mol=0.0,
                                   r_factor_soc=np.array([0.0, 1.0]), r_factor=np.ones(2), hysteresis_v=0.0,
                                   **changes)
    return make


@pytest.fixture
def write_cell(tmp_path):
    """Writes a cell file's text to a temporary path and returns the path."""
    def write(text: str) -> Path:
        path = tmp_path / "cell.toml"
        path.write_text(text)
        return path
    return write
