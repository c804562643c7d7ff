"""The pytest plugin, driven the way users drive it: pytest runs of small test files on the sim rig."""
import csv
import hashlib
import json
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from hil import pytest_plugin
from hil.errors import HilError
from hil.report.junit import read_run_facts
from hil.rig import PROJECT_ROOT
from hil.sim.bms_firmware import VERSION_TEXT, BmsFirmware

pytest_plugins = ["pytester"]

BENCH_TESTS = """
    def test_trip(bench, measure):
        bench.power_up()
        bench.force_cell(0, 4.4)
        t0 = bench.loop.t_s
        measure("ov_reaction", (bench.bms.wait_contactors_open(2.0) - t0) * 1000, high=320, unit="ms")

    def test_too_slow(bench, measure):
        measure("reaction", 400.0, high=320.0, unit="ms")
"""


# Two bench tests: a bench that cannot start must fail the first and stop the run before the second.
TWO_BENCH_TESTS = """
    def test_one(bench):
        pass

    def test_two(bench):
        pass
"""


def _props(junit, test_name):
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("name") == test_name)
    return {p.get("name"): p.get("value") for p in case.iter("property")}


def test_report_holds_files_measurements_and_margins(pytester):
    pytester.makepyfile(test_bench=BENCH_TESTS)
    report = pytester.path / "report"
    result = pytester.runpytest("--hil-report", str(report), f"--junitxml={report / 'junit.xml'}",
                                "-o", "junit_family=xunit1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*outside limits: reaction = 400 ms in ?, 320? ms (margin -80 ms)*",
                                 "*hil report: *index.html*"])
    for suffix in (".csv", ".blf", ".png"):
        assert (report / "tests" / f"test_bench.test_trip{suffix}").is_file()
    props = _props(report / "junit.xml", "test_trip")
    assert props["unit:ov_reaction"] == "ms" and props["high:ov_reaction"] == "320"
    assert float(props["margin:ov_reaction"]) == pytest.approx(320 - float(props["measure:ov_reaction"]))
    assert int(props["timing:ticks"]) > 0
    page = (report / "index.html").read_text()
    assert ">FAIL<" in page and "ov_reaction" in page and "-80" in page
    assert 'href="junit.xml"' in page and "data:image/png;base64," in page
    assert "clock: virtual" in page
    assert "rerun: <code>hil run --rig rigs/sim.toml -k test_too_slow</code>" in page
    assert "rerun: <code>hil run --rig rigs/sim.toml -k test_trip</code>" not in page   # it passed


def test_each_plot_carries_its_tests_verdict(pytester):
    """The verdict reaches the plot's writer: "passed", or "FAILED: " and the failure's first line."""
    pytester.makeconftest("""
        from pathlib import Path
        import hil.pytest_plugin as plugin

        written = plugin.write_test_artifacts

        def recording(tests_dir, name, title="", verdict=""):
            with open(Path(tests_dir) / "verdicts.txt", "a") as f:
                f.write(f"{name}|{verdict}\\n")
            written(tests_dir, name, title, verdict)

        plugin.write_test_artifacts = recording
    """)
    pytester.makepyfile(test_bench=BENCH_TESTS)
    report = pytester.path / "report"
    pytester.runpytest_subprocess("--hil-report", str(report)).assert_outcomes(passed=1, failed=1)
    verdicts = dict(line.split("|", 1) for line in (report / "tests" / "verdicts.txt").read_text().splitlines())
    assert verdicts["test_bench.test_trip"] == "passed"
    assert verdicts["test_bench.test_too_slow"].startswith("FAILED: outside limits: reaction = 400 ms")


def test_profile_marker_parametrizes_with_params(pytester):
    pytester.makepyfile(test_profiles="""
        import pytest

        import numpy as np
        from hil.profiles import PROFILES

        @pytest.mark.profile("hppc", "rest", duration_s=2.0)
        @pytest.mark.profile("drone-fpv", duration_s=12.0, seed=5)
        def test_profile(profile, bench):
            assert profile.dt_s == bench.loop.dt_s
            assert profile.duration_s == pytest.approx(12.0 if profile.name.startswith("drone") else 2.0)
            if profile.name == "drone-fpv":  # the marker's seed, not the rig's
                seeded = PROFILES["drone-fpv"](duration_s=12.0, dt_s=bench.loop.dt_s, seed=5)
                rigs = PROFILES["drone-fpv"](duration_s=12.0, dt_s=bench.loop.dt_s, seed=bench.rig.seed)
                assert np.array_equal(profile.demand, seeded.demand)
                assert not np.array_equal(profile.demand, rigs.demand)
    """)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_profile?hppc? PASSED*", "*test_profile?rest? PASSED*",
                                 "*test_profile?drone-fpv? PASSED*"])


def test_a_replayed_trace_is_recorded_with_its_digest(pytester):
    """A recorded load (csv-trace) is data a test depends on: the report names its file and version."""
    trace = PROJECT_ROOT / "fixtures" / "profiles" / "sample_trace.csv"
    pytester.makepyfile(test_trace=f"""
        import pytest

        @pytest.mark.profile("csv-trace", path={str(trace)!r})
        def test_replay(profile, bench):
            bench.run_profile(profile)
            bench.loop.run_for(0.2)
    """)
    report = pytester.path / "report"
    pytester.runpytest("--hil-report", str(report), f"--junitxml={report / 'junit.xml'}").assert_outcomes(passed=1)
    recorded = f"fixtures/profiles/sample_trace.csv sha256:{hashlib.sha256(trace.read_bytes()).hexdigest()[:12]}"
    assert _props(report / "junit.xml", "test_replay[csv-trace]")["hil:profile_file"] == recorded
    assert f"replayed trace <code>{recorded}</code>" in (report / "index.html").read_text()


REPEATED_TESTS = """
    import pytest

    def test_pack(bench, hil_seed, measure):
        assert bench.rig.seed == hil_seed
        measure("lowest_capacity", float(bench.pack.capacity_ah.min()), low=4.0, unit="Ah")
        assert hil_seed != 8, "fails on one pack"

    @pytest.mark.profile("rest", duration_s=1)
    def test_custom(profile, custom_bench, hil_seed):
        assert custom_bench("pack.soc0=0.5").rig.seed == hil_seed

    def test_no_bench():
        pass
"""


def test_repeat_runs_each_bench_test_once_per_seed_and_reports_the_spread(pytester):
    """`--hil-repeat 3` on seed 7 with a capacity spread: three packs (seeds 7, 8, 9), each test's outcome per
    seed, and each measurement's min/median/max with its worst margin and the seed that gave it."""
    pytester.makepyfile(test_repeat=REPEATED_TESTS)
    report = pytester.path / "report"
    result = pytester.runpytest("--set", "rig.seed=7", "--set", "pack.capacity_spread=0.02", "--hil-repeat", "3",
                                "--hil-report", str(report), f"--junitxml={report / 'junit.xml'}",
                                "-o", "junit_family=xunit1", "-v")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines_random(["*test_pack?seed=7? PASSED*", "*test_pack?seed=8? FAILED*",
                                        "*test_pack?seed=9? PASSED*", "*test_custom?rest-seed=9? PASSED*",
                                        "*test_no_bench PASSED*", "*hil spread over seeds: *spread.csv*"])
    # the failed seed, rerun alone: the run's overrides, that seed, the test's name
    rerun = ("hil run --rig rigs/sim.toml --set rig.seed=7 --set pack.capacity_spread=0.02 --set rig.seed=8 "
             "-k test_pack")
    result.stdout.fnmatch_lines([f"hil rerun test_repeat.py::test_pack[[]seed=8[]]: {rerun}"])
    capacity_ah = {}
    for seed in (7, 8, 9):
        props = _props(report / "junit.xml", f"test_pack[seed={seed}]")
        assert props["hil:seed"] == str(seed) and props["hil:repeat_of"] == "test_repeat.py::test_pack"
        capacity_ah[seed] = float(props["measure:lowest_capacity"])
    assert len(set(capacity_ah.values())) == 3, capacity_ah  # three packs, not one run three times
    assert _props(report / "junit.xml", "test_custom[rest-seed=8]")["hil:repeat_of"] == \
        "test_repeat.py::test_custom[rest]"
    with (report / "spread.csv").open(newline="") as f:
        rows = {(row["test"], row["measurement"]): row for row in csv.DictReader(f)}
    row = rows[("test_repeat.py::test_pack", "lowest_capacity")]
    worst_seed = min(capacity_ah, key=capacity_ah.get)
    assert (int(row["runs"]), int(row["worst_seed"]), row["failed_seeds"]) == (3, worst_seed, "")
    assert float(row["min"]) == pytest.approx(min(capacity_ah.values()), rel=1e-5)
    assert float(row["max"]) == pytest.approx(max(capacity_ah.values()), rel=1e-5)
    assert float(row["median"]) == pytest.approx(sorted(capacity_ah.values())[1], rel=1e-5)
    assert float(row["worst_margin"]) == pytest.approx(capacity_ah[worst_seed] - 4.0, rel=1e-4)
    page = (report / "index.html").read_text()
    assert "Spread over seeds" in page and "failed at seed 8" in page and "--set rig.seed=8" in page


def test_repeat_needs_at_least_one_run(pytester):
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest("--hil-repeat", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hil-repeat: expected a number of runs >= 1, got 0*"])


@pytest.mark.parametrize("nodeid, repeats", [("t.py::test_a[seed=3]", "t.py::test_a"),
                                             ("t.py::test_a[hppc-seed=3]", "t.py::test_a[hppc]"),
                                             ("t.py::test_a[seed=3-hppc]", "t.py::test_a[hppc]"),
                                             ("t.py::test_a[x-seed=3-y]", "t.py::test_a[x-y]"),
                                             ("t.py::test_a[seed=33]", "t.py::test_a[seed=33]")])
def test_a_repetition_names_the_test_it_repeats(nodeid, repeats):
    assert pytest_plugin._repeat_of(nodeid, 3) == repeats


def test_custom_bench_is_the_tests_recorded_bench(pytester):
    """The report's trace is the custom bench's (its overrides applied), and the spec comes without a bench."""
    pytester.makepyfile(test_custom="""
        def test_custom(custom_bench, spec):
            bench = custom_bench("pack.soc0=0.3", f"dut.calibration.cell_ov_v={spec.protections['cell_ov'].high}")
            assert bench.rig.data["dut"]["calibration"]["cell_ov_v"] == spec.protections["cell_ov"].high
            bench.power_up()
            bench.loop.run_for(1.0)
    """)
    report = pytester.path / "report"
    result = pytester.runpytest("--hil-report", str(report), f"--junitxml={report / 'junit.xml'}",
                                "-o", "junit_family=xunit1")
    result.assert_outcomes(passed=1)
    rows = (report / "tests" / "test_custom.test_custom.csv").read_text().splitlines()
    header = rows[0].split(",")
    trace = [dict(zip(header, row.split(","))) for row in rows[1:]]
    assert float(trace[-1]["soc_true"]) == pytest.approx(0.3, abs=0.01)  # the custom pack, not the rig's 0.6
    assert any(row["contactors_closed"] == "1" for row in trace) and trace[-1]["contactors_closed"] == "0"
    props = _props(report / "junit.xml", "test_custom")
    assert props["safe:confirmed"] in ("True", "true", "1") and int(props["timing:ticks"]) >= 1000


def test_custom_bench_is_the_only_bench_of_a_test(pytester):
    pytester.makepyfile(test_two="""
        def test_both(bench, custom_bench):
            pass

        def test_twice(custom_bench):
            custom_bench("pack.soc0=0.3")
            custom_bench("pack.soc0=0.4")

        def test_typo(custom_bench):
            custom_bench("pack.soc_zero=0.3")
    """)
    result = pytester.runpytest("-rA")
    result.assert_outcomes(errors=1, failed=2)
    result.stdout.fnmatch_lines(["*takes both `bench` and `custom_bench`*", "*custom_bench called twice*",
                                 "*custom_bench*soc_zero*"])


def test_profile_marker_with_a_typo_fails_collection_with_the_fix(pytester):
    pytester.makepyfile(test_typo="""
        import pytest

        @pytest.mark.profile("drone-fvp")
        def test_profile(profile):
            pass
    """)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*unknown profile 'drone-fvp' (did you mean 'drone-fpv'*"])
    assert result.ret != 0


# Tests naming the spec entries they verify: a pass, a failure, skips, and a table the sim rig's spec lacks.
VERIFYING_TESTS = """
    import pytest

    @pytest.mark.verifies("protections.{name}")
    @pytest.mark.parametrize("name", ["cell_ov", "cell_uv"])
    def test_band(name):
        assert name == "cell_ov", "the UV band is off"

    @pytest.mark.verifies("heartbeat", "cycle_times")
    def test_host_link():
        pytest.skip("the rig has no host link")

    @pytest.mark.verifies("chamber")
    def test_chamber():
        pytest.skip("this BMS has no [chamber]")
"""


def test_spec_coverage_lists_each_requirement_with_the_tests_that_verified_it(pytester):
    """Each entry of the rig's spec, with the team's requirement id, the tests that name it and a verdict: in the
    JSON, the index and the console; a table the spec does not state is listed apart."""
    spec = pytester.path / "spec.toml"
    text = (PROJECT_ROOT / "fixtures" / "specs" / "reference-bms.toml").read_text()
    spec.write_text(text.replace("[protections.cell_ov]\n", '[protections.cell_ov]\nrequirement = "SYS-BMS-042"\n'))
    pytester.makepyfile(test_verifying=VERIFYING_TESTS)
    report = pytester.path / "report"
    result = pytester.runpytest("--hil-report", str(report), f"--junitxml={report / 'junit.xml'}",
                                "--set", f'spec.file="{spec}"')
    result.assert_outcomes(passed=1, failed=1, skipped=2)
    coverage = json.loads((report / "spec_coverage.json").read_text())
    rows = {row["entry"]: row for row in coverage["requirements"]}
    assert rows["protections.cell_ov"]["requirement"] == "SYS-BMS-042"
    assert [(t["nodeid"], t["outcome"]) for t in rows["protections.cell_ov"]["tests"]] == [
        ("test_verifying.py::test_band[cell_ov]", "passed")]
    assert rows["protections.cell_ov"]["verdict"] == "passed" and rows["protections.cell_uv"]["verdict"] == "failed"
    assert rows["heartbeat"]["verdict"] == "skipped" and "no host link" in rows["heartbeat"]["tests"][0]["details"]
    cycle_times = [row for entry, row in rows.items() if entry.startswith("cycle_times.")]
    assert cycle_times and all(row["verdict"] == "skipped" for row in cycle_times)   # the table covers its entries
    assert rows["protections.cell_ot"]["verdict"] == "not verified" and not rows["protections.cell_ot"]["tests"]
    assert coverage["unstated"] == {"chamber": ["test_verifying.py::test_chamber"]}
    assert coverage["counts"] == {"failed": 1, "passed": 1, "skipped": 1 + len(cycle_times),
                                  "not verified": len(rows) - 3 - len(cycle_times)}
    assert _props(report / "junit.xml", "test_host_link")["hil:verifies"] == "heartbeat,cycle_times"
    page = (report / "index.html").read_text()
    assert "<h2>Spec coverage</h2>" in page and "SYS-BMS-042" in page and "<code>chamber</code> (1 test)" in page
    result.stdout.fnmatch_lines([f"hil spec coverage: {len(rows)} spec entries: 1 failed, 1 passed, "
                                 f"{1 + len(cycle_times)} skipped, * not verified; failed: protections.cell_uv "
                                 "(spec_coverage.json)"])


@pytest.mark.parametrize("pattern,expected", [
    ("protections.cell_oov", "unknown entry 'cell_oov' of [protections] (did you mean 'cell_ov'"),
    ("heartbeet", "unknown table [heartbeet] (did you mean 'heartbeat'?)"),
    ("protections.{nme}", "'nme' is no parameter of this test"),
], ids=["entry", "table", "parameter"])
def test_a_verifies_marker_naming_nothing_a_spec_states_fails_its_test(pytester, pattern, expected):
    pytester.makepyfile(test_marker=f"""
        import pytest

        @pytest.mark.verifies({pattern!r})
        @pytest.mark.parametrize("name", ["cell_ov"])
        def test_band(name):
            pass
    """)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*verifies({pattern!r}): {expected}*".replace("[", "[[]")])


def test_rig_requires_skips_with_the_reason(pytester):
    pytester.makepyfile(test_skip="""
        import pytest

        @pytest.mark.rig_requires("fault_relays", "climate_chamber")
        def test_needs(bench):
            pass
    """)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*rig 'sim' lacks ?'climate_chamber'?*"])


def test_long_tests_show_progress(pytester, monkeypatch):
    monkeypatch.setattr(pytest_plugin, "PROGRESS_EVERY_S", 0.0)
    pytester.makepyfile(test_long="""
        def test_long(bench):
            bench.loop.run_for(2.5)
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_long.py::test_long: t=1.0 s simulated in * s wall (*x real time); state=*"])


HOLD_LOCK = """
import sys, time
from hil.pytest_plugin import rig_lock
with rig_lock("bench-7", "tests/bms/test_x.py::test_y", 5.0):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_rig_lock_names_its_holder_when_a_waiter_gives_up(tmp_path, monkeypatch):
    monkeypatch.setenv(pytest_plugin.LOCK_DIR_ENV, str(tmp_path))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_use = rf"rig 'bench-7' is in use by pid {holder.pid} on .* running tests/bms/test_x.py::test_y since "
        with pytest.raises(HilError, match=in_use + r".*gave up after 0.3 s"):
            pytest_plugin.rig_lock("bench-7", "me", 0.3).__enter__()
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
        with pytest_plugin.rig_lock("bench-7", "me", 0.3) as path:
            assert "me" in path.read_text()
    finally:
        holder.kill()
        holder.wait()


def test_an_external_rig_is_locked_by_the_bench(pytester, tmp_path, monkeypatch):
    """Hardware rig taken by another process: the test fails saying who has it; with the rig free it runs."""
    monkeypatch.setenv(pytest_plugin.LOCK_DIR_ENV, str(tmp_path))
    pytester.makepyfile(test_hw="""
        import os

        def test_hw(bench):
            lock = os.path.join(os.environ["HIL_LOCK_DIR"], "hil-rig-sim.lock")
            assert "test_hw.py::test_hw" in open(lock).read()
    """)
    args = ("--set", "dut.kind=external", "--set", "power_supply.kind=none", "--hil-lock-timeout", "0.3")
    with pytest_plugin.rig_lock("sim", "another session", 1.0):
        result = pytester.runpytest(*args)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rig 'sim' is in use by pid * running another session*"])
    # No board answers on this bench, so its safe state cannot be read back: that is reported, not swallowed.
    pytester.runpytest(*args).assert_outcomes(passed=1, errors=1)


def test_a_bench_configuration_error_fails_one_test_and_stops_the_run(pytester, tmp_path, monkeypatch):
    """A setting python-can refuses (here a keyword typo; on a bench, often a driver not installed) would fail
    every test alike: the first test says why, and the run stops there."""
    monkeypatch.setenv(pytest_plugin.LOCK_DIR_ENV, str(tmp_path))
    pytester.makepyfile(test_hw=TWO_BENCH_TESTS)
    result = pytester.runpytest("--set", "dut.kind=external", "--set", "power_supply.kind=none",
                                "--set", "can.main.bitrat=500000")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*bench could not start: *bitrat*did you mean 'bitrate'*",
                                 "*Interrupted: the bench's configuration is wrong*"])
    assert "test_two" not in result.stdout.str()


def test_the_run_records_what_it_tested(pytester):
    """The JUnit file's run-wide properties name the testbench, the rig, its seed and overrides, and each file
    it read with its SHA-256; each bench test records the build the BMS said it ran; the report shows them."""
    pytester.makepyfile(test_bench="""
        def test_idle(bench):
            bench.loop.run_for(0.1)

        def test_no_bench():
            pass
    """)
    report = pytester.path / "report"
    result = pytester.runpytest("--hil-report", str(report), f"--junitxml={report / 'junit.xml'}",
                                "--set", "rig.seed=7")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["hil: hil-bms 0.1.0*; rig sim (rigs/sim.toml), seed 7",
                                 "hil: spec fixtures/specs/reference-bms.toml sha256:*"])
    facts = read_run_facts(report / "junit.xml")
    spec = PROJECT_ROOT / "fixtures" / "specs" / "reference-bms.toml"
    assert facts["hil:run:file:spec"] == (f"fixtures/specs/reference-bms.toml "
                                          f"sha256:{hashlib.sha256(spec.read_bytes()).hexdigest()[:12]}")
    assert facts["hil:run:seed"] == "7" and facts["hil:run:set"] == "rig.seed=7"
    assert facts["hil:run:rig"] == "sim (rigs/sim.toml)" and facts["hil:run:testbench"].startswith("hil-bms 0.1.0")
    assert facts["hil:run:file:dbc"].startswith("dbc/bms.dbc sha256:") and "hil:run:firmware_expected" not in facts
    assert _props(report / "junit.xml", "test_idle")["hil:firmware"] == VERSION_TEXT
    assert "hil:firmware" not in _props(report / "junit.xml", "test_no_bench")
    page = (report / "index.html").read_text()
    assert "What was tested" in page and f"{VERSION_TEXT} (1 test)" in page
    assert "fixtures/cells/lg_m50.toml sha256:" in page and "not all of one build" not in page


def test_a_bms_that_runs_another_build_fails_the_first_test_and_stops_the_run(pytester):
    pytester.makepyfile(test_build=TWO_BENCH_TESTS)
    result = pytester.runpytest("--set", 'dut.firmware="0.9.0"')
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*sim.toml: ?dut? firmware = '0.9.0', but the BMS says it runs "
                                 f"'{VERSION_TEXT}' (BMS_Version): flash build 0.9.0*",
                                 "*Interrupted: the BMS runs another build than the rig expects*"])


def test_a_bad_rig_fails_one_test_and_stops_the_run(pytester):
    pytester.makepyfile(test_rig=TWO_BENCH_TESTS)
    result = pytester.runpytest("--set", "pack.n_series=17")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rig: *sim.toml: key 'cell_emulator.channels' = 16, expected pack.n_series = 17*",
                                 "*Interrupted: the rig is wrong*"])


@pytest.mark.slow
def test_xdist_workers_report_to_one_index(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(test_bench=BENCH_TESTS)
    pytester.makepyfile(test_more=textwrap.dedent("""
        import pytest

        @pytest.mark.parametrize("channel", [1, 2])
        def test_trip_channel(bench, measure, channel):
            bench.power_up()
            bench.force_cell(channel, 4.4)
            t0 = bench.loop.t_s
            measure("ov_reaction", (bench.bms.wait_contactors_open(2.0) - t0) * 1000, high=320, unit="ms")
    """))
    report = pytester.path / "report"
    result = pytester.runpytest_subprocess("-n", "2", "--hil-report", str(report), f"--junitxml={report / 'junit.xml'}")
    result.assert_outcomes(passed=3, failed=1)
    # the controller writes what the run tested; the workers' tests, each the build their BMS said it ran
    assert read_run_facts(report / "junit.xml")["hil:run:rig"] == "sim (rigs/sim.toml)"
    assert {_props(report / "junit.xml", name).get("hil:firmware") for name in ("test_trip", "test_too_slow")} == {
        VERSION_TEXT}   # test_too_slow runs no loop itself: its safe state's did
    page = (report / "index.html").read_text()
    assert len(re.findall(r">ov_reaction<", page)) == 2 * 3  # the measurements table and each test's own
    assert page.count("data:image/png;base64,") == 4


def test_an_unwritable_report_or_lock_folder_is_one_clear_error(pytester, tmp_path, monkeypatch):
    pytester.makepyfile(test_any="""
        def test_one(bench):
            pass
    """)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    result = pytester.runpytest("--hil-report", str(a_file / "report"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hil-report: report folder */a_file/report: cannot write there (Not a directory*"])
    monkeypatch.setenv(pytest_plugin.LOCK_DIR_ENV, str(a_file / "locks"))
    result = pytester.runpytest("--set", "dut.kind=external", "--set", "power_supply.kind=none")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rig lock */a_file/locks/hil-rig-sim.lock: cannot create it (Not a directory)*"])


def test_the_communication_tests_time_the_messages_the_spec_names(tmp_path):
    """[cycle_times] names the BMS's own messages, and the suite times those: here one of them is the reference
    BMS's cell-voltage message, which has no alive counter, so only the other gets a counter test."""
    from hil.rig import PROJECT_ROOT
    text = (PROJECT_ROOT / "fixtures" / "specs" / "reference-bms.toml").read_text()
    start, end = text.index("BMS_PackData = {"), text.index("[soc]")
    spec = tmp_path / "spec.toml"
    spec.write_text(text[:start] + "BMS_CellVoltages = { cycle_ms = 100, tolerance_pct = 10 }\n\n" + text[end:])
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                             f"--set=spec.file=\"{spec}\"", "tests/bms/test_communication.py"],
                            capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    assert collected[:3] == [
        "tests/bms/test_communication.py::test_cycle_time_within_tolerance[BMS_Status]",
        "tests/bms/test_communication.py::test_cycle_time_within_tolerance[BMS_CellVoltages]",
        "tests/bms/test_communication.py::test_alive_counters_and_crcs_are_valid[BMS_Status]"], result.stdout
    assert not any("alive_counters_and_crcs_are_valid[BMS_CellVoltages]" in line for line in collected)


# A test that ends with an error latched: the plugin reads the BMS's DTCs after its body.
LATCHED_TESTS = """
    def test_ends_with_an_open_interlock(bench):
        bench.power_up()
        bench.cell_emulator.set_hvil_open(True)
        bench.bms.wait_contactors_open(1.0)
        bench.loop.run_until(lambda: "hvil" in bench.bms.faults, 1.0)
"""


def test_errors_latched_at_a_tests_end_must_be_stored_as_dtcs(pytester, monkeypatch):
    """The spec's [diagnostics] stores_dtcs: each error latched when the body ends must be stored as its DTC,
    failed and confirmed; the DTCs read go in the report, each with its latest snapshot. A BMS whose DTC table
    lacks hvil fails the test; so does one that keeps no snapshot with the DTC ([diagnostics] stores_snapshots)."""
    pytester.makepyfile(test_latched=LATCHED_TESTS)
    report = pytester.path / "report"
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest("--hil-report", str(report), f"--junitxml={junit}", "-o", "junit_family=xunit1")
    result.assert_outcomes(passed=1)
    stored = _props(junit, "test_ends_with_an_open_interlock")["hil:dtcs"]
    assert stored.startswith("hvil (P1A10-00) status 0x2F (snapshot: max_cell_voltage_v ") and \
        "pack_current_a 0, max_temperature_c 25," in stored, stored
    assert f"DTCs stored at the end: {stored}" in (report / "index.html").read_text()
    result = pytester.runpytest("--set", 'dut.bugs=["dtc_table_short"]', f"--junitxml={junit}",
                                "-o", "junit_family=xunit1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the BMS latched hvil but did not store hvil (P1A10-00) as failed and confirmed "
                                 "(*stores_dtcs); stored: none*"])
    monkeypatch.setattr(BmsFirmware, "snapshot_records", lambda firmware, code: {})   # the runs are in-process
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the BMS stored hvil (P1A10-00) without a snapshot record (*stores_snapshots); "
                                 "stored: hvil (P1A10-00) status 0x2F*"])
