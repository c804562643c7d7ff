from pathlib import Path

import pytest

from hil.model.cell import load_cell

CELLS = Path(__file__).resolve().parents[2] / "fixtures" / "cells"


@pytest.fixture
def m50():
    return load_cell(CELLS / "lg_m50.toml")
