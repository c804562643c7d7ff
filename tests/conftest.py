"""The project's own test run: under pytest-xdist, the slow tests go first.

xdist hands tests out in collection order, so a test of minutes collected last (the whole suite over slcan,
tests/test_wire_slcan.py) would run alone at the end while the other worker sits idle. Started first, it
runs beside everything else. Each worker sorts the same way, as xdist requires; a plain run keeps the
files' order.
"""


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):   # an xdist worker
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)   # stable: slow first, else as before
