"""`index.html`: one static page summarising a run, readable offline (no scripts, no external assets).

It shows the verdict and counts, the spec's coverage (each requirement with the tests that verified it:
`hil.report.coverage`), every measurement with its limits and margin (tight margins flagged),
loop timing, failure text, links to each test's files and its plot embedded as a base64 PNG. It is built
from `Results` and the files in `<report>/tests/`, so it also covers tests run by pytest-xdist workers.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

from hil.provenance import FILE_LABELS, FILE_PREFIX, LABELS, PREFIX
from hil.report.coverage import JSON_NAME, Coverage
from hil.report.measurements import Measurement
from hil.report.results import (DTCS_PROPERTY, FIRMWARE_PROPERTY, NOT_FINISHED, PROFILE_FILE_PROPERTY, Results,
                                TestResult, describe_firmware, firmware_counts)
from hil.report.spread import CSV_NAME, repeated, spreads

# Per-test files, in the order their links are shown: suffix -> label.
ARTIFACTS = {".csv": "csv", ".png": "png", ".blf": "blf", ".mf4": "mf4", ".events.csv": "events"}
_OUTCOME_CLASS = {"passed": "ok", "xfailed": "ok", "skipped": "skip", "failed": "bad", "error": "bad",
                  "xpassed": "bad", NOT_FINISHED: "bad"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.2em} th,td{padding:.25em .5em;text-align:left;
border-bottom:1px solid #e4e4e4;vertical-align:top} th{background:#f4f4f4} td.num{text-align:right;
font-variant-numeric:tabular-nums} .ok{color:#17702b} .bad{color:#b00020;font-weight:bold} .skip{color:#777}
.tight{color:#a35b00;font-weight:bold} .badge{display:inline-block;padding:.15em .6em;border-radius:.3em;
color:#fff;font-weight:bold} .badge.ok{background:#17702b;color:#fff} .badge.bad{background:#b00020;color:#fff}
pre{background:#f7f7f7;border:1px solid #e4e4e4;padding:.6em;overflow-x:auto;font-size:12px;max-height:30em}
img{max-width:100%;border:1px solid #e4e4e4} .meta{color:#555} section{margin-bottom:2em}
.nowrap{white-space:nowrap} small{color:#777}
"""


def write_index(report_dir: str | Path, results: Results, run: dict) -> Path:
    """Write `<report_dir>/index.html`. `run` holds `title`, and optionally `rig`, `clock`, `realtime_priority`,
    `started`, `duration_s`, `command`, `junit` (a path relative to the report), `notes` (lines to show) and
    `facts` (what was tested: `hil.provenance.describe_run`), `rerun` (a failed test's node id -> the
    command that runs it again) and `coverage` (`hil.report.coverage.Coverage`, with its JSON beside the page)."""
    report_dir = Path(report_dir)
    tests = sorted(results.tests.values(), key=lambda r: r.nodeid)
    anchors = {r.nodeid: _anchor(i) for i, r in enumerate(tests)}
    body = [_header(results, run, tests), _tested(run.get("facts", {}), tests), _summary(report_dir, tests),
            _coverage(run.get("coverage"), anchors), _measurements(tests), _spread(results)]
    reruns = run.get("rerun", {})
    body += [_test_section(report_dir, i, result, reruns.get(result.nodeid)) for i, result in enumerate(tests)]
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(run.get('title', 'hil report'))}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    path = report_dir / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _header(results: Results, run: dict, tests: list[TestResult]) -> str:
    counts = results.counts()
    failed = any(_OUTCOME_CLASS.get(r.outcome) == "bad" for r in tests)
    verdict = f"<span class=\"badge {'bad' if failed else 'ok'}\">{'FAIL' if failed else 'PASS'}</span>"
    facts = [f"{n} {outcome}" for outcome, n in sorted(counts.items())] or ["no tests"]
    meta = []
    for key, label in (("rig", "rig"), ("clock", "clock"), ("started", "started"), ("command", "command")):
        if run.get(key):
            meta.append(f"{label}: <code>{_e(run[key])}</code>" if key == "command" else f"{label}: {_e(run[key])}")
    if run.get("duration_s") is not None:
        meta.append(f"wall time: {run['duration_s']:.1f} s")
    if run.get("junit"):
        meta.append(f"<a href=\"{_e(run['junit'])}\">JUnit XML</a>")
    notes = list(run.get("notes", ()))
    overran = sum(1 for r in tests if r.timing.get("overruns"))
    if overran:
        hint = ("; the rig's [rig] realtime_priority (e.g. 50) keeps other processes from delaying the loop"
                if run.get("realtime_priority") == 0 else "")
        notes.append(f"the real-clock loop overran in {overran} of {len(tests)} tests: their timing was not met "
                     f"(see loop timing){hint}")
    notes_html = "".join(f"<p class=\"tight\">{_e(note)}</p>" for note in notes)
    return (f"<h1>{_e(run.get('title', 'hil report'))} {verdict}</h1>\n<p>{_e(', '.join(facts))}</p>\n"
            f"<p class=\"meta\">{' · '.join(meta)}</p>\n{notes_html}")


def _tested(facts: dict[str, str], tests: list[TestResult]) -> str:
    """What the run tested: the testbench, the rig, its seed and overrides, the build the BMS said it ran (a
    warning when it said more than one, or not the rig's), and each file read, with its SHA-256."""
    counts = firmware_counts(r.value_of(FIRMWARE_PROPERTY) for r in tests)
    rows = [(label, facts[PREFIX + key]) for key, label in LABELS.items() if PREFIX + key in facts]
    rows.append(("firmware the BMS reported", describe_firmware(counts)))
    expected = facts.get(PREFIX + "firmware_expected")
    warning = ""
    if len(counts) > 1 or (expected is not None and counts and set(counts) != {expected}):
        warning = ("<p class=\"bad\">The BMS did not report one build, the rig's, throughout: these results are "
                   "not all of one build.</p>\n")
    files = [(FILE_LABELS.get(role := name[len(FILE_PREFIX):], role), value) for name, value in facts.items()
             if name.startswith(FILE_PREFIX)]
    cells = "".join(f"<tr><th>{_e(label)}</th><td>{_e(value)}</td></tr>" for label, value in rows)
    cells += "".join(f"<tr><th>{_e(role)}</th><td><code>{_e(value)}</code></td></tr>" for role, value in files)
    return f"<h2>What was tested</h2>\n{warning}<table>{cells}</table>"


def _links(report_dir: Path, artifact: str | None) -> str:
    if artifact is None:
        return ""
    links = [f"<a href=\"tests/{_e(artifact + suffix)}\">{label}</a>" for suffix, label in ARTIFACTS.items()
             if (report_dir / "tests" / f"{artifact}{suffix}").is_file()]
    return " · ".join(links)


def _worst(measurements: list[Measurement]) -> str:
    """The measurement closest to (or furthest past) its limits, as a cell of the summary table."""
    scored = [m for m in measurements if m.margin_fraction is not None]
    if not scored:
        return f"{len(measurements)}" if measurements else ""
    worst = min(scored, key=lambda m: m.margin_fraction)
    return f"{len(measurements)}; closest: {_margin_cell(worst)}"


def _margin_cell(m: Measurement) -> str:
    if m.margin is None:
        return ""
    css = "bad" if not m.passed else "tight" if m.tight else "ok"
    share = f" ({100 * m.margin_fraction:.1f} %)" if m.margin_fraction is not None else ""
    return f"<span class=\"{css}\">{_e(m.name)}: {m.margin:.4g} {_e(m.unit)}{share}</span>"


def _timing_cell(timing: dict) -> str:
    if timing.get("jitter_p99_us") is None:
        return f"{timing['ticks']} ticks (virtual clock)" if "ticks" in timing else ""
    css = "bad" if timing.get("overruns") else "ok"
    return (f"p99 {float(timing['jitter_p99_us']):.0f} µs, max {float(timing['jitter_max_us']):.0f} µs, "
            f"<span class=\"{css}\">{timing.get('overruns', 0)} overruns</span>")


def _anchor(i: int) -> str:
    return f"t{i}"


def _summary(report_dir: Path, tests: list[TestResult]) -> str:
    rows = []
    for i, r in enumerate(tests):
        module, _, test = r.nodeid.rpartition("::")
        rows.append(f"<tr><td><a href=\"#{_anchor(i)}\">{_e(test)}</a><br><small>{_e(module)}</small></td>"
                    f"<td class=\"{_OUTCOME_CLASS.get(r.outcome, '')}\">{_e(r.outcome)}</td>"
                    f"<td class=\"num\">{r.duration_s:.2f} s</td><td>{_worst(r.measurements)}</td>"
                    f"<td>{_timing_cell(r.timing)}</td><td class=\"nowrap\">{_links(report_dir, r.artifact)}</td></tr>")
    return ("<h2>Tests</h2>\n<table><tr><th>test</th><th>outcome</th><th>time</th><th>measurements</th>"
            "<th>loop timing</th><th>files</th></tr>\n" + "\n".join(rows) + "</table>")


_VERDICT_CLASS = {"failed": "bad", "passed": "ok", "skipped": "skip", "not verified": "tight"}


def _coverage(coverage: Coverage | None, anchors: dict[str, str]) -> str:
    """Each entry of the spec with its requirement, its verdict and the tests that verified it (linked), then the
    tables the suite checks that the spec does not state."""
    if coverage is None:
        return ""
    rows = []
    for row in coverage.requirements:
        tests = "<br>".join(
            f"<a href=\"#{anchors.get(t.nodeid, '')}\">{_e(t.nodeid.split('::', 1)[-1])}</a> "
            f"<span class=\"{_OUTCOME_CLASS.get(t.outcome, '')}\">{_e(t.outcome)}</span>"
            + (f" <small>{_e(t.details)}</small>" if t.outcome == "skipped" and t.details else "")
            for t in row.tests)
        rows.append(f"<tr><td><code>{_e(row.entry)}</code></td><td>{_e(row.requirement or '')}</td>"
                    f"<td class=\"{_VERDICT_CLASS[row.verdict]}\">{_e(row.verdict)}</td><td>{tests}</td></tr>")
    unstated = ""
    if coverage.unstated:
        unstated = ("<p class=\"meta\">The suite also checks, where a spec states them: "
                    + ", ".join(f"<code>{_e(entry)}</code> ({len(tests)} test{'s' if len(tests) > 1 else ''})"
                                for entry, tests in sorted(coverage.unstated.items())) + ".</p>")
    counts = ", ".join(f"{n} {verdict}" for verdict, n in coverage.counts().items() if n)
    return (f"<h2>Spec coverage</h2>\n<p class=\"meta\">Each requirement of <code>{_e(coverage.spec)}</code> (a "
            f"table, or an entry of one) and the tests whose limits come from it: {_e(counts)}. The same as JSON: "
            f"<a href=\"{JSON_NAME}\">{JSON_NAME}</a>.</p>\n<table><tr><th>spec entry</th><th>requirement</th>"
            "<th>verdict</th><th>verified by</th></tr>\n" + "\n".join(rows) + f"</table>\n{unstated}")


def _status(failed: bool, tight: bool) -> tuple[str, str]:
    """A measurement's status word and its CSS class."""
    return ("FAIL", "bad") if failed else ("tight", "tight") if tight else ("pass", "ok")


def _measurement_rows(measurements: list[Measurement], test: str | None = None) -> list[str]:
    rows = []
    for m in measurements:
        status, css = _status(not m.passed, m.tight)
        share = f"{100 * m.margin_fraction:.1f} %" if m.margin_fraction is not None else ""
        margin = f"{m.margin:.4g}" if m.margin is not None else ""
        first = f"<td>{_e(test)}</td>" if test is not None else ""
        rows.append(f"<tr>{first}<td>{_e(m.name)}</td><td class=\"num\">{m.value:.6g}</td><td>{_e(m.unit)}</td>"
                    f"<td>{_e(m.limits_text())}</td><td class=\"num\">{margin}</td><td class=\"num\">{share}</td>"
                    f"<td class=\"{css}\">{status}</td></tr>")
    return rows


_MEASUREMENT_HEAD = ("<th>measurement</th><th>value</th><th>unit</th><th>limits</th><th>margin</th>"
                     "<th>margin / span</th><th>status</th>")


def _measurements(tests: list[TestResult]) -> str:
    rows = [row for r in tests for row in _measurement_rows(r.measurements, r.nodeid.split("::", 1)[-1])]
    if not rows:
        return ""
    return (f"<h2>Measurements</h2>\n<p class=\"meta\">Margin: distance to the nearest limit; <span class=\"tight\">"
            f"tight</span> when under 5 % of the allowed span.</p>\n<table><tr><th>test</th>{_MEASUREMENT_HEAD}</tr>\n"
            + "\n".join(rows) + "</table>")


def _spread(results: Results) -> str:
    """Under --hil-repeat: each repeated test's outcome per seed, and each measurement's min, median and max
    over the seeds with its worst margin and the seed that gave it."""
    tests = sorted(repeated(results), key=lambda t: not t.failed_seeds)   # the failures first, then by name
    if not tests:
        return ""
    outcome_rows = []
    for t in tests:
        failed = t.failed_seeds
        seeds = ", ".join(str(seed) for seed, _ in t.outcomes)
        verdict = (f"<span class=\"bad\">failed at seed {', '.join(map(str, failed))}</span> "
                   f"<small>(reproduce: <code>--set rig.seed={failed[0]}</code>)</small>" if failed
                   else "<span class=\"ok\">passed at every seed</span>")
        outcome_rows.append(f"<tr><td>{_e(t.test.split('::', 1)[-1])}</td><td class=\"num\">{len(t.outcomes)}</td>"
                            f"<td>{_e(seeds)}</td><td>{verdict}</td></tr>")
    rows = []
    for row in spreads(results):
        worst_seed, worst = row.worst
        low_median_high = row.summary()
        cells = "".join(f"<td class=\"num\">{v:.6g}</td>" for v in low_median_high) if low_median_high \
            else "<td></td>" * 3
        status, css = _status(bool(row.failed_seeds), worst.tight)
        margin = f"{worst.margin:.4g} (seed {worst_seed})" if worst.margin is not None else ""
        rows.append(f"<tr><td>{_e(row.test.split('::', 1)[-1])}</td><td>{_e(worst.name)}</td>"
                    f"<td class=\"num\">{len(row.samples)}</td>{cells}<td>{_e(worst.unit)}</td>"
                    f"<td>{_e(worst.limits_text())}</td><td class=\"num\">{margin}</td>"
                    f"<td class=\"{css}\">{status}</td></tr>")
    measurements = ("<table><tr><th>test</th><th>measurement</th><th>runs</th><th>min</th><th>median</th>"
                    "<th>max</th><th>unit</th><th>limits</th><th>worst margin</th><th>status</th></tr>\n"
                    + "\n".join(rows) + "</table>") if rows else ""
    return (f"<h2>Spread over seeds</h2>\n<p class=\"meta\">Each test ran once per seed (<code>--hil-repeat</code>): "
            f"other noise, and another pack where the rig's [pack] gives a spread. The same rows as CSV: "
            f"<a href=\"{CSV_NAME}\">{CSV_NAME}</a>.</p>\n<table><tr><th>test</th><th>runs</th><th>seeds</th>"
            "<th>outcome</th></tr>\n" + "\n".join(outcome_rows) + "</table>\n" + measurements)


def _test_section(report_dir: Path, i: int, r: TestResult, rerun: str | None = None) -> str:
    heading = (f"<section id=\"{_anchor(i)}\"><h2>{_e(r.nodeid)} "
               f"<span class=\"{_OUTCOME_CLASS.get(r.outcome, '')}\">{_e(r.outcome)}</span></h2>")
    parts = [heading]
    links = _links(report_dir, r.artifact)
    timing = _timing_cell(r.timing)
    trace = r.value_of(PROFILE_FILE_PROPERTY)
    parts.append(f"<p class=\"meta\">{r.duration_s:.2f} s{' · ' + timing if timing else ''}"
                 f"{' · ' + links if links else ''}"
                 f"{f' · replayed trace <code>{_e(trace)}</code>' if trace else ''}</p>")
    if rerun is not None:
        parts.append(f"<p class=\"meta\">rerun: <code>{_e(rerun)}</code></p>")
    dtcs = r.value_of(DTCS_PROPERTY)
    if dtcs is not None:   # read over UDS after the body, with errors latched (hil/pytest_plugin.py)
        parts.append(f"<p class=\"meta\">DTCs stored at the end: {_e(dtcs)}</p>")
    if r.details:
        parts.append(f"<pre>{_e(r.details)}</pre>")
    if r.measurements:
        parts.append(f"<table><tr>{_MEASUREMENT_HEAD}</tr>\n" + "\n".join(_measurement_rows(r.measurements))
                     + "</table>")
    png = report_dir / "tests" / f"{r.artifact}.png" if r.artifact else None
    if png is not None and png.is_file():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<img alt=\"trace of {_e(r.nodeid)}\" src=\"data:image/png;base64,{data}\">")
    parts.append("</section>")
    return "\n".join(parts)
