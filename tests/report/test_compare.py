"""`hil compare`: regressions between two runs' JUnit XML, in outcomes and in measurement margins."""
import json
import subprocess
import sys

import pytest

from hil.errors import HilError
from hil.report.compare import compare, describe, load_facts, load_run
from hil.report.junit import read_junit
from hil.rig import PROJECT_ROOT


def _junit(*cases: str) -> str:
    return f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{"".join(cases)}</testsuite></testsuites>'


def _case(name: str, body: str = "", reaction_ms: float | None = None, high_ms: float = 320) -> str:
    props = ""
    if reaction_ms is not None:
        props = ("<properties>"
                 f'<property name="measure:cell_ov_reaction" value="{reaction_ms}"/>'
                 '<property name="unit:cell_ov_reaction" value="ms"/>'
                 f'<property name="high:cell_ov_reaction" value="{high_ms}"/>'
                 f'<property name="margin:cell_ov_reaction" value="{high_ms - reaction_ms}"/></properties>')
    return f'<testcase classname="tests.bms.test_protections" name="{name}" time="1.0">{props}{body}</testcase>'


FAILED = '<failure message="AssertionError: tripped below 4.24 V&#10;more text">trace</failure>'
SKIPPED = '<skipped type="pytest.skip" message="the spec states no [protections.cell_ut]"/>'


def _write(tmp_path, name, *cases):
    path = tmp_path / name
    path.write_text(_junit(*cases))
    return path


def test_outcome_changes_are_sorted_into_regressed_fixed_skipped_new_and_gone(tmp_path):
    base = load_run(_write(tmp_path, "base.xml", _case("test_a"), _case("test_b", FAILED), _case("test_c"),
                           _case("test_gone"), _case("test_d", FAILED)))
    new = load_run(_write(tmp_path, "new.xml", _case("test_a", FAILED), _case("test_b"), _case("test_c", SKIPPED),
                          _case("test_new", FAILED), _case("test_d", FAILED)))
    result = compare(base, new)
    assert [(item["test"].split("::")[1], item["was"], item["now"]) for item in result["regressed"]] == [
        ("test_a", "passed", "failed"), ("test_new", None, "failed")]
    assert result["regressed"][0]["message"] == "AssertionError: tripped below 4.24 V"
    assert result["fixed"] == ["tests.bms.test_protections::test_b"]
    assert [item["test"] for item in result["still_failing"]] == ["tests.bms.test_protections::test_d"]
    assert result["newly_skipped"] == [{"test": "tests.bms.test_protections::test_c",
                                        "reason": "the spec states no [protections.cell_ut]"}]
    assert result["added"] == ["tests.bms.test_protections::test_new"]
    assert result["gone"] == ["tests.bms.test_protections::test_gone"]
    assert result["passed"] is False


def _verifying(name: str, entries: str, body: str = "") -> str:
    return (f'<testcase classname="tests.bms.test_sleep" name="{name}" time="1.0"><properties>'
            f'<property name="hil:verifies" value="{entries}"/></properties>{body}</testcase>')


def test_a_spec_entry_no_passing_test_verifies_any_more_is_listed_not_judged(tmp_path):
    """[sleep] passed before and its test now skips: the requirement went unchecked, which the verdicts alone do
    not show. An entry whose test now fails is a regression, not listed again; one still verified by another test
    is not listed."""
    base = load_run(_write(tmp_path, "base.xml", _verifying("test_sleeps", "sleep,protections.cell_uv"),
                           _verifying("test_uv", "protections.cell_uv"), _verifying("test_ot", "protections.cell_ot"),
                           _verifying("test_hb", "heartbeat")))
    new = load_run(_write(tmp_path, "new.xml", _verifying("test_sleeps", "sleep,protections.cell_uv", SKIPPED),
                          _verifying("test_uv", "protections.cell_uv"),
                          _verifying("test_ot", "protections.cell_ot", FAILED)))
    result = compare(base, new)
    assert result["unverified"] == [
        {"entry": "heartbeat", "tests": [{"test": "tests.bms.test_sleep::test_hb", "now": "gone", "reason": ""}]},
        {"entry": "sleep", "tests": [{"test": "tests.bms.test_sleep::test_sleeps", "now": "skipped",
                                      "reason": "the spec states no [protections.cell_ut]"}]}]
    assert [item["test"] for item in result["regressed"]] == ["tests.bms.test_sleep::test_ot"]
    text = describe(result, "base.xml", "new.xml")
    assert ("unchecked sleep: verified before by tests.bms.test_sleep::test_sleeps (now skipped: the spec states "
            "no [protections.cell_ut])") in text
    assert "unchecked heartbeat: verified before by tests.bms.test_sleep::test_hb (now gone)" in text


@pytest.mark.parametrize("new_ms,regressed", [(250, False), (261, False), (263, True), (150, False)])
def test_a_margin_that_shrinks_by_more_than_the_allowed_share_is_a_regression(tmp_path, new_ms, regressed):
    """Against a 320 ms limit, 230 ms leaves 90 ms; a loss of more than 10 % of 320 ms (32 ms) regresses,
    though the test still passes."""
    base = load_run(_write(tmp_path, "base.xml", _case("test_ov", reaction_ms=230)))
    new = load_run(_write(tmp_path, "new.xml", _case("test_ov", reaction_ms=new_ms)))
    result = compare(base, new, max_margin_loss=0.10)
    assert result["measurements_compared"] == 1 and not result["regressed"]
    assert bool(result["margin_regressions"]) is regressed and result["passed"] is not regressed
    entry = (result["margin_regressions"] or result["changed"])[0]
    assert entry["margin_loss"] == pytest.approx((new_ms - 230) / 320, abs=1e-4)
    assert (entry["base"], entry["new"], entry["unit"]) == (230, new_ms, "ms")


def test_changed_limits_are_listed_but_not_judged(tmp_path):
    """With another limit the two margins measure different things: the change is shown, not called a loss."""
    base = load_run(_write(tmp_path, "base.xml", _case("test_ov", reaction_ms=230, high_ms=320)))
    new = load_run(_write(tmp_path, "new.xml", _case("test_ov", reaction_ms=300, high_ms=500)))
    result = compare(base, new)
    assert result["passed"] and result["changed"][0]["margin_loss"] is None


@pytest.mark.parametrize("content,error", [
    (None, r"missing.xml: no such file; expected a JUnit XML file or a report folder"),
    ("<testsuites><testsuite>", r"bad.xml: not XML \(no element found: line 1"),
    ("<html><body/></html>", r"bad.xml: no <testcase> in it; expected a JUnit XML file"),
    (_junit(_case("test_ov", reaction_ms=230).replace('value="230"', 'value="fast"')),
     r"bad.xml: test tests.bms.test_protections::test_ov: a measurement property is not a number"),
    (_junit(_case("test_ov", '<properties><property name="timing:overruns" value="many"/></properties>')),
     r"bad.xml: test tests.bms.test_protections::test_ov: timing property 'timing:overruns' = 'many' is not a number"),
])
def test_a_file_that_is_not_a_junit_report_is_named(tmp_path, content, error):
    path = tmp_path / ("missing.xml" if content is None else "bad.xml")
    if content is not None:
        path.write_text(content)
    with pytest.raises(HilError, match=error):
        load_run(path)


def test_a_test_written_twice_is_one_case_failing_if_either_entry_fails(tmp_path):
    """pytest writes a test that fails and then errors in teardown twice; hil mutants and hil compare read it
    as one failing test, whichever entry comes last."""
    cases = read_junit(_write(tmp_path, "twice.xml", _case("test_a", FAILED), _case("test_a"),
                              _case("test_b"), _case("test_b", '<error message="teardown: bench not safe"/>')))
    assert list(cases) == ["tests.bms.test_protections::test_a", "tests.bms.test_protections::test_b"]
    assert cases["tests.bms.test_protections::test_a"].outcome == "failed"
    assert cases["tests.bms.test_protections::test_b"].message == "teardown: bench not safe"


def test_a_report_folder_without_junit_is_named(tmp_path):
    with pytest.raises(HilError, match=r"no such file \(no junit.xml in it\)"):
        load_run(tmp_path)


def _hil(*args):
    return subprocess.run([sys.executable, "-m", "hil", *args], capture_output=True, text=True, timeout=600,
                          cwd=PROJECT_ROOT)


@pytest.mark.slow
def test_a_slower_firmware_that_still_passes_is_caught_between_two_runs(tmp_path):
    """Two real `hil run`s of the OV test: a longer debounce still passes the spec, but eats its margin."""
    base, new = tmp_path / "base", tmp_path / "new"
    for report, debounce_ms in ((base, 200), (new, 290)):
        run = _hil("run", "--report", str(report), "--set", f"dut.calibration.ov_debounce_ms={debounce_ms}",
                   "-k", "test_cell_overvoltage_opens_contactors")
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr
    same = _hil("compare", str(base), str(base))
    assert same.returncode == 0 and "no regressions" in same.stdout, same.stdout + same.stderr
    result = _hil("compare", str(base), str(new), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [item["name"] for item in summary["margin_regressions"]] == ["cell_ov_reaction"], summary
    assert "MARGIN    tests.bms.test_protections::test_cell_overvoltage_opens_contactors: cell_ov_reaction" in (
        result.stdout)
    # Both runs say what they tested: the same build and files, one setting changed.
    assert summary["inputs_known"] and summary["inputs_changed"] == [
        {"what": "--set", "base": "dut.calibration.ov_debounce_ms=200", "new": "dut.calibration.ov_debounce_ms=290"}]
    assert "differs   --set: dut.calibration.ov_debounce_ms=200 -> dut.calibration.ov_debounce_ms=290" in result.stdout


def _timed(name: str, overruns: int, p99_us: float | None, max_us: float = 900.0) -> str:
    """A test case with its loop's timing properties, as the plugin writes them (no jitter on a virtual clock)."""
    props = f'<property name="timing:ticks" value="5000"/><property name="timing:overruns" value="{overruns}"/>'
    if p99_us is not None:
        props += (f'<property name="timing:jitter_p50_us" value="60.5"/>'
                  f'<property name="timing:jitter_p99_us" value="{p99_us}"/>'
                  f'<property name="timing:jitter_max_us" value="{max_us}"/>')
    return (f'<testcase classname="tests.bms.test_soc" name="{name}" time="5.0"><properties>{props}</properties>'
            '</testcase>')


def test_a_real_clock_loop_that_starts_overrunning_is_a_timing_regression(tmp_path):
    """Both tests pass in both runs. test_late's loop kept time before and overran 3 times after: a regression;
    test_busy overran before too, so it is only listed; test_virtual has no jitter (virtual clock): not timed."""
    base = load_run(_write(tmp_path, "base.xml", _timed("test_late", 0, 120.0), _timed("test_busy", 2, 300.0),
                           _timed("test_virtual", 0, None)))
    new = load_run(_write(tmp_path, "new.xml", _timed("test_late", 3, 410.0, 2500.0), _timed("test_busy", 5, 320.0),
                          _timed("test_virtual", 0, None)))
    assert new["tests.bms.test_soc::test_late"].timing["jitter_p99_us"] == 410.0
    result = compare(base, new)
    assert [entry["test"].split("::")[1] for entry in result["timing"]] == ["test_late", "test_busy"]
    assert [entry["test"].split("::")[1] for entry in result["timing_regressions"]] == ["test_late"]
    assert result["timing_regressions"][0]["base_jitter_p99_us"] == 120.0
    assert result["passed"] is False and not result["regressed"] and not result["margin_regressions"]
    ignored = compare(base, new, judge_timing=False)
    assert ignored["passed"] is True and not ignored["timing_regressions"] and len(ignored["timing"]) == 2


def test_compare_prints_the_loop_timing_and_exits_1_on_a_new_overrun(tmp_path):
    base = _write(tmp_path, "base.xml", _timed("test_late", 0, 120.0))
    new = _write(tmp_path, "new.xml", _timed("test_late", 3, 410.0, 2500.0))
    run = [sys.executable, "-m", "hil", "compare", str(base), str(new)]
    result = subprocess.run(run, capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("TIMING    tests.bms.test_soc::test_late: the loop overran 3 times (none before); jitter p99 120 -> "
            "410 µs") in result.stdout
    assert ("timing    1 real-clock test(s): jitter p99 at worst 120 -> 410 µs, max 900 -> 2500 µs; overruns "
            "0 -> 3") in result.stdout
    assert "0 test(s), 0 measurement(s), 0 spread(s) and 1 loop timing(s) regressed" in result.stdout
    ignored = subprocess.run(run + ["--ignore-timing"], capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert ignored.returncode == 0 and "TIMING" not in ignored.stdout and "no regressions" in ignored.stdout


def _run_with_facts(tmp_path, name: str, facts: dict[str, str], firmware: str | None, *cases: str):
    """A JUnit file as the plugin writes one: run-wide facts, and each case the build its BMS said it ran."""
    props = "".join(f'<property name="{key}" value="{value}"/>' for key, value in facts.items())
    said = f'<properties><property name="hil:firmware" value="{firmware}"/></properties>' if firmware else ""
    body = "".join(case.replace('time="1.0">', f'time="1.0">{said}', 1) for case in cases)
    path = tmp_path / name
    path.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest">'
                    f"<properties>{props}</properties>{body}</testsuite></testsuites>")
    return path


FACTS = {"hil:run:testbench": "hil-bms 0.1.0, git 0123456789ab", "hil:run:rig": "bench-3 (rigs/bench-3.toml)",
         "hil:run:seed": "1", "hil:run:file:spec": "fixtures/specs/pack.toml sha256:aaaaaaaaaaaa"}


def test_another_build_and_a_changed_spec_are_named_before_the_verdict(tmp_path):
    base = _run_with_facts(tmp_path, "base.xml", FACTS, "1.2.0", _case("test_a"), _case("test_b"))
    new_facts = FACTS | {"hil:run:file:spec": "fixtures/specs/pack.toml sha256:bbbbbbbbbbbb"}
    new = _run_with_facts(tmp_path, "new.xml", new_facts, "1.3.0", _case("test_a", FAILED), _case("test_b"))
    result = subprocess.run([sys.executable, "-m", "hil", "compare", str(base), str(new), "--json"],
                            capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[1:3] == ["differs   firmware the BMS reported: 1.2.0 (2 tests) -> 1.3.0 (2 tests)",
                          "differs   spec: fixtures/specs/pack.toml sha256:aaaaaaaaaaaa -> "
                          "fixtures/specs/pack.toml sha256:bbbbbbbbbbbb"]
    assert lines[3].startswith("REGRESSED tests.bms.test_protections::test_a")
    summary = json.loads(lines[-1])
    assert [item["what"] for item in summary["inputs_changed"]] == ["firmware the BMS reported", "spec"]
    assert "same build" not in result.stdout


def test_a_regression_with_the_same_build_and_files_is_said_to_be_the_benchs(tmp_path):
    base = load_run(_run_with_facts(tmp_path, "base.xml", FACTS, "1.2.0", _case("test_a")))
    new_path = _run_with_facts(tmp_path, "new.xml", FACTS, "1.2.0", _case("test_a", FAILED))
    result = compare(base, load_run(new_path), base_facts=FACTS, new_facts=FACTS)
    assert result["inputs_known"] and result["inputs_changed"] == [] and not result["passed"]
    assert "both runs tested the same build with the same files" in describe(result, "base", "new")


def test_runs_that_did_not_record_what_they_tested_say_so(tmp_path):
    base = load_run(_write(tmp_path, "base.xml", _case("test_a")))
    new_path = _run_with_facts(tmp_path, "new.xml", FACTS, "1.2.0", _case("test_a"))
    assert load_facts(new_path) == FACTS and load_facts(tmp_path / "base.xml") == {}
    result = compare(base, load_run(new_path), base_facts={}, new_facts=FACTS)
    assert not result["inputs_known"]
    # the build is per test, so it compares still: none said before, 1.2.0 now
    assert result["inputs_changed"] == [{"what": "firmware the BMS reported", "base": "none reported",
                                         "new": "1.2.0 (1 test)"}]
    assert "differs   unknown: a run's JUnit file does not record what it tested" in describe(result, "b", "n")


def _seeded(name: str, seed: int, reaction_ms: float) -> str:
    """One seed of a repeated test, as the plugin writes it under --hil-repeat."""
    return (_case(f"{name}[seed={seed}]", reaction_ms=reaction_ms)
            .replace("<properties>", f'<properties><property name="hil:seed" value="{seed}"/>'
                                     f'<property name="hil:repeat_of" value="tests/bms/test_protections.py::{name}"/>'))


def test_runs_over_other_seeds_are_compared_by_their_median_margin(tmp_path):
    """3 seeds before, 5 others now: no seed in common to compare one by one, so the median margin is judged.
    The reaction rose from about 240 to about 300 ms (limit 320): the median margin lost 18.75 % of the scale."""
    base = load_run(_write(tmp_path, "base.xml",
                           *(_seeded("test_ov", s, r) for s, r in ((1, 230), (2, 240), (3, 250)))))
    new = load_run(_write(tmp_path, "new.xml", *(_seeded("test_ov", s, r) for s, r in
                                                  ((4, 290), (5, 300), (6, 300), (7, 310), (8, 295)))))
    result = compare(base, new)
    assert result["measurements_compared"] == 0 and not result["margin_regressions"]   # no common seed
    assert result["added"] == [] and result["gone"] == []   # the seeds are counted in the spread line instead
    [entry] = result["spread_regressions"]
    assert (entry["base_seeds"], entry["new_seeds"], entry["base_median"], entry["new_median"]) == (3, 5, 240, 300)
    assert entry["median_margin_loss"] == pytest.approx((80 - 20) / 320, abs=1e-4)
    assert entry["new_worst_margin_share"] == pytest.approx(10 / 320)
    assert not result["passed"]
    text = describe(result, "base", "new")
    assert ("SPREAD    tests/bms/test_protections.py::test_ov: cell_ov_reaction median 240 -> 300 ms over 3 -> 5 "
            "seeds; margin, median 25.0 % -> 6.2 %, worst 21.9 % -> 3.1 % of its limits' scale: the median lost "
            "18.8 % (allowed 10 %)") in text, text
    # A median within the allowed loss is listed, not judged.
    steady = load_run(_write(tmp_path, "steady.xml", *(_seeded("test_ov", s, r) for s, r in ((4, 245), (5, 250)))))
    calm = compare(base, steady)
    assert calm["passed"] and not calm["spread_regressions"] and len(calm["spread"]) == 1
    assert "spread    tests/bms/test_protections.py::test_ov: cell_ov_reaction median 240 -> 247.5 ms" in describe(
        calm, "base", "steady")


def test_the_same_seeds_are_judged_one_by_one_not_twice(tmp_path):
    base = load_run(_write(tmp_path, "base.xml", *(_seeded("test_ov", s, 240) for s in (1, 2))))
    new = load_run(_write(tmp_path, "new.xml", *(_seeded("test_ov", s, 300) for s in (1, 2))))
    result = compare(base, new)
    assert len(result["margin_regressions"]) == 2 and result["spread_regressions"] == []
    assert result["spread"][0]["same_seeds"] is True
