"""The BMS suite's traceability: every test in tests/bms names the spec entries its limits come from
(`@pytest.mark.verifies`), every name resolves to one a spec can state, and every requirement the suite knows has a
test.

The plugin resolves a test's names only as that test is set up, so a misspelt one would show first in a bench run,
and a requirement no test names would show only as "not verified" in every report. This collects the suite (on the
default rig, no bench built, nothing run) and resolves each item's names as the plugin does, `{param}` placeholders
and all.
"""
import functools

import pytest

from hil.pytest_plugin import verified_tables
from hil.report.coverage import covers
from hil.rig import PROJECT_ROOT
from hil.spec import CORNERS, KNOWN_TABLES, PROTECTIONS, WARNINGS, unknown_entry

SUITE = PROJECT_ROOT / "tests" / "bms"
# Checked entry by entry below, or no requirement at all ([bms] names the BMS).
NOT_TABLES = ("bms", "protections", "warnings", "corners", "cycle_times")


class _Collector:
    """Each collected test: (whether it has a verifies marker at all, the entries it names, or why not)."""
    def __init__(self):
        self.tests: dict[str, tuple[bool, list[str] | str]] = {}

    def pytest_collection_finish(self, session):
        for item in session.items:
            try:
                names = verified_tables(item)
            except pytest.fail.Exception as exc:
                names = str(exc)
            self.tests[item.nodeid] = (item.get_closest_marker("verifies") is not None, names)


@functools.cache
def _suite_tests() -> dict[str, tuple[bool, list[str] | str]]:
    collector = _Collector()
    pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", f"--rootdir={PROJECT_ROOT}", str(SUITE)],
                plugins=[collector])
    return collector.tests


@pytest.fixture
def suite() -> dict[str, tuple[bool, list[str] | str]]:
    tests = _suite_tests()
    assert len(tests) > 50, f"collected only {len(tests)} tests from {SUITE}: a moved suite has nothing to check"
    return tests


def test_every_suite_test_names_what_it_verifies(suite):
    """A test whose limits come from no spec entry (a harness check) says so with an empty marker."""
    missing = [nodeid for nodeid, (marked, _) in suite.items() if not marked]
    assert not missing, ("tests without @pytest.mark.verifies(...): name the spec entries their limits come from, "
                         f"e.g. 'protections.{{name}}', or write verifies() for none: {missing}")


def test_every_name_is_one_a_spec_can_state(suite):
    problems = [names for _, names in suite.values() if isinstance(names, str)]
    assert not problems, "\n".join(problems)


def _covered(suite, entry: str) -> bool:
    # the entry itself, its whole table, or (for a table) any of its entries
    return any(covers(name, entry) or covers(entry, name) for _, names in suite.values()
               if not isinstance(names, str) for name in names)


@pytest.mark.parametrize("entry", [f"protections.{n}" for n in PROTECTIONS] + [f"warnings.{n}" for n in WARNINGS]
                         + [f"corners.{n}" for n in CORNERS] + ["cycle_times"]
                         + [t for t in KNOWN_TABLES if t not in NOT_TABLES])
def test_every_requirement_the_suite_knows_has_a_test(suite, entry):
    assert _covered(suite, entry), (f"no test in tests/bms verifies {entry!r}: a spec stating it would show it "
                                    "'not verified' on every run")


@pytest.mark.parametrize("name", ["sleep", "protections.cell_ov", "cycle_times.BMS_Status", "lab_chamber"])
def test_unknown_entry_accepts_what_a_spec_can_state(name):
    """A table of the suite's, a named table's entry (any message for cycle_times), a lab's own table."""
    assert unknown_entry(name) == ""


@pytest.mark.parametrize("name, hint", [("protections.cell_oov", "cell_ov"), ("sleeep", "sleep"),
                                        ("heartbeat.timeout_ms", "heartbeat")])
def test_unknown_entry_names_what_is_wrong(name, hint):
    """A misspelt entry or table, with the name meant; a key of a plain table where its table belongs."""
    problem = unknown_entry(name)
    assert problem and hint in problem, f"unknown_entry({name!r}) = {problem!r}, expected a message naming {hint!r}"
