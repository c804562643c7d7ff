"""pytest plugin: `--rig`, `--hil-report`, `--set`, `--hil-repeat`; fixtures for the bench and its parts; markers;
measurements.

Business logic lives in `hil.bench` and `hil.report`; this file only wires them into pytest. Each test gets
its own bench (fresh boards, fresh channel), which is made safe and closed whatever ends the test. A rig with
real hardware (`dut.kind = "external"`) is locked across processes while a bench uses it, so pytest-xdist
workers (or two people) take turns on it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from hil.bench import Bench
from hil.errors import ConfigError, HilError
from hil.protocol import DTC_CONFIRMED, DTC_TEST_FAILED
from hil.provenance import FILE_PREFIX, PREFIX, describe_run, digest, rerun_command, shown
from hil.report.artifacts import missing_notes, prepare_report_dir, write_test_artifacts
from hil.report.coverage import JSON_NAME as COVERAGE_JSON, Coverage, spec_coverage
from hil.report.coverage import write_json as write_coverage
from hil.report.html import write_index
from hil.report.measurements import Measurement
from hil.report.results import (ARTIFACT_PROPERTY, DTCS_PROPERTY, FAILED_OUTCOMES, FIRMWARE_PROPERTY,
                                PROFILE_FILE_PROPERTY, TIMING_PREFIX, VERIFIES_PROPERTY, Results)
from hil.report.spread import REPEAT_OF_PROPERTY, SEED_PROPERTY, repeated, spreads, write_csv
from hil.rig import DEFAULT_RIG, SEEDS, load_rig, preflight
from hil.safety import (NotSafe, TickGuard, first_interrupt_requests_a_stop, held_interrupts, live,
                        make_live_benches_safe, sigterm_interrupts)
from hil.spec import load_spec, unknown_entry

LOCK_DIR_ENV = "HIL_LOCK_DIR"   # where rig lock files live (default: the system temp directory)
LOCK_POLL_S = 0.2
PROGRESS_EVERY_S = 5.0          # wall seconds between progress lines of a long test
RERUNS_SHOWN = 5                # failures whose rerun command the console shows (the report has them all)


def pytest_addoption(parser):
    group = parser.getgroup("hil", "BMS hardware-in-the-loop")
    group.addoption("--rig", default=None, help=f"rig file (default: {DEFAULT_RIG})")
    group.addoption("--hil-report", default=None, metavar="DIR",
                    help="write per-test traces, plots and CAN logs to DIR/tests, and DIR/index.html")
    group.addoption("--set", dest="hil_set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a rig key, e.g. --set dut.calibration.cell_ov_v=4.3")
    group.addoption("--hil-repeat", type=int, default=1, metavar="N",
                    help="run each bench test N times, the k-th (from 0) on the rig's seed + k: other noise and "
                         "profile randomness, and another pack where [pack] gives a spread; the report adds each "
                         "measurement's spread over the seeds (default: 1)")
    group.addoption("--hil-lock-timeout", type=float, default=900.0, metavar="S",
                    help="seconds to wait for a hardware rig another process is using (default: 900)")


@pytest.hookimpl(trylast=True)  # after pytest's own unraisable-exception hook, which ours must chain to
def pytest_configure(config):
    # SIGTERM ends a run as Ctrl-C does, through fixture teardown, so every bench is made safe first.
    stack = contextlib.ExitStack()
    stack.enter_context(sigterm_interrupts())
    config.add_cleanup(stack.close)
    config.addinivalue_line("markers", "rig_requires(*capabilities): skip unless the rig has them all")
    config.addinivalue_line("markers", "profile(*names, **params): run the test once per named load profile "
                                       "(hil.profiles.PROFILES), built with params, e.g. duration_s=60")
    config.addinivalue_line("markers", "verifies(*tables): the spec tables the test's limits come from, e.g. "
                                       "'protections.{name}' (a parameter's value in braces); the report's spec "
                                       "coverage lists each table with the tests that verified it")
    if config.getoption("hil_repeat") < 1:
        raise pytest.UsageError(f"--hil-repeat: expected a number of runs >= 1, got {config.getoption('hil_repeat')}")
    report = config.getoption("hil_report")
    if report and not hasattr(config, "workerinput"):  # under xdist only the controller writes the index
        try:
            report_dir = prepare_report_dir(report)
        except ConfigError as exc:
            raise pytest.UsageError(f"--hil-report: {exc}") from None
        config.pluginmanager.register(_RunReport(config, report_dir), "hil-run-report")


def pytest_sessionstart(session):
    """What the run tests (`hil.provenance`) goes into the JUnit file as run-wide properties (pytest-xdist's
    controller writes that file; its workers have none)."""
    config = session.config
    try:
        from _pytest.junitxml import xml_key   # pytest's own: its record_testsuite_property fixture does not
    except ImportError:                         # reach the file from xdist workers
        return
    xml = config.stash.get(xml_key, None)
    if xml is not None and not hasattr(config, "workerinput"):
        for name, value in _run_facts(config).items():
            xml.add_global_property(name, value)


def pytest_report_header(config) -> list[str]:
    """What the run tests, at the top of the console: the testbench, the rig and the spec with its digest."""
    facts = _run_facts(config)
    if not facts:
        return []
    lines = [f"hil: {facts[PREFIX + 'testbench']}; rig {facts[PREFIX + 'rig']}, seed {facts[PREFIX + 'seed']}",
             f"hil: spec {facts[FILE_PREFIX + 'spec']}"]
    if PREFIX + "firmware_expected" in facts:
        lines[-1] += f"; the BMS must run {facts[PREFIX + 'firmware_expected']}"
    return lines


_RUN_FACTS = pytest.StashKey[dict]()


def _run_facts(config) -> dict[str, str]:
    """`describe_run` of the run's rig, worked out once a run; {} for a rig that does not load (every test
    then says why)."""
    if _RUN_FACTS not in config.stash:
        try:
            config.stash[_RUN_FACTS] = describe_run(load_rig(config.getoption("rig"), config.getoption("hil_set")))
        except HilError:
            config.stash[_RUN_FACTS] = {}
    return config.stash[_RUN_FACTS]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    TickGuard.raise_pending()  # a Ctrl-C Python swallowed since the loop last ran (hil.safety) stops the run here
    # Before any fixture: a test skipped by its rig or its spec still says which tables it would have verified.
    verified = verified_tables(item)
    if verified:
        item.user_properties.append((VERIFIES_PROPERTY, ",".join(verified)))
    with _interrupt_fails_a_bench_test(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _interrupt_fails_a_bench_test(item):
        result = yield
        _audit_dtcs(item)   # a test body that passed: the errors it left latched must be stored as DTCs
        return result


def verified_tables(item) -> list[str]:
    """The spec entries `item`'s `verifies` markers name, each `{param}` filled from its parameters. A name no spec
    can state fails the test, naming the marker and what is expected."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    names = []
    for marker in item.iter_markers("verifies"):
        for pattern in marker.args:
            try:
                name = str(pattern).format(**params)
            except (KeyError, IndexError, ValueError) as exc:
                pytest.fail(f"{item.nodeid}: @pytest.mark.verifies({pattern!r}): {exc.args[0]!r} is no parameter "
                            f"of this test; expected a spec table such as 'protections.{{name}}', with names from "
                            f"{sorted(params)}", pytrace=False)
            problem = unknown_entry(name)
            if problem:
                pytest.fail(f"{item.nodeid}: @pytest.mark.verifies({pattern!r}): {problem}", pytrace=False)
            if name not in names:
                names.append(name)
    return names


_BENCH = pytest.StashKey[Bench]()


def _audit_dtcs(item) -> None:
    """Where the spec says the BMS stores a DTC for each error it latches (`[diagnostics] stores_dtcs`) and the
    harness has UDS for it: each error latched when the test's body ends, with a DTC the map names, must be
    stored as failed and confirmed. The DTCs read go in the report (`hil:dtcs`)."""
    bench = item.stash.get(_BENCH, None)
    if bench is None or bench.uds is None or not bench.spec.data.get("diagnostics", {}).get("stores_dtcs", False):
        return
    uds, bms = bench.uds, bench.bms
    if bench.monitor.is_absent(bms.contactor_readback.message):
        return   # a dark BMS (its supply cut) answers nothing: there is no memory to read now
    latched = [name for name in bms.faults if name in uds.dtcs]
    if not latched:
        return
    snapshots = bench.spec.data["diagnostics"].get("stores_snapshots", False) and bool(uds.snapshot)
    both = DTC_TEST_FAILED | DTC_CONFIRMED
    try:
        stored = uds.read_dtcs()
        kept = [uds.dtcs[name] for name in latched if stored.get(uds.dtcs[name], 0) & both == both]
        # Where the BMS keeps snapshots: each stored error's, as the report shows it next to its DTC.
        records = {code: uds.read_snapshots(code) for code in kept} if snapshots else {}
    except HilError as exc:
        pytest.fail(f"the BMS latched {', '.join(latched)}; its DTCs could not be read over UDS: {exc}", pytrace=False)
    shown = ", ".join(uds.describe(code, status) + _latest_snapshot(uds, records.get(code))
                      for code, status in stored.items()) or "none"
    item.user_properties.append((DTCS_PROPERTY, shown))
    missing = [uds.describe(uds.dtcs[name]) for name in latched if uds.dtcs[name] not in kept]
    if missing:
        pytest.fail(f"the BMS latched {', '.join(latched)} but did not store {', '.join(missing)} as failed and "
                    f"confirmed ([diagnostics] stores_dtcs); stored: {shown}", pytrace=False)
    bare = [uds.describe(code) for code, its_records in records.items() if not its_records]
    if bare:
        pytest.fail(f"the BMS stored {', '.join(bare)} without a snapshot record ([diagnostics] stores_snapshots); "
                    f"stored: {shown}", pytrace=False)


def _latest_snapshot(uds, records: dict | None) -> str:
    """' (snapshot: max_cell_voltage_v 4.27, ...)': the latest record, or the highest-numbered; '' for none."""
    if not records:
        return ""
    values = records.get(uds.snapshot_records.get("latest"), records[max(records)])
    return f" (snapshot: {', '.join(f'{name} {value:.4g}' for name, value in values.items())})"


@contextlib.contextmanager
def _interrupt_fails_a_bench_test(item):
    """Ctrl-C or SIGTERM in a bench test's setup or body: the bench is made safe at once, the test fails as
    interrupted, and the run stops after its teardown. pytest's own handling would end the session on the
    spot: the test shown as passed in the report (its body never reported), its safe-state read-back
    missing from the JUnit XML (written before the bench's teardown ran)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if not {"bench", "custom_bench"} & set(item.fixturenames):
            raise
        reason = _stop_the_run(item.session, exc)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: the run is stopping already
            make_live_benches_safe()  # now; the bench's teardown confirms it again, and records it
        raise pytest.fail.Exception(f"interrupted ({reason}){_where(exc, item)}; the run stops after this "
                                    "test's teardown", pytrace=False) from None


def _stop_the_run(session, exc: KeyboardInterrupt) -> str:
    """Stop the run after the current test, as interrupted; return why ("SIGINT received")."""
    reason = str(exc) or "KeyboardInterrupt"
    session.shouldstop = f"interrupted ({reason})"
    return reason


def _where(exc: BaseException, item) -> str:
    """" at <test file>:<line>, t=<bench time> s": the last line of the test's own file the interrupt passed
    through, and how far the test's bench had run."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(item.path):
            line = tb.tb_lineno
        tb = tb.tb_next
    bench = getattr(item, "funcargs", {}).get("bench")
    return ((f" at {item.path.name}:{line}" if line is not None else "")
            + (f", t={bench.loop.t_s:.3f} s" if isinstance(bench, Bench) else ""))


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session):
    """Under pytest-xdist, a Ctrl-C or SIGTERM to the controller asks it to stop once the workers have (a
    terminal's Ctrl-C reaches them too: each fails its test as interrupted, makes its bench safe and reports
    it), so their reports reach junit.xml and index.html; it used to quit at once and lose them. A second
    one stops it at once."""
    dsession = session.config.pluginmanager.getplugin("dsession")  # xdist's controller; None elsewhere
    if dsession is None:
        return (yield)
    with first_interrupt_requests_a_stop(lambda reason: setattr(dsession, "shouldstop", reason)):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo):
    """An interrupt outside a bench test's setup and body (in a fixture's teardown, say) ends the run on the
    spot: command the safe state now, before pytest formats its report of it."""
    make_live_benches_safe()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    """The run's records (junit.xml, index.html) are written whole: a Ctrl-C or SIGTERM while they are
    waits until they are, and then only marks the run interrupted."""
    try:
        with held_interrupts():
            return (yield)
    except KeyboardInterrupt:
        session.exitstatus = pytest.ExitCode.INTERRUPTED


def pytest_generate_tests(metafunc):
    _parametrize_profiles(metafunc)
    _parametrize_seeds(metafunc)


def _parametrize_profiles(metafunc):
    """Parametrize the `profile` fixture over every `profile` marker's names (stacked markers add up)."""
    markers = reversed(list(metafunc.definition.iter_markers("profile")))  # in source order, top to bottom
    cases = [(name, marker.kwargs) for marker in markers for name in marker.args]
    if not cases:
        return
    if "profile" not in metafunc.fixturenames:
        raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid}: @pytest.mark.profile needs the "
                                            "test to take the `profile` fixture")
    from hil.profiles import PROFILES
    for name, params in cases:
        try:
            PROFILES[name].check(params)
        except HilError as exc:
            raise pytest.Collector.CollectError(f"{metafunc.definition.nodeid}: @pytest.mark.profile: {exc}") from None
    metafunc.parametrize("profile", cases, indirect=True, ids=[name for name, _ in cases])


_REPEAT_SEEDS = pytest.StashKey[list]()


def _parametrize_seeds(metafunc):
    """Under `--hil-repeat N`, parametrize `hil_seed` (every bench's, and the `profile` fixture's) over the
    rig's seed + 0 .. N-1, with ids `seed=S` that say how to rerun one: `--set rig.seed=S`."""
    config = metafunc.config
    repeat = config.getoption("hil_repeat")
    if repeat == 1 or "hil_seed" not in metafunc.fixturenames:
        return
    if _REPEAT_SEEDS not in config.stash:   # the rig is read once per run, not once per test function
        try:
            base = load_rig(config.getoption("rig"), config.getoption("hil_set")).seed
        except HilError:
            base = 0  # no test runs: the `rig` fixture fails the first with the rig's error, and stops the run
        config.stash[_REPEAT_SEEDS] = [(base + k) % len(SEEDS) for k in range(repeat)]
    seeds = config.stash[_REPEAT_SEEDS]
    metafunc.parametrize("hil_seed", seeds, ids=[f"seed={seed}" for seed in seeds])


def _repeat_of(nodeid: str, seed: int) -> str:
    """The node id without its `seed=S` part: the test that `nodeid` repeats."""
    tag = re.escape(f"seed={seed}")
    for pattern, replacement in ((rf"\[{tag}\]$", ""), (rf"-{tag}(?=[-\]])", ""), (rf"\[{tag}-", "[")):
        base, n = re.subn(pattern, replacement, nodeid, count=1)
        if n:
            return base
    return nodeid


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


@pytest.fixture(scope="session")
def rig(request):
    """The loaded, validated rig (`--rig`, `--set` applied), its files and settings checked (`preflight`). A
    bad one fails the first test that needs it, once, and stops the run: every other would fail alike."""
    config = request.config
    try:
        loaded = load_rig(config.getoption("rig"), config.getoption("hil_set"))
        preflight(loaded)
        failure = None
    except HilError as exc:
        failure = f"rig: {exc}"
        request.session.shouldstop = "the rig is wrong (the error above says how)"
    if failure is not None:
        pytest.fail(failure, pytrace=False)  # outside the except: the cause once, not chained
    return loaded


@contextlib.contextmanager
def rig_lock(rig_name: str, holder: str, timeout_s: float):
    """Hold the rig's lock file (`fcntl.flock`) for the block; wait up to `timeout_s` for another holder.

    The holder writes who it is into the file, so a waiter that gives up can say who has the rig. The
    kernel drops the lock when the holding process dies. Limits: one machine only (flock on a network file
    system is not reliable), and the lock is by rig name, so two rig files naming one bench must share it.
    """
    path = Path(os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir()) / f"hil-rig-{_safe_name(rig_name)}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ConfigError(f"rig lock {path}: cannot create it ({exc.strerror}); expected a writable folder "
                          f"in {LOCK_DIR_ENV} (or the system temp folder when it is unset)") from None
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    who = os.pread(fd, 1024, 0).decode(errors="replace").strip() or "an unknown process"
                    raise HilError(f"rig '{rig_name}' is in use by {who}; gave up after {timeout_s:g} s waiting "
                                   f"for {path} (wait for that run, or raise --hil-lock-timeout)") from None
                time.sleep(LOCK_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} running {holder} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the flock


def _say(config, line: str) -> None:
    """Show `line` on the terminal now, past pytest's output capture (progress of a long test)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    terminal = config.pluginmanager.getplugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if terminal is not None and not hasattr(config, "workerinput"):
            terminal.write_line(line)
        else:  # an xdist worker's stderr is the terminal's, likely in the middle of the controller's line
            print(f"\n{line}", file=sys.stderr, flush=True)


_CALL_REPORT = pytest.StashKey[pytest.TestReport]()
VERDICT_CHARS = 140  # of a failure's message, under a plot's title


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep the test body's report, so the bench's teardown can put its verdict on the plot."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_REPORT] = report


def _verdict(item) -> str:
    """"passed", or "FAILED: " and the failure's first line (the assertion or `measure`'s limits)."""
    report = item.stash.get(_CALL_REPORT, None)
    if report is None:
        return ""
    if not report.failed:
        return report.outcome
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    first = text.strip().splitlines()[0] if text.strip() else "failed"
    # pytest.fail's (and measure's) own words without the exception's name; others by its short name
    first = re.sub(r"^(?:Failed: |[\w.]+\.(?=\w+: ))", "", first)
    return "FAILED: " + (first if len(first) <= VERDICT_CHARS else first[:VERDICT_CHARS - 1] + "…")


@pytest.fixture
def hil_seed(rig) -> int:
    """The seed of this test's bench: the rig's, or under `--hil-repeat` this repetition's."""
    return rig.seed


@pytest.fixture
def bench_rig(request, rig, hil_seed):
    """The rig a test's bench is built from: `rig` itself, or under `--hil-repeat` `rig` on the repetition's
    seed. A repetition records its seed and the test it repeats (JUnit properties), for the report's spread."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "hil_seed" in callspec.params:
        request.node.user_properties += [(SEED_PROPERTY, hil_seed),
                                         (REPEAT_OF_PROPERTY, _repeat_of(request.node.nodeid, hil_seed))]
    if hil_seed == rig.seed:
        return rig
    return load_rig(rig.path, [*rig.overrides, f"rig.seed={hil_seed}"])


def _skip_unless_capable(request, rig) -> None:
    for marker in request.node.iter_markers("rig_requires"):
        missing = set(marker.args) - rig.capabilities
        if missing:
            pytest.skip(f"rig '{rig.name}' lacks {sorted(missing)} (has {sorted(rig.capabilities)})")


@contextlib.contextmanager
def _test_bench(request, rig):
    """The test's one bench: locked (hardware rigs), recorded (`--hil-report`), shows progress, and made safe,
    read back and closed whatever ends the test."""
    config = request.config
    report = config.getoption("hil_report")
    tests_dir = Path(report) / "tests" if report else None
    # The module's name keeps two files' tests of one name apart (from its path: a file outside the rootdir
    # has a node id that names no module).
    test = request.node.nodeid.partition("::")[2]
    name = _safe_name(f"{request.node.path.stem}.{test}")
    with contextlib.ExitStack() as stack:
        try:
            if rig.data["dut"]["kind"] == "external":
                stack.enter_context(rig_lock(rig.name, request.node.nodeid, config.getoption("hil_lock_timeout")))
            instance = Bench(rig, report_dir=tests_dir, name=name)
            failure = None
        except HilError as exc:
            failure = f"bench could not start: {exc}"
            if isinstance(exc, ConfigError):
                # A driver missing, a setting python-can refuses: every later test would fail alike. Say it once.
                request.session.shouldstop = "the bench's configuration is wrong (the failure above says how)"
        if failure is not None:
            pytest.fail(failure, pytrace=False)  # outside the except: the cause once, not chained
        request.node.stash[_BENCH] = instance   # for the DTC audit after the test's body (_audit_dtcs)
        if tests_dir is not None:
            request.node.user_properties.append((ARTIFACT_PROPERTY, name))
        instance.loop.on_progress(lambda p: _say(config, f"{request.node.nodeid}: {p}; {instance.bms.describe()}"),
                                  PROGRESS_EVERY_S)
        try:
            with live(instance):
                _check_firmware(request, instance)
                yield instance
        finally:
            interrupted = None
            try:
                with held_interrupts():  # a Ctrl-C or SIGTERM from here on waits until this is done
                    try:
                        safe = instance.make_safe()
                    except NotSafe as exc:
                        safe = exc.state
                    finally:
                        instance.close()
                        stack.close()  # the rig is free again; plotting needs no hardware
                    request.node.user_properties += [(TIMING_PREFIX + k, v) for k, v in
                                                     instance.loop.timing().items() if v is not None]
                    request.node.user_properties += safe.properties()
                    if (firmware := instance.reported_firmware) is not None:
                        request.node.user_properties.append((FIRMWARE_PROPERTY, firmware))
                    if tests_dir is not None:
                        write_test_artifacts(tests_dir, name, request.node.nodeid, _verdict(request.node))
            except KeyboardInterrupt as exc:  # held until here, so it cannot hide a bench left unsafe
                interrupted = _stop_the_run(request.session, exc)
            if not safe.confirmed:
                pytest.fail(f"bench not confirmed safe after the test: {safe.describe()}", pytrace=False)
            if interrupted is not None:
                pytest.fail(f"interrupted ({interrupted}) while the bench went safe, which was confirmed; the run "
                            "stops here", pytrace=False)


def _check_firmware(request, bench: Bench) -> None:
    """Fail the test on a BMS that runs another build than the rig names, and stop the run: every test after
    would test the wrong build."""
    try:
        bench.check_firmware()
        return
    except HilError as exc:
        failure = f"bench could not start: {exc}"
    request.session.shouldstop = "the BMS runs another build than the rig expects, or does not say which"
    pytest.fail(failure, pytrace=False)   # outside the except: the cause once, not chained


@pytest.fixture
def bench(request, rig, bench_rig):
    """A bench assembled from the rig; made safe (load off, contactors open, outputs off, each read back) and
    closed after, whatever ends the test. A bench not confirmed safe fails the test's teardown; the read-back
    goes into the JUnit properties (`safe:*`) and the trace's events.

    With `--hil-report`, the test's trace, CAN log, plot and MDF4 land in DIR/tests/<test name>.*.
    """
    _skip_unless_capable(request, rig)
    with _test_bench(request, bench_rig) as instance:
        yield instance


@pytest.fixture
def custom_bench(request, rig, bench_rig):
    """`custom_bench("pack.soc0=0.3", ...)` builds the test's bench from the rig plus `--set`-style overrides
    (a spread pack, another calibration), for a test that computes them (from `spec`, say). The bench is
    recorded, locked, made safe and closed like `bench`'s; a test has one bench, so it takes one of the two
    fixtures, and calls this one once."""
    if "bench" in request.fixturenames:
        raise pytest.UsageError(f"{request.node.nodeid}: takes both `bench` and `custom_bench`; a test has one "
                                "bench (two would drive one rig at once)")
    _skip_unless_capable(request, rig)
    with contextlib.ExitStack() as stack:
        def make(*overrides: str) -> Bench:
            if made:
                raise pytest.UsageError(f"{request.node.nodeid}: custom_bench called twice; a test has one bench")
            try:
                custom = load_rig(bench_rig.path, [*bench_rig.overrides, *overrides])
            except HilError as exc:
                pytest.fail(f"custom_bench{overrides}: {exc}", pytrace=False)
            made.append(stack.enter_context(_test_bench(request, custom)))
            return made[0]

        made: list[Bench] = []
        yield make


@pytest.fixture
def bms(bench):
    return bench.bms


@pytest.fixture
def pack(bench):
    return bench.pack


@pytest.fixture
def cell_emulator(bench):
    return bench.cell_emulator


@pytest.fixture
def loop(bench):
    return bench.loop


@pytest.fixture
def spec(rig):
    """The rig's spec (`[spec] file`), without building a bench: a `custom_bench` test computes from it."""
    try:
        return load_spec(rig.spec_path)
    except HilError as exc:
        pytest.fail(f"{rig.path} [spec]: {exc}", pytrace=False)


@pytest.fixture
def can_log(bench):
    return bench.can_log


@pytest.fixture
def profile(request, bench_rig):
    """The load profile of a `@pytest.mark.profile(name, **params)` case, sampled on the bench's dt.

    The bench's seed (`hil_seed`) applies unless params give one; params may set `duration_s` (some defaults are long).
    """
    if not hasattr(request, "param"):
        pytest.fail("the `profile` fixture needs @pytest.mark.profile(\"name\", ...) on the test, e.g. "
                    "@pytest.mark.profile(\"hppc\", duration_s=60)", pytrace=False)
    from hil.profiles import PROFILES
    name, params = request.param
    if "path" in params:   # a recorded trace replayed (csv-trace): which file, and which version of it
        trace = Path(params["path"])
        request.node.user_properties.append((PROFILE_FILE_PROPERTY, f"{shown(trace)} sha256:{digest(trace)}"))
    return PROFILES[name](**{"dt_s": bench_rig.dt_s, "seed": bench_rig.seed, **params})


@pytest.fixture
def measure(record_property):
    """`measure(name, value, low=None, high=None, unit="")`: record a measurement and check its limits.

    The value, unit, limits and margin go to the JUnit XML as properties and into the report; a value
    outside its limits (or NaN) fails the test with the margin shown.
    """
    def _measure(name: str, value: float, low: float | None = None, high: float | None = None, unit: str = ""):
        measurement = Measurement(name, float(value), low, high, unit)
        for key, prop in measurement.properties():
            record_property(key, prop)
        if not measurement.passed:
            pytest.fail(f"outside limits: {measurement.describe()}", pytrace=False)
        return value
    return _measure


class _RunReport:
    """Collects every test's outcome and properties (the workers' too, under xdist); writes the index."""

    def __init__(self, config, report_dir: Path):
        self.config = config
        self.report_dir = report_dir
        self.results = Results()
        self.started_s = time.time()
        self.index_path: Path | None = None
        self.spread_path: Path | None = None
        self.reruns: dict[str, str] = {}
        self.coverage: Coverage | None = None

    def pytest_collectreport(self, report):
        if report.failed:
            self.results.add(report.nodeid or "collection", "setup", "failed", 0.0, report.longreprtext)

    def pytest_runtest_logreport(self, report):
        details = ""
        if report.failed:
            details = report.longreprtext
        elif report.skipped:
            details = getattr(report, "wasxfail", "") or (report.longrepr[2] if isinstance(report.longrepr, tuple)
                                                          else str(report.longrepr))
        self.results.add(report.nodeid, report.when, report.outcome, report.duration, details,
                         report.user_properties, xfail=hasattr(report, "wasxfail"))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        run = {"title": "BMS HIL report", "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_s)),
               "duration_s": time.time() - self.started_s,
               "command": " ".join(["pytest", *self.config.invocation_params.args]), "notes": missing_notes()}
        try:
            loaded = load_rig(self.config.getoption("rig"), self.config.getoption("hil_set"))
            self.reruns = self._reruns(loaded)
            run.update(rig=f"{loaded.name} ({loaded.path})", clock=loaded.clock_description,
                       realtime_priority=loaded.realtime_priority, facts=_run_facts(self.config),
                       rerun=self.reruns)
            spec = load_spec(loaded.spec_path)
            self.coverage = spec_coverage(shown(spec.path), spec.requirements(), self.results)
            run["coverage"] = self.coverage
        except HilError as exc:
            run["notes"].append(f"rig or spec not loaded: {exc}")
        xml_path = getattr(self.config.option, "xmlpath", None)
        if xml_path:
            run["junit"] = os.path.relpath(Path(xml_path).resolve(), self.report_dir.resolve())
        self.report_dir.mkdir(parents=True, exist_ok=True)
        if repeated(self.results):
            self.spread_path = write_csv(self.report_dir, spreads(self.results))
        if self.coverage is not None:
            write_coverage(self.report_dir, self.coverage)
        self.index_path = write_index(self.report_dir, self.results, run)

    def _reruns(self, rig) -> dict[str, str]:
        """For each test that failed, the command that runs it again (`hil.provenance.rerun_command`)."""
        reruns = {}
        for result in self.results.tests.values():
            if result.outcome in FAILED_OUTCOMES:
                name = result.nodeid.rpartition("::")[2].partition("[")[0]
                reruns[result.nodeid] = rerun_command(rig, name, result.value_of(SEED_PROPERTY))
        return reruns

    def pytest_terminal_summary(self, terminalreporter):
        for nodeid, command in list(self.reruns.items())[:RERUNS_SHOWN]:
            terminalreporter.write_line(f"hil rerun {nodeid}: {command}")
        if len(self.reruns) > RERUNS_SHOWN:
            terminalreporter.write_line(f"hil rerun: {len(self.reruns) - RERUNS_SHOWN} more in the report")
        if self.spread_path is not None:
            terminalreporter.write_sep("-", f"hil spread over seeds: {self.spread_path}")
        if self.coverage is not None:
            terminalreporter.write_line(f"hil spec coverage: {self.coverage.summary()} ({COVERAGE_JSON})")
        if self.index_path is not None:
            terminalreporter.write_sep("-", f"hil report: {self.index_path}")
