"""The bench's safe state, reached from every way a run can end and confirmed by reading it back.

The safe state, in the order a bench engineer signs off (the host's frames started again first, as a test may
have stopped them: that wakes a BMS asleep):
0. supply (a rig with `[power_supply]`): the BMS's low-voltage supply back at its nominal voltage with its
   output on (a test may have cut or sagged it), confirmed when the supply measures it and a BMS_Status
   arrives after: the BMS is awake to open its contactors on request and report them open;
1. load: demand to zero, so no current flows when the contactors open (breaking current wears contacts
   and can weld them); confirmed when the loop applies 0 A and a BMS_PackData received after the next
   setpoint reports at most LOAD_ZERO_A;
2. contactors: the BMS is asked for STANDBY (VCU_ModeRequest 0), and a BMS_Status received after that
   request went out shows main positive, main negative and precharge open;
   (a BMS with a DUT map: its own request frame, pack-current and contactor signals, hil.devices.dut_map)
3. outputs: cell-emulator outputs off (CE_OutputEnable 0), and a CE_Status received after that command
   went out shows CE_OutputsOn 0 (a cell emulator with a map: its own command and read-back signals,
   hil.devices.ce_map). Outputs go off last because a BMS that loses its cell voltages while closed faults
   on under-voltage instead of opening on request.
Every step runs even when an earlier one failed (outputs go off even if the BMS ignores the request). Only
a frame that arrived after the command confirms a step, never a value left over from before it. The record
(`SafeState`) goes into the bench's trace events, and the plugin puts it in the JUnit properties (`safe:*`).

How each way a run can end reaches the safe state:
- a test ends or raises: the `bench` fixture's teardown calls `Bench.make_safe`;
- Ctrl-C (SIGINT) raises KeyboardInterrupt; the plugin makes the live benches safe at once
  (`make_live_benches_safe`), fails the bench test it interrupted as "interrupted", and stops the run after
  that test's teardown, which confirms the safe state again and records it;
- SIGTERM (a CI timeout, systemd, `kill`): `sigterm_interrupts()` turns it into KeyboardInterrupt;
- under pytest-xdist, the controller's first signal only asks it to stop once the workers have reported
  (`first_interrupt_requests_a_stop`): they make their own benches safe;
- a signal that comes while the bench goes safe waits until it is safe (`held_interrupts()`), so a second
  Ctrl-C cannot leave it half done; `make_safe`'s timeouts bound that wait;
- SIGKILL, a crash, power loss: nothing in the harness runs, so the boards' own watchdogs act. The cell
  emulator turns its outputs off 500 ms after the last CE_Control, the BMS opens its contactors
  heartbeat_timeout_ms after the last VCU frame, and `hil emulate` goes safe and exits once its parent
  process is gone.

Limits: Python runs signal handlers in the main thread only, between bytecodes, so a main thread blocked
inside a C call (a driver that never returns) delays them. Called from another thread, the two context
managers do nothing.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from hil.devices.bms import Readback
from hil.devices.power_supply import READBACK_TOLERANCE_V
from hil.errors import HilError

PROPERTY_PREFIX = "safe:"   # the JUnit properties of a test's safe-state read-back
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Largest current the BMS may still report with the load at zero: a current sensor's offset, A.
LOAD_ZERO_A = 0.1

_held: list[int] | None = None   # signals that came while held; None when nothing is held
_live: list = []                 # benches inside `live()`


@dataclass(frozen=True)
class Step:
    name: str
    confirmed: bool
    at_s: float | None   # bench time of the read-back that confirmed it
    seen: str            # what was read back, or why it was not confirmed

    def describe(self) -> str:
        if self.confirmed:
            return f"{self.name} confirmed at t={self.at_s:.3f} s: {self.seen}"
        return f"{self.name} NOT confirmed: {self.seen}"


@dataclass(frozen=True)
class SafeState:
    steps: tuple[Step, ...]

    @property
    def confirmed(self) -> bool:
        return all(step.confirmed for step in self.steps)

    def describe(self) -> str:
        return "; ".join(step.describe() for step in self.steps)

    def properties(self) -> list[tuple[str, object]]:
        """(name, value) pairs for a test's JUnit properties: the verdict, then one per step."""
        return [(f"{PROPERTY_PREFIX}confirmed", self.confirmed)] + [
            (PROPERTY_PREFIX + step.name, step.describe()) for step in self.steps]


class NotSafe(HilError):
    """A step of the safe state was not confirmed; `state` holds every step's read-back."""

    def __init__(self, state: SafeState):
        super().__init__(f"bench not confirmed safe: {state.describe()}")
        self.state = state


def make_safe(bench, timeout_s: float = 2.0) -> SafeState:
    """Supply on (if the rig has one), load zero, contactors open by request, cell-emulator outputs off; each
    confirmed by a fresh frame.

    Each step waits up to `timeout_s` of bench time. SIGINT and SIGTERM wait until all three are done. Each
    step's outcome is also noted in the bench's trace events. Raises `NotSafe` when a step is not confirmed.
    """
    # An interrupted or paused real-clock loop is behind the wall clock. Catching up would spend the timeouts
    # in one burst of ticks, and the policy "fail" would refuse to step; skipping resumes on the wall clock.
    policy, bench.loop.overrun_policy = bench.loop.overrun_policy, "skip"
    try:
        order = (("load", _load_off), ("contactors", _contactors_open), ("outputs", _outputs_off))
        if bench.supply is not None:
            order = (("supply", _supply_on),) + order
        with held_interrupts():
            # The host's frames on first (a test may have stopped them): a BMS asleep answers nothing until they wake
            # it. Its request stays as the test left it until the contactors' step, after the load is at zero.
            bench.bms.heartbeat(True)
            steps = tuple(_run_step(bench, name, command, timeout_s) for name, command in order)
    finally:
        bench.loop.overrun_policy = policy
    state = SafeState(steps)
    if not state.confirmed:
        raise NotSafe(state)
    return state


@contextlib.contextmanager
def live(bench):
    """Count `bench` as running for the block, so `make_live_benches_safe()` reaches it."""
    _live.append(bench)
    try:
        yield bench
    finally:
        _live.remove(bench)


def make_live_benches_safe() -> None:
    """Make every live bench safe now; a step not confirmed is noted in that bench's trace events.

    For the moment an interrupt is caught: pytest takes about half a second to format its report of a
    KeyboardInterrupt before it tears fixtures down, long enough for the boards' watchdogs to trip first.
    """
    for bench in list(_live):
        with contextlib.suppress(NotSafe):  # the fixture's teardown makes it safe again and reports it
            make_safe(bench)


def _run_step(bench, name: str, command: Callable, timeout_s: float) -> Step:
    try:
        bench.loop.step()   # after a pause this lands on the wall-clock grid, so the timeout counts from now
        confirmed, seen = command(bench)
        at_s = bench.loop.run_until(confirmed, timeout_s, seen)
        step = Step(name, True, at_s, seen())
    except Exception as exc:  # a dead bus or board must not stop the later steps
        step = Step(name, False, None, f"{type(exc).__name__}: {exc}")
    bench.trace.mark(bench.loop.t_s, f"safe state: {step.describe()}")
    return step


def _supply_on(bench):
    supply, monitor, status = bench.supply, bench.bms.monitor, bench.bms.contactor_readback.message
    measured_v = supply.restore()
    since_s = bench.clock.now_s()
    supply_ok = abs(measured_v - supply.nominal_v) <= READBACK_TOLERANCE_V

    def confirmed() -> bool:
        received_s = monitor.stats[status].last_s
        return supply_ok and received_s is not None and received_s > since_s

    def seen() -> str:
        received_s = monitor.stats[status].last_s
        return (f"{supply.where} measures {measured_v:.3f} V (nominal {supply.nominal_v:g} V); {status} "
                + ("never received" if received_s is None else f"last received at t={received_s:.3f} s")
                + f", supply restored at t={since_s:.3f} s")
    return confirmed, seen


def _load_off(bench):
    bench.set_load(0.0)
    bench.force_current(None)   # a sensor a test cut short left lying would read back a load that is not there
    bench.offset_current(0.0)
    # Within one setpoint period the cell emulator's current output, which the BMS measures, carries 0 A.
    setpoint_s = bench.loop.t_s + bench.rig.setpoint_period_s
    bms = bench.bms
    return _read_back(bms.monitor, "0 A setpoint", _seen_at(bench, lambda: bench.loop.t_s > setpoint_s),
                      bms.current_readback,
                      lambda v: bench.pack_current_a == 0.0 and abs(bms.reported_current_a(v)) <= LOAD_ZERO_A)


def _contactors_open(bench):
    bms = bench.bms
    bms.request("standby")
    return _read_back(bms.monitor, bms.request_message, _sent(bench, bms.sender, bms.request_message),
                      bms.contactor_readback, lambda v: not any(v.values()))


def _outputs_off(bench):
    emulator = bench.cell_emulator
    emulator.sender.start(emulator.control_message)   # the cell emulator's heartbeat, which carries the command
    emulator.enable(False)
    return _read_back(emulator.monitor, emulator.control_message,
                      _sent(bench, emulator.sender, emulator.control_message), emulator.outputs_readback,
                      emulator.outputs_off)


def _sent(bench, sender, message: str) -> Callable[[], float | None]:
    """When periodic `message` had gone out on `sender`'s bus from the next tick on (see `_seen_at`)."""
    since_s = bench.loop.t_s
    return _seen_at(bench, lambda: (last_s := sender.last_sent_s(message)) is not None and last_s >= since_s)


def _seen_at(bench, done: Callable[[], bool]) -> Callable[[], float | None]:
    """The clock's time when `done()` was first seen true (polled every tick), or None before.

    The clock's time, not the tick's deadline: on a real clock a late tick sends after its deadline, and a
    status frame that came before the send must not count as an answer to it.
    """
    first_s: list[float] = []

    def seen_s() -> float | None:
        if not first_s and done():
            first_s.append(bench.clock.now_s())
        return first_s[0] if first_s else None
    return seen_s


def _read_back(monitor, command: str, sent_s: Callable[[], float | None], status: Readback,
               safe: Callable[[dict], bool]):
    """A condition that holds once a `status.message` frame, received by `monitor` (the device's bus) after the
    command went out, shows its `status.signals` passing `safe`; and what was last seen, for the record."""
    status, signals = status.message, status.signals

    def snapshot() -> dict:  # that message's own values: a third-party DBC may use a name in another too
        return monitor.snapshot(signals, message=status)

    def confirmed() -> bool:
        sent = sent_s()
        received_s = monitor.stats[status].last_s
        values = snapshot()
        return (sent is not None and received_s is not None and received_s > sent
                and None not in values.values() and safe(values))

    def seen() -> str:
        received_s = monitor.stats[status].last_s
        values = " ".join(f"{name}={value}" for name, value in snapshot().items())
        when = "never received" if received_s is None else f"received at t={received_s:.3f} s"
        sent = sent_s()
        return f"{status} {values} ({when}); {command} " + (
            "not sent yet" if sent is None else f"out by t={sent:.3f} s")
    return confirmed, seen


class TickGuard:
    """Set by the loop while a tick runs. A SIGINT or SIGTERM that comes then is kept in `pending` and raised
    by the loop when the tick ends (`raise_pending`), so the interrupt never lands half-way through a frame
    being sent or a lock held inside python-can's queues, where the safe state would then wait forever. A
    second signal during the same tick raises at once: a tick that hangs can still be stopped."""
    active = False
    pending: int | None = None

    @classmethod
    def raise_pending(cls) -> None:
        if cls.pending is not None:
            signum, cls.pending = cls.pending, None
            raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


class Interrupts:
    """The first and the latest SIGINT or SIGTERM this process received while the handlers below were in
    place, or None: `hil run` exits as a shell expects of an interrupted command (128 + the first's number),
    and an interrupt Python swallowed is raised again as the signal it came from (the latest)."""
    first: int | None = None
    last: int | None = None


def _interrupt(signum: int, _frame) -> None:
    if Interrupts.first is None:
        Interrupts.first = signum
    Interrupts.last = signum
    if _held is not None:
        _held.append(signum)
        return
    if TickGuard.active and TickGuard.pending is None:
        TickGuard.pending = signum
        return
    TickGuard.pending = None
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


@contextlib.contextmanager
def first_interrupt_requests_a_stop(request_stop: Callable[[str], None]):
    """During the block, the first SIGINT or SIGTERM calls `request_stop(reason)` and the run goes on to stop
    in its own time; a second one raises KeyboardInterrupt as usual, to stop at once. For a process whose
    own work is waiting for others to finish (pytest-xdist's controller, whose workers make their benches
    safe and then report)."""
    if not _in_main_thread():
        yield
        return

    def stop_or_interrupt(signum: int, frame) -> None:
        if Interrupts.first is not None:
            _interrupt(signum, frame)
            return
        Interrupts.first = Interrupts.last = signum
        request_stop(f"interrupted ({signal.Signals(signum).name} received)")
    with _handling(stop_or_interrupt):
        yield


@contextlib.contextmanager
def _handling(handler: Callable[[int, object], None]):
    """`handler` for SIGINT and SIGTERM during the block; after it, the handlers that were there before (the
    default action where there was none that Python set)."""
    previous = {}
    try:
        for signum in HELD_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler_before is None else handler_before)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _keep_swallowed_interrupts(previous_hook):
    """A `sys.unraisablehook` that keeps a KeyboardInterrupt Python could only print: one raised while a
    `__del__` or a garbage-collector callback ran, which Python reports as "Exception ignored" and then
    carries on, as if Ctrl-C had never been pressed. It becomes pending, and the loop raises it at the end
    of its next tick (`TickGuard.raise_pending`)."""
    def hook(unraisable) -> None:
        if unraisable.exc_type is KeyboardInterrupt and TickGuard.pending is None:
            TickGuard.pending = Interrupts.last or signal.SIGINT
        previous_hook(unraisable)
    return hook


@contextlib.contextmanager
def sigterm_interrupts():
    """During the block, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so `finally` blocks and pytest's
    fixture teardown run before the process ends; both wait for the end of a running tick (`TickGuard`).
    An interrupt that lands where Python can only print it is kept for the loop to raise. The previous
    handlers are restored after."""
    if not _in_main_thread():
        yield
        return
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _keep_swallowed_interrupts(previous_hook)
    try:
        with _handling(_interrupt):
            yield
    finally:
        sys.unraisablehook = previous_hook


@contextlib.contextmanager
def held_interrupts():
    """Hold SIGINT and SIGTERM during the block; on leaving it, deliver the first one that came to the
    handler that was there before (KeyboardInterrupt, or the default action). Nested blocks join the
    outermost one."""
    global _held
    if _held is not None or not _in_main_thread():
        yield
        return
    _held = []
    try:
        with _handling(_interrupt):
            yield
    finally:
        held, _held = _held, None
        if held:
            signal.raise_signal(held[0])
