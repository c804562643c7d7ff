"""The project's own test run: under pytest-xdist, the slow tests go first, those over the wire (the whole
suite over slcan among them) before the others. With HIL_SUITE_PASSED set (CI sets it once `hil run -n 2`, the
README's first command, has run the BMS suite on the sim rig and passed), a bare `pytest` leaves tests/bms out
rather than run it there a second time; `hil run`, which names tests/bms, keeps it.

xdist hands tests out in collection order, so a test of minutes collected last (the whole suite over slcan,
tests/test_wire_slcan.py) would run alone at the end while the other worker sits idle. Started first, it
runs beside everything else. Each worker sorts the same way, as xdist requires; a plain run keeps the
files' order. A run that stops at its first failure (-x, as `hil mutants`) puts the slow tests last instead.
"""
import os
from pathlib import Path

SUITE_PASSED_ENV = "HIL_SUITE_PASSED"
SUITE = Path(__file__).resolve().parent / "bms"


def pytest_ignore_collect(collection_path, config):
    if os.environ.get(SUITE_PASSED_ENV) and collection_path.resolve() == SUITE:
        named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
        if not any(path == SUITE or SUITE in path.parents for path in named):
            return True
    return None   # pytest decides, as without this hook


def _order(item) -> tuple[bool, bool]:
    """Slow tests over the wire, then other slow tests, then the rest."""
    slow = item.get_closest_marker("slow") is not None
    return not slow, not (slow and item.get_closest_marker("wire") is not None)


def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):   # not an xdist worker
        return
    if config.option.maxfail:
        # -x, as `hil mutants` runs the suite once per seeded bug: the first failure ends the run, so the quick
        # tests go first, and a slow one runs only when no quick one has caught the bug.
        items.sort(key=lambda item: item.get_closest_marker("slow") is not None)
    else:
        items.sort(key=_order)   # stable: within each group, the files' order
