import pytest
from .safety_harness import ROOT

from hil.can.dbc import load_dbcs


@pytest.fixture(scope="session")
def db():
    """Every project DBC, to decode the CAN logs a harness leaves."""
    return load_dbcs(sorted((ROOT / "dbc").glob("*.dbc")))
