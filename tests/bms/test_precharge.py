"""The power-up contactor sequence, as the BMS reports it: precharge first, then main, then precharge open.

Closing the main contactor onto an empty DC link draws an inrush that can weld its contacts, so the BMS
must charge the link through the precharge contactor (and its resistor) first. Once the main contactor is
closed the precharge path must open: its resistor is sized for a pulse, not for the load current. Runs when
the spec has a [precharge] table and the BMS's proxy reads its precharge contactor.
"""
import pytest

from hil.protocol import BmsState

from .loads import steady_load_a


class Sequence:
    """The times (s) the BMS's reports first showed the precharge contactor closed, the main contactors
    closed, and then the precharge contactor open again, polled every tick."""

    def __init__(self, bms):
        self.bms = bms
        self.precharge_s = self.main_s = self.released_s = None
        self.seen: list[str] = []

    def poll(self, t_s: float) -> bool:
        """Note what changed; True once the sequence is complete (main closed, precharge open)."""
        precharge, main = self.bms.precharge_closed, self.bms.contactors_closed
        state = f"precharge={'closed' if precharge else 'open'} main={'closed' if main else 'open'}"
        if not self.seen or not self.seen[-1].endswith(state):
            self.seen.append(f"t={t_s:.3f} s {state}")
        if precharge and self.precharge_s is None and self.main_s is None:
            self.precharge_s = t_s
        if main and self.main_s is None:
            self.main_s = t_s
        if main and not precharge and self.released_s is None:
            self.released_s = t_s
        return self.released_s is not None

    def describe(self) -> str:
        return "; ".join(self.seen) + f"; {self.bms.describe()}"


def _precharge_limits_in_standby(bench, spec, key: str) -> dict:
    """The spec's [precharge], once the BMS is in STANDBY with the outputs on; skips, before anything is
    switched, where the spec has no `key` or the BMS's proxy cannot see its precharge contactor."""
    if key not in spec.data.get("precharge", {}):
        pytest.skip(f"{spec.path.name} has no [precharge] {key}: this BMS has no precharge stage, or no such limit")
    if bench.bms.precharge_closed is None:
        pytest.skip("this BMS's proxy reads no precharge contactor (a DUT map without precharge_contactor)")
    bench.cell_emulator.enable(True)
    bench.bms.wait_state(BmsState.STANDBY, 3.0)
    return spec.section("precharge")


def _closing(bench, limits: dict, ask) -> tuple[Sequence, float]:
    """`ask()` the BMS to close: the sequence its reports showed until the precharge contactor opened behind the
    main ones, and when it was asked. Fails where the main contactors closed with no precharge before them."""
    sequence = Sequence(bench.bms)
    asked_s = bench.loop.t_s
    ask()
    bench.loop.run_until(lambda: sequence.poll(bench.loop.t_s), 5 * limits["max_close_ms"] / 1000,
                         sequence.describe)
    assert sequence.precharge_s is not None and sequence.precharge_s < sequence.main_s, (
        f"main contactors closed with no precharge before them: {sequence.describe()}")
    return sequence, asked_s


@pytest.mark.verifies("precharge")
def test_precharge_precedes_the_main_contactor(bench, spec, measure):
    limits = _precharge_limits_in_standby(bench, spec, "max_close_ms")
    assert not bench.bms.contactors_closed and not bench.bms.precharge_closed, bench.bms.describe()
    sequence, requested_s = _closing(bench, limits, lambda: bench.bms.request("discharge"))
    measure("precharge_duration", (sequence.main_s - sequence.precharge_s) * 1000,
            low=limits["min_precharge_ms"], unit="ms")
    measure("precharge_close_time", (sequence.main_s - requested_s) * 1000, high=limits["max_close_ms"], unit="ms")
    measure("precharge_overlap", (sequence.released_s - sequence.main_s) * 1000, high=limits["max_overlap_ms"],
            unit="ms")


@pytest.mark.verifies("precharge")
def test_a_cleared_fault_closes_again_through_the_precharge(bench, spec, measure):
    """A trip opens the contactors and the load drains the DC link. Cleared by the host with its request to close
    still standing, the BMS must precharge again, as at power-up: a recovery that closes the main contactors at
    once ("back to where it was") is the inrush that welds them, on the path a bench runs least."""
    limits = _precharge_limits_in_standby(bench, spec, "max_close_ms")
    ov = spec.protections["cell_ov"]
    _closing(bench, limits, lambda: bench.bms.request("discharge"))
    channel = bench.pack.n_series - 1
    bench.force_cell(channel, ov.high + 0.01)
    bench.bms.wait_state(BmsState.FAULT, 5 * ov.max_reaction_ms / 1000)
    bench.force_cell(channel, None)
    bench.bms.wait_contactors_open(1.0)
    bench.loop.run_for(0.2)   # the cell back below OV in the BMS's reading, its fault no longer active
    sequence, _ = _closing(bench, limits, bench.bms.clear_faults)   # the request to close still standing
    measure("precharge_duration_after_fault", (sequence.main_s - sequence.precharge_s) * 1000,
            low=limits["min_precharge_ms"], unit="ms")


@pytest.mark.verifies("precharge")
@pytest.mark.rig_requires("dc_link_short")
def test_precharge_into_a_shorted_link_is_aborted(bench, spec, measure):
    """A DC link that cannot charge (shorted behind the contactors): the BMS must give up within max_abort_ms,
    with a precharge fault and every contactor open, for its precharge resistor carries the short's current
    meanwhile. It must never close a main contactor onto the short, nor try again by itself."""
    budget_ms = _precharge_limits_in_standby(bench, spec, "max_abort_ms")["max_abort_ms"]
    sequence = Sequence(bench.bms)
    try:
        bench.cell_emulator.set_dc_link_short(True)
        bench.trace.mark(bench.loop.t_s, "DC link shorted")
        requested_s = bench.loop.t_s
        bench.bms.request("discharge")
        aborted_s = bench.loop.run_until(
            lambda: sequence.poll(bench.loop.t_s) or ("precharge" in bench.bms.faults
                                                      and not bench.bms.any_contactor_closed),
            5 * budget_ms / 1000, lambda: f"no precharge fault with every contactor open; {sequence.describe()}")
        assert sequence.main_s is None, f"a main contactor closed onto the shorted link: {sequence.describe()}"
        assert sequence.precharge_s is not None, f"the precharge never started: {sequence.describe()}"
        retried_s = bench.bms.left_fault_within(1.0)   # the request to close still standing
        assert retried_s is None, f"the BMS left FAULT or closed a contactor again by itself: {bench.bms.describe()}"
    finally:
        bench.cell_emulator.set_dc_link_short(False)   # the relay is the bench's: never leave it closed
        bench.trace.mark(bench.loop.t_s, "DC link short removed")
    measure("precharge_abort_time", (aborted_s - requested_s) * 1000, high=budget_ms, unit="ms")


def _closed_under_load(bench, spec, honour_limits: bool) -> tuple[dict, float]:
    """The spec's [shutdown], once the BMS is closed with the suite's load drawn for a second; skips where the
    spec has none. Returns it and the current drawn."""
    if "shutdown" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [shutdown]: this BMS does not hold its contactors for the current "
                    "to fall")
    load_a = steady_load_a(spec)
    bench.power_up()
    bench.set_load(load_a, honour_limits=honour_limits)
    bench.loop.run_for(1.0)
    assert bench.bms.contactors_closed and bench.pack_current_a > 0.9 * load_a, (
        f"{load_a:g} A asked, {bench.pack_current_a:g} A drawn: {bench.bms.describe()}")
    return spec.section("shutdown"), load_a


def _standby_until_open(bench, timeout_s: float) -> tuple[float, float]:
    """Request STANDBY; the time until the BMS reports its contactors open, and the current drawn on the last tick
    they were closed (what they broke)."""
    breaking = {"a": bench.pack_current_a}

    def opened() -> bool:
        if bench.bms.contactors_closed:
            breaking["a"] = bench.pack_current_a
            return False
        return True

    requested_s = bench.loop.t_s
    bench.bms.request("standby")
    opened_s = bench.loop.run_until(opened, timeout_s, lambda: f"the contactors still closed after the STANDBY "
                                                             f"request; {bench.bms.describe()}")
    return opened_s - requested_s, breaking["a"]


@pytest.mark.verifies("shutdown")
def test_a_standby_request_under_load_opens_once_the_host_has_stopped_drawing(bench, spec, measure):
    """A main contactor is rated for thousands of breaks at a few amps and a handful at hundreds: asked for STANDBY
    under load, the BMS must drop its limits first and open once the host, following them, has stopped drawing."""
    shutdown, load_a = _closed_under_load(bench, spec, honour_limits=True)
    open_s, breaking_a = _standby_until_open(bench, 5 * shutdown["max_open_ms"] / 1000)
    measure("shutdown_open_current", abs(breaking_a), high=shutdown["max_open_current_a"], unit="A")
    measure("shutdown_open_time", open_s * 1000, high=shutdown["max_open_ms"], unit="ms")
    assert bench.bms.state == BmsState.STANDBY and not bench.bms.faults, bench.bms.describe()


@pytest.mark.verifies("shutdown")
def test_a_host_that_keeps_drawing_cannot_hold_the_contactors_closed(bench, spec, measure):
    """A host that ignores the limits the BMS dropped must not keep the contactors closed by drawing: the BMS
    opens within max_forced_open_ms of the STANDBY request, under load if it must."""
    shutdown, load_a = _closed_under_load(bench, spec, honour_limits=False)
    open_s, breaking_a = _standby_until_open(bench, 5 * shutdown["max_forced_open_ms"] / 1000)
    measure("shutdown_forced_open_time", open_s * 1000, high=shutdown["max_forced_open_ms"], unit="ms")
    assert bench.bms.state == BmsState.STANDBY, bench.bms.describe()
