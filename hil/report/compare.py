"""`hil compare BASE NEW`: what changed between two runs, read from their JUnit XML.

A firmware change can pass every test and still react later, or report less accurately, than the build
before it. Each run's JUnit XML keeps its measurements with their limits (`hil.report.measurements`), so
two runs compare without re-running anything:

- outcomes: a test that passed (or was not there) and now fails is a regression; one that failed and now
  passes is fixed; one that failed in both is listed as still failing (not a regression: it is no worse);
  tests that appear, disappear or newly skip are listed;
- measurements: for each one both runs have, the margin to its limits as a share of the allowed span (or
  of the one limit's size, as the report shows it). A margin that shrank by more than `--max-margin-loss`
  of that scale is a regression, though the test still passes. Measurements without limits are listed when
  they changed, never judged;
- what was tested (`hil.provenance`): the build the BMS said it ran, the testbench, the rig, seed and
  overrides, and every file read (by SHA-256). Differences are listed first, never judged: they say whether a
  regression is the firmware's (another build, same files) or may be a changed spec's or bench's;
- spread, for tests both runs repeated over seeds (`--hil-repeat`, any number of seeds each): each
  measurement's median value and its median and worst margin, over the seeds of each run. Where the two runs
  ran other seeds (5 before, 10 now, say), a median margin that shrank by more than `--max-margin-loss` is a
  regression; where they ran the same seeds, each seed is compared as one test, above;
- spec coverage (`hil.report.coverage`): a spec entry some test verified and passed in the base run, and none
  in the new one (its tests now skip, are gone, or no longer name it), is listed as no longer verified: a
  requirement a release stops checking. A failing test is judged above; this is listed, never judged;
- loop timing, for tests both runs ran on a real clock: each one's jitter (p99, max) and overruns. A test whose
  loop kept time (no overrun) and now overruns is a regression (the harness, or the PC, got slower: the stimulus
  was late), unless `--ignore-timing`; the jitter is listed, never judged.

Exit 0 when nothing regressed, 1 when something did, 2 when a file cannot be read as a JUnit report.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from hil.errors import HilError
from hil.provenance import FILE_LABELS, FILE_PREFIX, LABELS, PREFIX
from hil.report.junit import Case, read_junit, read_run_facts, run_started
from hil.report.measurements import Measurement
from hil.report.results import describe_firmware, firmware_counts

DEFAULT_MAX_MARGIN_LOSS = 0.10


def load_run(path: str | Path) -> dict[str, Case]:
    """The tests of a JUnit XML file, or of the `junit.xml` in a report folder, by `classname::name`."""
    file = _junit_file(path)
    cases = read_junit(file)
    if not cases:
        raise HilError(f"{file}: no <testcase> in it; expected a JUnit XML file (pytest --junitxml, or hil run's)")
    return cases


def load_started(path: str | Path):
    """When the run started (`hil.report.junit.run_started`), from the same file as `load_run`'s; None if unsaid."""
    return run_started(_junit_file(path))


def load_facts(path: str | Path) -> dict[str, str]:
    """What a run tested (`hil.provenance`), from the same file as `load_run`'s; {} for a run without it."""
    return read_run_facts(_junit_file(path))


def _junit_file(path: str | Path) -> Path:
    path = Path(path)
    file = path / "junit.xml" if path.is_dir() else path
    if not file.is_file():
        raise HilError(f"{path}: no such file{' (no junit.xml in it)' if path.is_dir() else ''}; expected a JUnit "
                       "XML file or a report folder with one (hil run writes reports/latest/junit.xml)")
    return file


def input_changes(base_facts: dict[str, str], new_facts: dict[str, str], base: dict[str, Case],
                  new: dict[str, Case]) -> list[dict]:
    """What the two runs tested differently: {"what", "base", "new"} for the builds the BMS reported, and, when
    both runs recorded what they tested, each fact or input file that differs (None: that run had none, e.g.
    no --set)."""
    builds = [firmware_counts(case.firmware for case in run.values()) for run in (base, new)]
    changes = []
    if set(builds[0]) != set(builds[1]):
        changes.append({"what": "firmware the BMS reported", "base": describe_firmware(builds[0]),
                        "new": describe_firmware(builds[1])})
    if not (base_facts and new_facts):
        return changes   # a run from before these were recorded, or not by hil's plugin: nothing to compare
    for name in dict.fromkeys([*base_facts, *new_facts]):
        if base_facts.get(name) != new_facts.get(name):
            changes.append({"what": _fact_label(name), "base": base_facts.get(name), "new": new_facts.get(name)})
    return changes


def _fact_label(name: str) -> str:
    if name.startswith(FILE_PREFIX):
        role = name[len(FILE_PREFIX):]
        return FILE_LABELS.get(role, role)
    return LABELS.get(name[len(PREFIX):], name) if name.startswith(PREFIX) else name


def margin_loss(base: Measurement, new: Measurement) -> float | None:
    """How much of the limits' scale the margin lost from `base` to `new` (negative: it grew); None when the
    measurement has no limits, or its limits changed (then the margins measure different things)."""
    if (base.low, base.high) != (new.low, new.high):
        return None
    before, after = base.margin_fraction, new.margin_fraction
    if before is None or after is None or math.isnan(before) or math.isnan(after):
        return None
    return before - after


def compare(base: dict[str, Case], new: dict[str, Case], max_margin_loss: float = DEFAULT_MAX_MARGIN_LOSS,
            judge_timing: bool = True, base_facts: dict[str, str] | None = None,
            new_facts: dict[str, str] | None = None) -> dict:
    """The differences of two runs, as plain data (the JSON `hil compare --json` prints). `base_facts` and
    `new_facts` are what each run tested (`load_facts`); `inputs_known` says both runs recorded it."""
    regressed, still_failing, fixed, newly_skipped = [], [], [], []
    for test_id, case in new.items():
        before = base.get(test_id)
        if case.failed and (before is None or not before.failed):
            regressed.append({"test": test_id, "was": before.outcome if before else None, "now": case.outcome,
                              "message": case.message})
        elif case.failed:
            still_failing.append({"test": test_id, "message": case.message})
        elif before is not None and before.failed and case.outcome == "passed":
            fixed.append(test_id)
        elif before is not None and before.outcome == "passed" and case.outcome == "skipped":
            newly_skipped.append({"test": test_id, "reason": case.message})
    margins, changed, compared = [], [], 0
    for test_id, case in new.items():
        before = base.get(test_id)
        for name, measurement in case.measurements.items():
            old = before.measurements.get(name) if before else None
            if old is None:
                continue
            compared += 1
            loss = margin_loss(old, measurement)
            entry = {"test": test_id, "name": name, "unit": measurement.unit, "base": old.value,
                     "new": measurement.value, "limits": measurement.limits_text(),
                     "base_margin": old.margin, "new_margin": measurement.margin,
                     "margin_loss": None if loss is None else round(loss, 4)}
            if loss is not None and loss > max_margin_loss:
                margins.append(entry)
            elif old.value != measurement.value and not (math.isnan(old.value) and math.isnan(measurement.value)):
                changed.append(entry)
    spread, spread_regressions = spread_changes(base, new, max_margin_loss)
    repeated_in_both = {item["test"] for item in spread}
    timing = timing_changes(base, new)
    late = [entry for entry in timing if entry["base_overruns"] == 0 < entry["new_overruns"]] if judge_timing else []
    return {"base_tests": len(base), "new_tests": len(new), "regressed": regressed, "still_failing": still_failing,
            "fixed": fixed,
            # a seed one run had and the other not, of a test both repeated, is in its spread line instead
            "added": sorted(t for t in set(new) - set(base) if new[t].repeat_of not in repeated_in_both),
            "gone": sorted(t for t in set(base) - set(new) if base[t].repeat_of not in repeated_in_both),
            "spread": spread, "spread_regressions": spread_regressions,
            "newly_skipped": newly_skipped, "measurements_compared": compared, "max_margin_loss": max_margin_loss,
            "margin_regressions": margins, "changed": changed, "timing": timing, "timing_regressions": late,
            "inputs_changed": input_changes(base_facts or {}, new_facts or {}, base, new),
            "inputs_known": bool(base_facts) and bool(new_facts), "unverified": unverified(base, new),
            "passed": not regressed and not margins and not late and not spread_regressions}


def _passed_entries(run: dict[str, Case]) -> dict[str, list[str]]:
    """Each spec entry a passing test of `run` verified -> those tests."""
    entries: dict[str, list[str]] = {}
    for test_id, case in run.items():
        if case.outcome == "passed":
            for entry in case.verifies:
                entries.setdefault(entry, []).append(test_id)
    return entries


def unverified(base: dict[str, Case], new: dict[str, Case]) -> list[dict]:
    """The spec entries a passing test verified in `base` and none in `new` and no failing one either (a failure
    is a regression already): each with the base run's tests and what became of them."""
    before, after = _passed_entries(base), _passed_entries(new)
    failing = {entry for case in new.values() if case.failed for entry in case.verifies}
    return [{"entry": entry, "tests": [{"test": test_id, "now": new[test_id].outcome if test_id in new else "gone",
                                        "reason": new[test_id].message if test_id in new else ""}
                                       for test_id in tests]}
            for entry, tests in sorted(before.items()) if entry not in after and entry not in failing]


def spread_changes(base: dict[str, Case], new: dict[str, Case], max_margin_loss: float) -> tuple[list, list]:
    """For each test both runs repeated over seeds: per measurement, the median value and the median and worst
    margin (as a share of the limits' scale) over each run's seeds. Returns (every such entry, the regressions:
    a median margin that lost more than `max_margin_loss`, judged only where the runs' seeds differ)."""
    groups = [_by_repeated_test(run) for run in (base, new)]
    entries, regressions = [], []
    for test, new_cases in groups[1].items():
        base_cases = groups[0].get(test)
        if base_cases is None:
            continue
        same_seeds = {c.seed for c in base_cases} == {c.seed for c in new_cases}
        names = dict.fromkeys(name for case in new_cases for name in case.measurements)
        for name in names:
            samples = [[c.measurements[name] for c in cases if name in c.measurements]
                       for cases in (base_cases, new_cases)]
            if not all(samples):
                continue
            entry = {"test": test, "name": name, "unit": samples[1][0].unit,
                     "base_seeds": len(base_cases), "new_seeds": len(new_cases), "same_seeds": same_seeds}
            for run, measurements in zip(("base", "new"), samples):
                fractions = [f for m in measurements if (f := m.margin_fraction) is not None and not math.isnan(f)]
                entry[f"{run}_median"] = statistics.median(m.value for m in measurements)
                entry[f"{run}_median_margin_share"] = statistics.median(fractions) if fractions else None
                entry[f"{run}_worst_margin_share"] = min(fractions) if fractions else None
            shares = entry["base_median_margin_share"], entry["new_median_margin_share"]
            entry["median_margin_loss"] = None if None in shares else round(shares[0] - shares[1], 4)
            entries.append(entry)
            if not same_seeds and entry["median_margin_loss"] is not None \
                    and entry["median_margin_loss"] > max_margin_loss:
                regressions.append(entry)
    return entries, regressions


def _by_repeated_test(run: dict[str, Case]) -> dict[str, list[Case]]:
    """The cases of each repeated test (the test id it repeats -> its seeds' cases)."""
    groups: dict[str, list[Case]] = {}
    for case in run.values():
        if case.repeat_of is not None:
            groups.setdefault(case.repeat_of, []).append(case)
    return groups


def timing_changes(base: dict[str, Case], new: dict[str, Case]) -> list[dict]:
    """Each test both runs ran on a real clock (a virtual one has no lateness): its loop's overruns and jitter
    (p99, max, in µs) before and after."""
    entries = []
    for test_id, case in new.items():
        before = base.get(test_id)
        if before is None or "jitter_p99_us" not in before.timing or "jitter_p99_us" not in case.timing:
            continue
        entry = {"test": test_id}
        for run, timing in (("base", before.timing), ("new", case.timing)):
            entry.update({f"{run}_overruns": int(timing.get("overruns", 0)),
                          f"{run}_jitter_p99_us": timing["jitter_p99_us"],
                          f"{run}_jitter_max_us": timing.get("jitter_max_us", math.nan)})
        entries.append(entry)
    return entries


def describe(result: dict, base_path: str, new_path: str) -> str:
    """The comparison for a person: regressions first, then the rest in one line each."""
    lines = [f"{base_path} ({result['base_tests']} tests) -> {new_path} ({result['new_tests']} tests)"]
    lines += [f"differs   {item['what']}: {item['base'] or '(none)'} -> {item['new'] or '(none)'}"
              for item in result["inputs_changed"]]
    if not result["inputs_known"]:
        lines.append("differs   unknown: a run's JUnit file does not record what it tested (its files, "
                     "testbench, seed): written before hil recorded them, or without hil's pytest plugin")
    for item in result["regressed"]:
        lines.append(f"REGRESSED {item['test']}: {item['was'] or 'absent'} -> {item['now']}"
                     + (f": {item['message']}" if item["message"] else ""))
    for item in result["margin_regressions"]:
        lines.append(f"MARGIN    {item['test']}: {_change(item)}, lost {100 * item['margin_loss']:.1f} % of "
                     f"its limits' scale (allowed {100 * result['max_margin_loss']:g} %)")
    for item in result["spread_regressions"]:
        lines.append(f"SPREAD    {item['test']}: {_spread(item)}: the median lost "
                     f"{100 * item['median_margin_loss']:.1f} % (allowed {100 * result['max_margin_loss']:g} %)")
    for item in result["timing_regressions"]:
        lines.append(f"TIMING    {item['test']}: the loop overran {item['new_overruns']} times (none before); "
                     f"jitter p99 {item['base_jitter_p99_us']:.0f} -> {item['new_jitter_p99_us']:.0f} µs")
    lines += [f"failing   {item['test']} (failed before too)" + (f": {item['message']}" if item["message"] else "")
              for item in result["still_failing"]]
    lines += [f"fixed     {test}" for test in result["fixed"]]
    lines += [f"skipped   {item['test']} (passed before): {item['reason']}" for item in result["newly_skipped"]]
    lines += [f"unchecked {item['entry']}: verified before by "
              + ", ".join(f"{t['test']} (now {t['now']}{': ' + t['reason'] if t['reason'] else ''})"
                          for t in item["tests"]) for item in result["unverified"]]
    lines += [f"changed   {item['test']}: {_change(item)}" for item in result["changed"]]
    lines += [f"spread    {item['test']}: {_spread(item)}" for item in result["spread"]
              if item not in result["spread_regressions"]]
    lines += [f"new       {test}" for test in result["added"]] + [f"gone      {test}" for test in result["gone"]]
    if result["timing"]:
        lines.append(_timing_summary(result["timing"]))
    verdict = "no regressions" if result["passed"] else (
        f"{len(result['regressed'])} test(s), {len(result['margin_regressions'])} measurement(s), "
        f"{len(result['spread_regressions'])} spread(s) and {len(result['timing_regressions'])} loop timing(s) "
        "regressed")
    lines.append(f"{result['measurements_compared']} measurements compared; {verdict}")
    if not result["passed"] and result["inputs_known"] and not result["inputs_changed"]:
        lines.append("both runs tested the same build with the same files, testbench and seed: what regressed "
                     "comes from the bench (its timing, a device, the PC), not from the firmware")
    return "\n".join(lines)


def _timing_summary(timing: list[dict]) -> str:
    """One line for the loop timing of every test both runs ran on a real clock: the worst and the total."""
    def worst(key):
        return max(item[key] for item in timing)

    def total(key):
        return sum(item[key] for item in timing)
    return (f"timing    {len(timing)} real-clock test(s): jitter p99 at worst {worst('base_jitter_p99_us'):.0f} -> "
            f"{worst('new_jitter_p99_us'):.0f} µs, max {worst('base_jitter_max_us'):.0f} -> "
            f"{worst('new_jitter_max_us'):.0f} µs; overruns {total('base_overruns')} -> {total('new_overruns')}")


def _spread(item: dict) -> str:
    unit = f" {item['unit']}" if item["unit"] else ""
    text = (f"{item['name']} median {readable(item['base_median'])} -> {readable(item['new_median'])}{unit} over "
            f"{item['base_seeds']} -> {item['new_seeds']} seeds")
    if item["median_margin_loss"] is not None:
        text += (f"; margin, median {_share(item['base_median_margin_share'])} -> "
                 f"{_share(item['new_median_margin_share'])}, worst {_share(item['base_worst_margin_share'])} -> "
                 f"{_share(item['new_worst_margin_share'])} of its limits' scale")
    return text


def _share(value: float) -> str:
    return f"{100 * value:.1f} %"


def _change(item: dict) -> str:
    unit = f" {item['unit']}" if item["unit"] else ""
    text = f"{item['name']} {readable(item['base'])} -> {readable(item['new'])}{unit} (limits {item['limits']}"
    if item["base_margin"] is not None and item["new_margin"] is not None:
        text += f"; margin {readable(item['base_margin'])} -> {readable(item['new_margin'])}"
    return text + ")"


def readable(value: float) -> str:
    """A number as a person reads it: 6 significant digits, without float dust (80 - 80 is 1.7e-13, not 0)."""
    return f"{round(value, 9) + 0.0:.6g}"


def check_margin_loss(share: float) -> float:
    """`--max-margin-loss`, which `hil compare` and `hil trend` take: a share of the limits' scale."""
    if not 0 <= share <= 1:
        raise HilError(f"--max-margin-loss {share:g}: expected a share of the limits' scale, 0 to 1 (0.1 is 10 %)")
    return share


def cmd_compare(args) -> int:
    check_margin_loss(args.max_margin_loss)
    result = compare(load_run(args.base), load_run(args.new), args.max_margin_loss, not args.ignore_timing,
                     load_facts(args.base), load_facts(args.new))
    print(describe(result, args.base, args.new))
    if args.json:
        print(json.dumps(result))
    return 0 if result["passed"] else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare", help="what changed between two runs: outcomes, measurement margins and loop timing",
        description="Compare two runs' JUnit XML (files, or report folders with junit.xml): tests that now fail, "
                    "measurements whose margin to their limits shrank by more than --max-margin-loss of the "
                    "limits' scale, and real-clock tests whose loop kept time and now overruns. Exit 0: no "
                    "regressions; 1: some; 2: a file that is not a JUnit report.")
    parser.add_argument("base", help="the run to compare against, e.g. a saved reports/baseline")
    parser.add_argument("new", help="the run to judge, e.g. reports/latest")
    parser.add_argument("--max-margin-loss", type=float, default=DEFAULT_MAX_MARGIN_LOSS, metavar="SHARE",
                        help=f"a margin may shrink by this share of its limits' scale (default "
                             f"{DEFAULT_MAX_MARGIN_LOSS:g}, i.e. {100 * DEFAULT_MAX_MARGIN_LOSS:g} %%)")
    parser.add_argument("--ignore-timing", action="store_true",
                        help="list real-clock tests whose loop now overruns, without counting them as regressions "
                             "(for runs on different PCs, or a busy one)")
    parser.add_argument("--json", action="store_true", help="also print the comparison as JSON, as the last line")
    parser.set_defaults(func=cmd_compare)
