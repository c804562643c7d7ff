"""A Ctrl-C or SIGTERM that interrupts a bench test: the test fails as interrupted (never "passed"), its bench
is made safe and the read-back lands in the JUnit XML and the report, the run stops, and the run's records
are written whole whatever signal comes while they are."""
import os
import re
import signal
import sys
import xml.etree.ElementTree as ET

import pytest
from .safety_harness import RIGS, RUNNING_TEST, Harness

from hil.safety import PROPERTY_PREFIX

pytest_plugins = ["pytester"]

# Two tests: the first is interrupted by a SIGINT of its own (`signal.raise_signal`, as a terminal's Ctrl-C
# would arrive), the second must then never run.
INTERRUPTED_MID_BODY = """
    import signal

    def test_interrupted(bench):
        bench.power_up()
        bench.set_load(5.0)
        bench.loop.run_for(0.2)
        signal.raise_signal(signal.{signal})
        bench.loop.run_for(5.0)

    def test_after(bench):
        bench.power_up()
"""


def _testcases(junit) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}


def _properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.iter("property")}


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_test_interrupted_mid_body_fails_as_interrupted_with_its_safe_state_recorded(pytester, signum):
    pytester.makepyfile(test_run=INTERRUPTED_MID_BODY.format(signal=signum))
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(f"--junitxml={junit}", "--hil-report", "report")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(failed=1)   # test_after never ran
    result.stdout.fnmatch_lines([f"*interrupted ({signum} received) at test_run.py:7, t=*",
                                 f"*Interrupted: interrupted ({signum} received)*"])
    cases = _testcases(junit)
    assert list(cases) == ["test_interrupted"]
    failure = cases["test_interrupted"].find("failure")
    assert failure is not None and f"interrupted ({signum} received)" in failure.get("message")
    properties = _properties(cases["test_interrupted"])
    assert properties[f"{PROPERTY_PREFIX}confirmed"] == "True"
    assert properties[f"{PROPERTY_PREFIX}contactors"].startswith("contactors confirmed at t=")
    # The report's index: the test's own section says failed (it said passed), with why.
    index = (pytester.path / "report" / "index.html").read_text()
    assert re.search(r"<h2>test_run.py::test_interrupted <span[^>]*>failed</span></h2>", index)
    assert f"interrupted ({signum} received)" in index and "test_after" not in index


def test_a_signal_while_going_safe_does_not_hide_a_bench_left_unsafe(pytester):
    pytester.makepyfile(test_stuck="""
        import signal

        def test_stuck(bench):
            bench.power_up()
            bench.force_cell(0, bench.spec.protections["cell_ov"].high + 0.02)  # the bug keeps them closed
            bench.bms.wait_state("FAULT", 2.0)
            make_safe = bench.make_safe

            def interrupted_make_safe():
                signal.raise_signal(signal.SIGINT)   # held until the bench's teardown is done
                return make_safe()
            bench.make_safe = interrupted_make_safe

        def test_after(bench):
            pass
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("--set", 'dut.bugs=["contactor_stays_closed"]', f"--junitxml={junit}")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(passed=1, errors=1)   # test_after never ran
    result.stdout.fnmatch_lines(["*bench not confirmed safe after the test: *contactors NOT confirmed*",
                                 "*Interrupted: interrupted (SIGINT received)*"])
    properties = _properties(_testcases(junit)["test_stuck"])
    assert properties[f"{PROPERTY_PREFIX}confirmed"] == "False"


def test_a_signal_while_going_safe_after_a_passing_test_fails_it_and_stops_the_run(pytester):
    pytester.makepyfile(test_ok="""
        import signal

        def test_ok(bench):
            bench.power_up()
            make_safe = bench.make_safe

            def interrupted_make_safe():
                signal.raise_signal(signal.SIGTERM)
                return make_safe()
            bench.make_safe = interrupted_make_safe

        def test_after(bench):
            pass
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(f"--junitxml={junit}")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*interrupted (SIGTERM received) while the bench went safe, which was confirmed*"])
    assert _properties(_testcases(junit)["test_ok"])[f"{PROPERTY_PREFIX}confirmed"] == "True"


def test_a_signal_while_the_run_records_are_written_loses_neither(pytester):
    # A conftest hook runs before the plugin's writers: the Ctrl-C lands just as the records are written.
    pytester.makeconftest("""
        import signal

        def pytest_sessionfinish(session):
            signal.raise_signal(signal.SIGINT)
    """)
    pytester.makepyfile(test_ok="""
        def test_ok(bench):
            bench.power_up()
    """)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess(f"--junitxml={junit}", "--hil-report", "report")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert list(_testcases(junit)) == ["test_ok"]
    assert "test_ok" in (pytester.path / "report" / "index.html").read_text()


@pytest.mark.slow
def test_under_xdist_a_terminals_ctrl_c_waits_for_the_workers_to_report_their_interrupted_tests(tmp_path):
    """A terminal's Ctrl-C reaches pytest-xdist's controller and its workers. The controller used to quit at
    once: the workers' reports never came, and junit.xml had no entry for the tests they were running."""
    test_file = tmp_path / "test_two.py"
    long_running = RUNNING_TEST.replace("600.0", "36000.0")   # virtual time runs ~30x faster than the wall
    test_file.write_text(long_running + long_running.replace("test_runs_until_stopped", "test_second"))
    report, junit = tmp_path / "report", tmp_path / "junit.xml"
    harness = Harness([sys.executable, "-m", "pytest", "-s", "-q", "-p", "no:cacheprovider", "-n", "2",
                       "--rig", str(RIGS["sim"]), "--hil-report", str(report), f"--junitxml={junit}", str(test_file)],
                      own_process_group=True)
    try:
        # The plugin's progress lines (every 5 s of wall time) say both workers are in their tests' bodies.
        for test in ("test_runs_until_stopped", "test_second"):
            harness.wait_for(lambda line: f"::{test}: t=" in line)
        os.killpg(harness.proc.pid, signal.SIGINT)
        assert harness.finish() == pytest.ExitCode.INTERRUPTED, harness.output()
    finally:
        if harness.proc.poll() is None:
            os.killpg(harness.proc.pid, signal.SIGKILL)

    cases = _testcases(junit)
    assert sorted(cases) == ["test_runs_until_stopped", "test_second"], harness.output()
    for case in cases.values():
        assert "interrupted (SIGINT received)" in case.find("failure").get("message")
        assert _properties(case)[f"{PROPERTY_PREFIX}confirmed"] == "True"
    index = (report / "index.html").read_text()
    assert len(re.findall(r"<span[^>]*>failed</span></h2>", index)) == 2
