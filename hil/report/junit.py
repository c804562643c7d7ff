"""A run's JUnit XML (pytest's `--junitxml`, as `hil run` writes it) read back: each test's outcome, the first
line of its message, its measurements (`hil.report.measurements`) and its bench loop's timing. `hil compare`
and `hil mutants` read runs through it."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hil.errors import HilError
from hil.report.measurements import Measurement, from_properties
from hil.report.results import FIRMWARE_PROPERTY, TIMING_PREFIX, VERIFIES_PROPERTY, verified_entries
from hil.report.spread import REPEAT_OF_PROPERTY, SEED_PROPERTY

FAILING = ("failed", "error")


@dataclass(frozen=True)
class Case:
    """One test of a run: its outcome (passed, failed, error or skipped), first line of its message, its
    measurements by name, and its loop's timing (`Loop.timing()`: ticks, overruns, jitter_p99_us, ...; the
    jitter only on a real clock)."""
    outcome: str
    message: str
    measurements: dict[str, Measurement]
    timing: dict[str, float]
    firmware: str | None = None   # the build the BMS said it ran (None: not said, or no bench)
    repeat_of: str | None = None  # under --hil-repeat: the test this case is one seed of, and that seed
    seed: int | None = None
    verifies: tuple[str, ...] = ()   # the spec entries its limits come from (hil.report.coverage)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILING


def read_junit(file: Path) -> dict[str, Case]:
    """The tests of JUnit XML `file` by `classname::name`, in the file's order. A test written twice (a failure,
    then an error in its teardown) is one case, failing if either entry does."""
    root = _root(file)
    cases: dict[str, Case] = {}
    for element in root.iter("testcase"):
        test_id = f"{element.get('classname', '')}::{element.get('name', '')}"
        case, earlier = _case(file, test_id, element), cases.get(test_id)
        cases[test_id] = earlier if earlier is not None and earlier.failed and not case.failed else case
    return cases


def read_run_facts(file: Path) -> dict[str, str]:
    """The run-wide properties of JUnit XML `file` (its <testsuite>'s own, not its tests'): what the run
    tested (`hil.provenance`), by name; {} for a file written without them."""
    return {p.get("name"): p.get("value", "") for suite in _root(file).iter("testsuite")
            for p in suite.findall("properties/property")}


def run_started(file: Path) -> datetime | None:
    """When the run of JUnit XML `file` started: its first <testsuite>'s timestamp (pytest writes one), or None
    where there is none or it is no ISO 8601 time."""
    suite = next(_root(file).iter("testsuite"), None)
    stamp = suite.get("timestamp") if suite is not None else None
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def _root(file: Path):
    try:
        return ET.parse(file).getroot()
    except ET.ParseError as exc:
        raise HilError(f"{file}: not XML ({exc}); expected a JUnit XML file") from None


def _case(file: Path, test_id: str, element) -> Case:
    outcome, message = "passed", ""
    for tag, name in (("failure", "failed"), ("error", "error"), ("skipped", "skipped")):
        found = element.find(tag)
        if found is not None:
            outcome = name
            text = (found.get("message") or found.text or "").strip()
            message = text.splitlines()[0] if text else ""
            break
    properties = [(p.get("name"), p.get("value")) for p in element.iter("property")]
    try:
        measurements = {m.name: m for m in from_properties(properties)}
    except ValueError as exc:
        raise HilError(f"{file}: test {test_id}: a measurement property is not a number ({exc})") from None
    timing = {}
    for name, value in properties:
        if name and name.startswith(TIMING_PREFIX):
            try:
                timing[name[len(TIMING_PREFIX):]] = float(value)
            except (TypeError, ValueError):
                raise HilError(f"{file}: test {test_id}: timing property {name!r} = {value!r} is not a "
                               "number") from None
    named = dict(properties)
    seed = named.get(SEED_PROPERTY)
    try:
        seed = None if seed is None else int(seed)
    except ValueError:
        raise HilError(f"{file}: test {test_id}: property {SEED_PROPERTY!r} = {seed!r} is not a whole number") from None
    return Case(outcome, message, measurements, timing, named.get(FIRMWARE_PROPERTY), named.get(REPEAT_OF_PROPERTY),
                seed, verified_entries(named.get(VERIFIES_PROPERTY)))
