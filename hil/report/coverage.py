"""Spec coverage: which of the spec's requirements a run verified, and how each came out.

A test names the spec tables its limits come from with `@pytest.mark.verifies("protections.{name}", ...)`; the
plugin records them as its `hil:verifies` property (JUnit, and so under pytest-xdist too). Each entry of the spec
(`Spec.requirements`: a table, or a named entry such as `protections.cell_ov`) then gets the tests that verified
it and a verdict:
- "failed": one of them failed (or errored, or was stopped);
- "passed": none failed and at least one passed;
- "skipped": all of them skipped (the rig lacks a capability, the spec lacks a value a test needs);
- "not verified": no test of this run names it (deselected with -k, or a lab's own table without a test).

A test that names a table the spec does not state (it skipped: "this BMS has no [sleep]") is listed apart: what
the suite could check, had the spec stated it. This is the traceability a release review asks for: every
requirement, the tests that verified it, their verdicts.

Limits: coverage is per table, not per key: a test verifying [sleep] covers every key in it, including an
optional one only another test reads.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hil.report.results import FAILED_OUTCOMES, VERIFIES_PROPERTY, Results, verified_entries

JSON_NAME = "spec_coverage.json"
VERDICTS = ("failed", "passed", "skipped", "not verified")
_PASSED = ("passed", "xfailed")


@dataclass
class Verification:
    nodeid: str
    outcome: str
    details: str = ""   # a skip's reason, or the first line of a failure


@dataclass
class Requirement:
    entry: str                    # "heartbeat", "protections.cell_ov"
    requirement: str | None       # the spec's `requirement` for it, if it names one
    tests: list[Verification] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        outcomes = [test.outcome for test in self.tests]
        if any(outcome in FAILED_OUTCOMES for outcome in outcomes):
            return "failed"
        if any(outcome in _PASSED for outcome in outcomes):
            return "passed"
        return "skipped" if outcomes else "not verified"


@dataclass
class Coverage:
    spec: str
    requirements: list[Requirement]
    # What tests name that the spec does not state (they skip for want of it): entry -> those tests
    unstated: dict[str, list[str]]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for requirement in self.requirements:
            counts[requirement.verdict] += 1
        return counts

    def summary(self) -> str:
        counts = self.counts()
        text = f"{len(self.requirements)} spec entries: " + ", ".join(f"{n} {verdict}"
                                                                      for verdict, n in counts.items() if n)
        if counts["failed"]:
            text += "; failed: " + ", ".join(r.entry for r in self.requirements if r.verdict == "failed")
        return text

    def to_json(self) -> dict:
        return {"spec": self.spec, "counts": self.counts(),
                "requirements": [{**asdict(r), "verdict": r.verdict} for r in self.requirements],
                "unstated": self.unstated}


def covers(verified: str, entry: str) -> bool:
    """Whether a test's `verifies` name covers a spec entry: the entry itself, or its whole table ("cycle_times"
    covers "cycle_times.BMS_Status")."""
    return entry == verified or entry.startswith(verified + ".")


def spec_coverage(spec: str, requirements: dict[str, str | None], results: Results) -> Coverage:
    """Each entry of `requirements` (`Spec.requirements()`) with the tests in `results` that name it."""
    rows = [Requirement(entry, requirement) for entry, requirement in requirements.items()]
    unstated: dict[str, list[str]] = {}
    for result in sorted(results.tests.values(), key=lambda r: r.nodeid):
        details = result.details.strip().splitlines()[0] if result.details.strip() else ""
        for name in verified_entries(result.value_of(VERIFIES_PROPERTY)):
            matched = [row for row in rows if covers(name, row.entry)]
            for row in matched:
                row.tests.append(Verification(result.nodeid, result.outcome, details))
            if not matched:
                unstated.setdefault(name, []).append(result.nodeid)
    return Coverage(spec, rows, unstated)


def write_json(report_dir: str | Path, coverage: Coverage) -> Path:
    path = Path(report_dir) / JSON_NAME
    path.write_text(json.dumps(coverage.to_json(), indent=1) + "\n", encoding="utf-8")
    return path
