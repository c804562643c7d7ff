"""Merging a test's setup, call and teardown reports into one outcome."""
from hil.report.results import Results


def test_phases_merge_into_one_outcome_each():
    results = Results()
    for when in ("setup", "call", "teardown"):
        results.add("t::ok", when, "passed", 0.5)
    results.add("t::fails", "setup", "passed", 0.1)
    results.add("t::fails", "call", "failed", 0.2, "assert 1 == 2")
    results.add("t::fails", "teardown", "passed", 0.1, properties=[("measure:x", 1.0)])
    results.add("t::skipped", "setup", "skipped", 0.0, "rig lacks ['fault_relays']")
    results.add("t::broken", "setup", "failed", 0.0, "bench could not start")
    results.add("t::bad_teardown", "call", "passed", 0.1)
    results.add("t::bad_teardown", "teardown", "failed", 0.1, "close failed")
    results.add("t::xfail", "call", "skipped", 0.1, "known bug", xfail=True)
    tests = results.tests
    assert tests["t::ok"].outcome == "passed" and tests["t::ok"].duration_s == 1.5
    assert tests["t::fails"].outcome == "failed" and tests["t::fails"].details == "assert 1 == 2"
    assert tests["t::fails"].measurements[0].value == 1.0
    assert tests["t::skipped"].outcome == "skipped" and "fault_relays" in tests["t::skipped"].details
    assert tests["t::broken"].outcome == "error"
    assert tests["t::bad_teardown"].outcome == "error" and tests["t::bad_teardown"].details == "close failed"
    assert tests["t::xfail"].outcome == "xfailed"
    assert results.counts() == {"passed": 1, "failed": 1, "skipped": 1, "error": 2, "xfailed": 1}


def test_artifact_and_timing_come_from_properties():
    results = Results()
    results.add("t::a", "teardown", "passed", 0.0,
                properties=[("hil:artifact", "mod.t_a"), ("timing:ticks", 10), ("timing:jitter_p99_us", 12.5)])
    result = results.tests["t::a"]
    assert result.artifact == "mod.t_a"
    assert result.timing == {"ticks": 10, "jitter_p99_us": 12.5}


def test_a_test_whose_body_never_reported_is_interrupted_not_passed():
    # Under pytest-xdist a Ctrl-C ends the controller with only the setup report of a running test in hand.
    results = Results()
    results.add("t::running", "setup", "passed", 0.3)
    results.add("t::done", "setup", "passed", 0.1)
    results.add("t::done", "call", "passed", 0.1)
    results.add("t::done", "teardown", "passed", 0.1)
    running = results.tests["t::running"]
    assert running.outcome == "interrupted" and "never reported" in running.details
    assert results.counts() == {"interrupted": 1, "passed": 1}
