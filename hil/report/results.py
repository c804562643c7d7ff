"""Outcomes of a run's tests, merged from their setup, call and teardown phases, as plain data.

The pytest plugin feeds `Results.add` from `pytest_runtest_logreport`, which under pytest-xdist runs on the
controller with the workers' reports, so one `Results` sees the whole run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from hil.report.measurements import Measurement, from_properties

ARTIFACT_PROPERTY = "hil:artifact"    # the file stem of a test's trace, CAN log and plot in tests/
TIMING_PREFIX = "timing:"             # loop timing of a test's bench: ticks, overruns, jitter
FIRMWARE_PROPERTY = "hil:firmware"    # the build the BMS said it ran during the test
PROFILE_FILE_PROPERTY = "hil:profile_file"   # a replayed trace's file and its SHA-256 (hil.provenance)
DTCS_PROPERTY = "hil:dtcs"            # the DTCs the BMS had stored when the test ended with errors latched
VERIFIES_PROPERTY = "hil:verifies"    # the spec entries the test's limits come from, comma-separated


def verified_entries(value) -> tuple[str, ...]:
    """A test's VERIFIES_PROPERTY value as its spec entries ("protections.cell_ov", "heartbeat")."""
    return tuple(name for name in str(value).split(",") if name) if value else ()


# A test whose body never reported: the run was stopped under it (under pytest-xdist, a Ctrl-C ends the
# controller before the workers' reports of their interrupted tests arrive).
NOT_FINISHED = "interrupted"
FAILED_OUTCOMES = ("failed", "error", "xpassed", NOT_FINISHED)   # a test to look at again
_NOT_FINISHED_DETAILS = "its body never reported an outcome: the run was stopped (Ctrl-C, SIGTERM) while it ran"


@dataclass
class TestResult:
    nodeid: str
    outcome: str = NOT_FINISHED       # passed, failed, error, skipped, xfailed, xpassed, or NOT_FINISHED
    duration_s: float = 0.0
    details: str = ""                 # failure text or skip reason
    properties: list = field(default_factory=list)

    @property
    def measurements(self) -> list[Measurement]:
        return from_properties(self.properties)

    def value_of(self, key: str):
        """The value of property `key`, or None if the test did not record it."""
        return next((v for k, v in self.properties if k == key), None)

    @property
    def artifact(self) -> str | None:
        value = self.value_of(ARTIFACT_PROPERTY)
        return None if value is None else str(value)

    @property
    def timing(self) -> dict:
        return {k[len(TIMING_PREFIX):]: v for k, v in self.properties if str(k).startswith(TIMING_PREFIX)}


class Results:
    def __init__(self) -> None:
        self.tests: dict[str, TestResult] = {}

    def add(self, nodeid: str, when: str, outcome: str, duration_s: float, details: str = "",
            properties=(), xfail: bool = False) -> None:
        """One phase's report; `outcome` is pytest's ("passed", "failed", "skipped")."""
        result = self.tests.setdefault(nodeid, TestResult(nodeid, details=_NOT_FINISHED_DETAILS))
        result.duration_s += duration_s
        result.properties = list(properties)  # an item's properties accumulate, so the last phase has them all
        if when == "call":
            if xfail:
                outcome = "xfailed" if outcome == "skipped" else "xpassed"
            if result.outcome == NOT_FINISHED:
                result.outcome = outcome
                result.details = details
        elif outcome == "skipped" and result.outcome in (NOT_FINISHED, "passed"):
            result.outcome, result.details = "skipped", details
        elif outcome == "failed" and result.outcome not in ("failed", "error"):
            result.outcome = "error"   # setup or teardown failed: pytest counts an error, not a failure
            result.details = details

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.tests.values():
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return counts


def firmware_counts(builds) -> dict[str, int]:
    """How many tests each build ran in, from each test's FIRMWARE_PROPERTY (None: the BMS said none)."""
    counts: dict[str, int] = {}
    for build in builds:
        if build is not None:
            counts[str(build)] = counts.get(str(build), 0) + 1
    return counts


def describe_firmware(counts: dict[str, int]) -> str:
    """The builds the BMS said it ran, as a report line: "1.2.0 (12 tests)", or each with its count."""
    if not counts:
        return "none reported"
    return ", ".join(f"{build} ({n} test{'s' if n != 1 else ''})" for build, n in counts.items())
