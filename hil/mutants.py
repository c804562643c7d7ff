"""`hil mutants`: how many seeded firmware bugs does the suite catch?

Runs the BMS suite (`tests/bms/`) against the clean emulated firmware, then once per seeded bug
(`hil/sim/bms_firmware.py` BUGS), each as its own pytest run with `--set dut.bugs=[...]`, and reads each
run's JUnit XML. A bug is killed when at least one test fails. The kill rate is the suite's power. Each bug is
listed with the tests that caught it and the spec entries those tests verify (`@pytest.mark.verifies`): the
requirements that carry that power.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hil.errors import ConfigError
from hil.report.junit import read_junit
from hil.rig import DEFAULT_RIG, PROJECT_ROOT, load_rig, preflight
from hil.sim.bms_firmware import BUGS, check_bugs

SUITE = PROJECT_ROOT / "tests" / "bms"
RUN_TIMEOUT_S = 1200


def _failed_tests(junit: Path) -> tuple[int, list[str], list[str]]:
    """How many tests the run has, the failing ones as `module::name` (a test that fails and then errors in
    teardown is one), and the spec entries those tests verify (`@pytest.mark.verifies`): the requirements that
    caught the bug."""
    cases = read_junit(junit)
    failed, entries = [], {}
    for test_id, case in cases.items():
        if case.failed:
            classname, _, name = test_id.partition("::")
            failed.append(f"{classname.rsplit('.', 1)[-1]}::{name}")
            entries.update(dict.fromkeys(case.verifies))
    return len(cases), failed, list(entries)


def suite_files() -> list[Path]:
    """The suite's files, quick protection and communication checks first: with `-x`, most bugs are then
    caught before the minutes-long balancing and SOC tests start."""
    quick_first = ("test_protections.py", "test_communication.py")
    rank = {name: i for i, name in enumerate(quick_first)}
    return sorted(SUITE.glob("test_*.py"), key=lambda p: (rank.get(p.name, len(quick_first)), p.name))


def run_suite(rig: str, overrides: list[str], workdir: Path, label: str, workers: int,
              select: str | None = None, first_failure: bool = False) -> tuple[int, list[str], list[str]]:
    junit = workdir / f"{label}.xml"
    cmd = [sys.executable, "-m", "pytest", *map(str, suite_files()), "--rig", rig, "-q", "-p", "no:cacheprovider",
           f"--junitxml={junit}", "-o", "junit_family=xunit1"]
    if workers > 1:
        cmd += ["-n", str(workers)]
    if select:
        cmd += ["-k", select]
    if first_failure:
        cmd += ["-x"]  # a bug is killed by its first failing test; the rest of the run adds nothing
    for assignment in overrides:
        cmd += ["--set", assignment]
    result = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if not junit.is_file():
        raise ConfigError(f"suite run '{label}' wrote no JUnit XML (exit {result.returncode}):\n"
                          f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return _failed_tests(junit)


def cmd_mutants(args) -> int:
    rig = load_rig(args.rig, args.overrides)
    if "seeded_bugs" not in rig.capabilities:
        raise ConfigError(f"{rig.path}: rig '{rig.name}' has no emulated firmware with seeded bugs "
                          "(capability 'seeded_bugs'); use rigs/sim.toml")
    preflight(rig)  # a bad rig would fail every run alike, and each failure would count as a bug caught
    check_bugs(args.bug or [], "hil mutants --bug")
    bugs = args.bug or sorted(BUGS)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hil-mutants-") as tmp:
        workdir = Path(tmp)
        if args.skip_clean:
            clean_failed = None
            print("clean firmware: not run (--skip-clean: it passed this suite already)", flush=True)
        else:
            n_tests, clean_failed, _ = run_suite(args.rig, args.overrides, workdir, "clean", args.workers,
                                                 args.select)
            _check_selected(n_tests, args.select)
            print(f"clean firmware: {n_tests - len(clean_failed)}/{n_tests} passed or skipped", flush=True)
        for failed in clean_failed or ():
            print(f"  FAILED on clean firmware: {failed}")
        if clean_failed:
            # A test that fails anyway would "catch" every bug: the kill rate would measure nothing.
            print("stopped: the suite must pass on the clean firmware before bugs are seeded", flush=True)
            if args.json:
                print(json.dumps({"bugs": 0, "killed": 0, "kill_rate": None, "clean_passed": False,
                                  "clean_failed": clean_failed, "wall_s": round(time.perf_counter() - start, 1)}))
            return 1
        for bug in bugs:
            n_tests, failed, entries = run_suite(args.rig, args.overrides + [f'dut.bugs=["{bug}"]'], workdir, bug,
                                                 args.workers, args.select, first_failure=not args.all_failures)
            _check_selected(n_tests, args.select)   # without the clean run, the first bug's run finds out
            rows.append((bug, failed, entries))
            verdict = "killed" if failed else "SURVIVED"
            print(f"{bug:28s} {verdict:9s} {', '.join(failed[:4])}{' ...' if len(failed) > 4 else ''}"
                  + (f" [{', '.join(entries)}]" if entries else ""), flush=True)
    killed = [bug for bug, failed, _ in rows if failed]
    summary = {"bugs": len(rows), "killed": len(killed), "kill_rate": round(len(killed) / max(1, len(rows)), 4),
               "clean_passed": None if clean_failed is None else not clean_failed,   # None: --skip-clean
               "survivors": [bug for bug, failed, _ in rows if not failed],
               "wall_s": round(time.perf_counter() - start, 1),
               "caught_by": {bug: failed for bug, failed, _ in rows},
               # the spec entries the catching tests verify: which requirements carry the suite's power
               "caught_by_requirement": {bug: entries for bug, _, entries in rows}}
    clean = {True: "passes", False: "FAILS", None: "not run"}[summary["clean_passed"]]
    print(f"kill rate {summary['kill_rate']:.2f} ({len(killed)}/{len(rows)}), clean firmware {clean}, "
          f"{summary['wall_s']} s")
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["clean_passed"] is not False and not summary["survivors"] else 1


def _check_selected(n_tests: int, select: str | None) -> None:
    if n_tests == 0:
        raise ConfigError(f"no test of {SUITE.relative_to(PROJECT_ROOT)} matches -k {select!r}")


def register(subparsers) -> None:
    parser = subparsers.add_parser("mutants", help="measure the suite's power: run it once per seeded firmware bug")
    parser.add_argument("--rig", default=str(DEFAULT_RIG), help="an emulated rig (default: rigs/sim.toml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--bug", action="append", help="only this bug (repeatable); default: all")
    parser.add_argument("-k", dest="select", metavar="EXPR", help="only suite tests matching EXPR (pytest -k)")
    parser.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers per run (default 2)")
    parser.add_argument("--all-failures", action="store_true",
                        help="run the whole suite per bug and list every test that catches it (slower; by "
                             "default a bug's run stops at its first failing test)")
    parser.add_argument("--skip-clean", action="store_true",
                        help="do not run the clean firmware first: it has passed this suite on this rig already "
                             "(as in CI, after `hil run`). Without that pass, a test that fails anyway would count "
                             "as catching every bug")
    parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    parser.set_defaults(func=cmd_mutants)
