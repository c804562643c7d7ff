"""`hil trend`: a series of runs' margins that drift, measurements at an edge, and tests that flake."""
import json
import re
import subprocess
import sys
from xml.sax.saxutils import quoteattr

import pytest

from hil.errors import HilError
from hil.report.compare import load_run
from hil.report.measurements import Measurement
from hil.report.trend import describe, trend
from hil.rig import PROJECT_ROOT

TEST = "tests.bms.test_protections::test_cell_overvoltage_opens_contactors"
FAILURE = '<failure message="AssertionError: tripped below 4.24 V">trace</failure>'


def _run(tmp_path, name: str, reaction_ms: float | None = 230.0, high_ms: float = 320.0, firmware: str = "1.2.0",
         body: str = "", started: str | None = None):
    """A run's junit.xml in report folder `name`: the OV test, its reaction against `high_ms`, the build said, and
    when it started (`started`, ISO 8601) if given."""
    props = [("hil:firmware", firmware)]
    if reaction_ms is not None:
        props += Measurement("cell_ov_reaction", reaction_ms, high=high_ms, unit="ms").properties()
    properties = "".join(f"<property name={quoteattr(k)} value={quoteattr(str(v))}/>" for k, v in props)
    classname, test = TEST.split("::")
    folder = tmp_path / name
    folder.mkdir()
    (folder / "junit.xml").write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest"'
        + (f' timestamp="{started}"' if started else "") + ">"
        f'<testcase classname="{classname}" name="{test}" time="1.0"><properties>{properties}</properties>{body}'
        "</testcase></testsuite></testsuites>")
    return folder


def _series(tmp_path, reactions_ms, **kwargs):
    tmp_path.mkdir(exist_ok=True)
    return [(f"night-{i}", load_run(_run(tmp_path, f"night-{i}", ms, **kwargs))) for i, ms in enumerate(reactions_ms)]


def test_a_margin_that_falls_night_after_night_drifts_though_each_night_passes(tmp_path):
    """Against 320 ms: 200 -> 300 ms over six runs. No two neighbours differ by 10 % of the limit (compare would
    pass each night), but the last third's median margin is 26 % of the limit below the first third's."""
    result = trend(_series(tmp_path, [200, 205, 210, 240, 270, 300]))
    assert [item["name"] for item in result["drift"]] == ["cell_ov_reaction"] and not result["passed"]
    assert result["drift"][0]["margin_loss"] == pytest.approx((117.5 - 35) / 320)
    text = describe(result)
    assert (f"DRIFT     {TEST}: cell_ov_reaction margin 37.5 % -> 6.2 % of its limits' scale over 6 runs, lost "
            "25.8 % (allowed 10.0 %); values 200, 205, 210, 240, 270, 300 ms; limits [, 320] ms") in text, text
    assert "1 drifting, 0 at an edge, 0 flaky" in text


def test_noise_without_a_trend_is_not_drift(tmp_path):
    result = trend(_series(tmp_path, [200, 260, 205, 255, 210, 250]))
    assert result["drift"] == [] and result["passed"], describe(result)


def test_a_margin_at_its_limit_in_the_last_run_is_at_an_edge(tmp_path):
    tight = trend(_series(tmp_path / "a", [310, 318]))
    assert [item["values"][-1] for item in tight["edge"]] == [318]
    assert "EDGE      " + TEST + ": cell_ov_reaction = 318 ms in [, 320] ms in the last run, margin 0.6 % of its " \
           "limits' scale" in describe(tight)
    outside = trend(_series(tmp_path / "b", [310, 330]))
    assert "outside its limits" in describe(outside)
    broken = trend(_series(tmp_path / "c", [310, float("nan")]))
    assert "= nan ms in [, 320] ms in the last run, outside its limits" in describe(broken)
    gone = trend(_series(tmp_path / "d", [318]) + _series(tmp_path / "e", [None]))
    assert gone["edge"] == [], "a measurement the last run no longer has is not at an edge now"


def test_only_the_runs_since_the_limits_changed_count(tmp_path):
    """A spec that widened the limit from 240 to 320 ms: the margins before measured against another limit."""
    before = _series(tmp_path / "a", [150, 150, 150], high_ms=240)
    after = _series(tmp_path / "b", [300, 300, 300], high_ms=320)
    result = trend(before + after)
    assert result["drift"] == [] and result["table"][0]["runs"] == [3, 4, 5], result["table"]


def test_a_test_that_passes_and_fails_on_one_build_is_flaky_and_a_new_build_is_not(tmp_path):
    runs = [(name, load_run(_run(tmp_path, name, firmware=build, body=body)))
            for name, build, body in (("n1", "1.2.0", ""), ("n2", "1.2.0", FAILURE), ("n3", "1.2.0", ""),
                                      ("n4", "1.3.0", FAILURE), ("n5", "1.4.0", ""))]
    result = trend(runs)
    assert [(item["firmware"], item["failed_runs"], item["runs"]) for item in result["flaky"]] == [("1.2.0", [1], 3)]
    assert (f"FLAKY     {TEST}: failed in run(s) 2 of 3 runs of firmware 1.2.0, passed in the others: "
            "AssertionError: tripped below 4.24 V") in describe(result)


def _hil(*args):
    return subprocess.run([sys.executable, "-m", "hil", "trend", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)


def test_the_command_exits_1_on_a_drift_prints_json_last_and_plots_what_it_flags(tmp_path):
    runs = [_run(tmp_path, f"night-{i}", ms) for i, ms in enumerate([200, 205, 210, 240, 270, 300])]
    result = _hil(*runs, "--json", "--html", tmp_path / "trend")
    assert result.returncode == 1, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [item["name"] for item in summary["drift"]] == ["cell_ov_reaction"] and summary["measurements"] == 1
    page = (tmp_path / "trend" / "index.html").read_text()
    assert "DRIFT cell_ov_reaction" in page and (tmp_path / "trend" / "trend-0.png").stat().st_size > 1000
    steady = _hil(*[_run(tmp_path, f"steady-{i}", 230) for i in range(3)])
    assert steady.returncode == 0 and "3 runs, 1 measurements: nothing flagged" in steady.stdout, steady.stdout


def test_runs_are_taken_in_the_order_they_ran_not_the_order_given(tmp_path):
    """A glob sorts night-10 before night-9: the JUnit timestamps put the drift back in order, and say so.
    --as-given keeps the order given (here: no drift, as the worst night comes first)."""
    reactions = {f"night-{i}": (200 + 20 * (i - 8), f"2026-11-{10 + i:02d}T02:00:00+00:00") for i in (8, 9, 10, 11)}
    runs = sorted(_run(tmp_path, name, ms, started=at) for name, (ms, at) in reactions.items())
    assert [run.name for run in runs] == ["night-10", "night-11", "night-8", "night-9"]
    result = _hil(*runs, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "runs taken in the order they ran (their JUnit timestamps), not as given: " in result.stdout
    assert f"{tmp_path / 'night-8'}, {tmp_path / 'night-9'}, {tmp_path / 'night-10'}" in result.stdout
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert [item["name"] for item in summary["drift"]] == ["cell_ov_reaction"]
    given = _hil(*runs, "--as-given", "--json")
    assert "not as given" not in given.stdout and json.loads(given.stdout.strip().splitlines()[-1])["drift"] == []


def test_a_run_without_a_timestamp_keeps_the_order_given(tmp_path):
    runs = [_run(tmp_path, "b", 300, started="2026-11-10T02:00:00+00:00"), _run(tmp_path, "a", 200)]
    result = _hil(*runs)
    assert "not as given" not in result.stdout, result.stdout


@pytest.mark.parametrize("args,error", [
    (["one"], r"1 run given; expected two or more, oldest first"),
    (["one", "one"], r"given twice; expected each run once"),
    (["one", "missing"], r"missing: no such file; expected a JUnit XML file or a report folder")])
def test_bad_input_is_named_and_exits_2(tmp_path, args, error):
    _run(tmp_path, "one")
    result = _hil(*[tmp_path / a for a in args])
    assert result.returncode == 2 and "hil trend: error:" in result.stderr, result.stderr
    assert re.search(error, result.stderr), result.stderr


def test_fewer_than_two_runs_is_refused_in_the_library_too(tmp_path):
    with pytest.raises(HilError, match="1 run given"):
        trend(_series(tmp_path, [230]))
