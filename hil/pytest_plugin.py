"""pytest plugin: `--rig`, `--hil-report`, `--set`; fixtures for the bench and its parts; measurements.

Business logic lives in `hil.bench`; this file only wires it into pytest. Each test gets its own bench
(fresh boards, fresh channel), which is made safe and closed whatever ends the test.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from hil.bench import Bench
from hil.errors import HilError
from hil.rig import DEFAULT_RIG, load_rig


def pytest_addoption(parser):
    group = parser.getgroup("hil", "BMS hardware-in-the-loop")
    group.addoption("--rig", default=None, help=f"rig file (default: {DEFAULT_RIG})")
    group.addoption("--hil-report", default=None, metavar="DIR", help="write traces and CAN logs per test to DIR")
    group.addoption("--set", dest="hil_set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a rig key, e.g. --set dut.calibration.cell_ov_v=4.3")


def pytest_configure(config):
    config.addinivalue_line("markers", "rig_requires(*capabilities): skip unless the rig has them all")
    config.addinivalue_line("markers", "profile(*names): run the test once per named load profile")


def pytest_generate_tests(metafunc):
    marker = metafunc.definition.get_closest_marker("profile")
    if marker is not None and "profile" in metafunc.fixturenames:
        metafunc.parametrize("profile_name", list(marker.args), ids=list(marker.args))


@pytest.fixture(scope="session")
def rig(pytestconfig):
    """The loaded, validated rig (`--rig`, `--set` applied)."""
    try:
        return load_rig(pytestconfig.getoption("rig"), pytestconfig.getoption("hil_set"))
    except HilError as exc:
        raise pytest.UsageError(str(exc)) from None


def _report_dir(config) -> Path | None:
    report = config.getoption("hil_report")
    return Path(report) if report else None


@pytest.fixture
def bench(request, rig):
    """A bench assembled from the rig; made safe (load off, contactors open, outputs off) and closed after."""
    for marker in request.node.iter_markers("rig_requires"):
        missing = set(marker.args) - rig.capabilities
        if missing:
            pytest.skip(f"rig '{rig.name}' lacks {sorted(missing)} (has {sorted(rig.capabilities)})")
    report = _report_dir(request.config)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    try:
        instance = Bench(rig, overrides=request.config.getoption("hil_set"),
                         report_dir=report / "tests" if report else None, name=name)
    except HilError as exc:
        pytest.fail(f"bench could not start: {exc}", pytrace=False)
    try:
        yield instance
    finally:
        try:
            instance.make_safe()
        except HilError:
            pass  # the boards' own watchdogs take over; close() still releases everything
        finally:
            instance.close()


@pytest.fixture
def bms(bench):
    return bench.bms


@pytest.fixture
def pack(bench):
    return bench.pack


@pytest.fixture
def cell_emulator(bench):
    return bench.cell_emulator


@pytest.fixture
def loop(bench):
    return bench.loop


@pytest.fixture
def spec(bench):
    return bench.spec


@pytest.fixture
def can_log(bench):
    return bench.can_log


@pytest.fixture
def profile(request, bench):
    """The load profile named by the `profile` marker (one test per name), sampled on the bench's dt."""
    from hil.profiles import PROFILES
    name = request.getfixturevalue("profile_name")
    return PROFILES[name](dt_s=bench.loop.dt_s, seed=bench.rig.seed)


@pytest.fixture
def measure(record_property):
    """`measure(name, value, low=None, high=None, unit="")`: record a measurement and check its limits.

    The value, limits and margin go to the JUnit XML as properties; a value outside its limits fails the
    test with the margin shown.
    """
    def _measure(name: str, value: float, low: float | None = None, high: float | None = None, unit: str = ""):
        margins = [m for m in ((value - low) if low is not None else None,
                               (high - value) if high is not None else None) if m is not None]
        margin = min(margins) if margins else None
        record_property(f"measure:{name}", f"{value:.6g} {unit}".strip())
        record_property(f"limits:{name}", f"[{'' if low is None else f'{low:g}'}, "
                                          f"{'' if high is None else f'{high:g}'}] {unit}".strip())
        if margin is not None:
            record_property(f"margin:{name}", f"{margin:.6g} {unit}".strip())
        if margin is not None and margin < 0:
            pytest.fail(f"{name} = {value:.6g} {unit} outside [{low}, {high}] {unit} (margin {margin:.6g})",
                        pytrace=False)
        return value
    return _measure
