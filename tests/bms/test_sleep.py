"""Sleep and wake-up (`[sleep]`, optional): an idle BMS falls asleep and draws next to nothing from its 12 V
supply; the host's first frame wakes it as it was; a host that keeps talking keeps it awake.

Parked (a vehicle for weeks, a drone on the shelf, a backup unit before its rack is commissioned), an ECU that stays
awake drains the 12 V battery that powers it: at the reference board's 0.12 A, a 60 Ah battery in three weeks. So a
BMS sleeps once nothing has asked anything of it for a while. But one that falls asleep while its host still talks
to it (a rack controller holding a backup unit in STANDBY, waiting for a grid loss) must first wake, a boot, before
it can close: the rack's transfer to battery comes that much late.
"""
import pytest

from hil.protocol import BmsState
from hil.spec import UNDER_LIMITS

from .observe import sent_since, watch
from .stimuli import stimulus

# How long the BMS must have been silent before it counts as asleep and the supply's current is read: the board's
# own transient (a regulator settling, an RTC's first tick) is over.
SETTLE_S = 0.5
# How far the SOC may move across a sleep: the pack rested, so only what the BMS saved and read back.
MAX_SOC_CHANGE = 0.01
# A host that keeps talking, in STANDBY, this many times max_idle_s: it must see no gap in the BMS's frames.
AWAKE_FACTOR = 1.5
# What a parked BMS's wake-up timer must find, each past its band by PARKED_PAST_BAND tolerances: a cell leaking to
# empty, and one heating (every rig's emulator drives the thermistors: the OT band tests run everywhere).
PARKED_CHECKS = ("cell_uv", "cell_ot")
PARKED_PAST_BAND = 5


def _sleep(spec) -> dict:
    if "sleep" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [sleep]: this BMS has no sleep mode of its own")
    return spec.section("sleep")


def _standby(bench) -> None:
    """Closed once (a normal power-up), then asked for STANDBY: every contactor open, as a parked pack is left."""
    bench.power_up()
    bench.bms.request("standby")
    bench.loop.run_until(lambda: not bench.bms.any_contactor_closed, 3.0,
                         lambda: f"contactors still closed after a STANDBY request: {bench.bms.describe()}")


def _fall_asleep(bench, sleep: dict, rig, measure, suffix: str = "") -> float:
    """The host stops sending: within max_idle_s of its last frame the BMS must fall silent and, on rigs with
    `lv_supply`, draw at most max_quiescent_ma. Returns when it was seen asleep."""
    bms = bench.bms
    status = bms.contactor_readback.message
    bms.heartbeat(False)
    last_host_s = max(bench.sender.last_sent_s(name) for name in bms.heartbeat_messages)
    # Silent for SETTLE_S, not a few cycles: over a real wire a busy machine can hold a frame back that long, and
    # the supply would then be read with the BMS still awake.
    silent_cycles = SETTLE_S / (bms.monitor.cycle_s(status) or SETTLE_S)
    bench.loop.run_until(lambda: bms.monitor.is_absent(status, silent_cycles), sleep["max_idle_s"] + SETTLE_S + 1.0,
                         lambda: f"the BMS still sends {status} {bench.loop.t_s - last_host_s:.1f} s after the host's "
                                 f"last frame: {bms.describe()}")
    measure(f"sleep_after_idle{suffix}", bms.monitor.stats[status].last_s - last_host_s, high=sleep["max_idle_s"],
            unit="s")
    if "lv_supply" in rig.capabilities:
        measure(f"quiescent_current{suffix}", bench.supply.measure_current_a() * 1000,
                high=sleep["max_quiescent_ma"], unit="mA")
    return bench.loop.t_s


def _wake(bench, sleep: dict, asleep_s: float, measure, state: BmsState, suffix: str = "") -> None:
    """The host's frames again: the BMS's status frames must be back within max_wake_ms of its first, and then
    report `state`."""
    bms = bench.bms
    status = bms.contactor_readback.message
    stats = bms.monitor.stats[status]
    bms.heartbeat(True)

    def sent_since_asleep() -> list[float]:
        return [sent_s for name in bms.heartbeat_messages
                if (sent_s := bench.sender.last_sent_s(name) or 0.0) >= asleep_s]

    bench.loop.run_until(sent_since_asleep, 1.0, "the host's first frame after the sleep")
    woken_s = min(sent_since_asleep())   # when the first of them went out
    awake_s = bench.loop.run_until(lambda: sent_since(stats, woken_s), 5 * sleep["max_wake_ms"] / 1000,
                                   lambda: f"no {status} since the host's first frame: {bms.describe()}")
    measure(f"wake_time{suffix}", (awake_s - woken_s) * 1000, high=sleep["max_wake_ms"], unit="ms")
    # The state from before the sleep stays in the Monitor until the BMS has sent a new one: wait for one after the
    # wake-up.
    bench.loop.run_until(lambda: bms.state == state and stats.last_s > awake_s, 3.0,
                         lambda: f"not back in {state.name} after waking: {bms.describe()}")


@pytest.mark.verifies("sleep")
def test_an_idle_bms_sleeps_at_its_quiescent_current_and_wakes_on_the_hosts_next_frame(bench, spec, rig, measure):
    """The host stops sending in STANDBY: within max_idle_s of its last frame the BMS falls silent (asleep), and,
    on rigs with `lv_supply`, draws at most max_quiescent_ma from its supply. The host's next frame wakes it: its
    status frames come again within max_wake_ms, in STANDBY with the SOC it had, and it closes on request."""
    sleep = _sleep(spec)
    bms = bench.bms
    _standby(bench)
    soc = bms.soc
    asleep_s = _fall_asleep(bench, sleep, rig, measure)
    _wake(bench, sleep, asleep_s, measure, BmsState.STANDBY)
    assert not bms.faults, f"woke with faults: {bms.describe()}"
    # A SOC frame after the wake-up: it says INIT's RAM default until the SOC is read back from NVM.
    if bms.soc_message is not None:
        standby_s, soc_stats = bench.clock.now_s(), bms.monitor.stats[bms.soc_message]
        bench.loop.run_until(lambda: sent_since(soc_stats, standby_s), 2.0,
                             lambda: f"no {bms.soc_message} after the BMS woke: {bms.describe()}")
        assert abs(bms.soc - soc) <= MAX_SOC_CHANGE, f"SOC {soc:.3f} before the sleep, {bms.soc:.3f} after it"
    bench.power_up()


@pytest.mark.verifies("sleep")
def test_a_bms_left_in_fault_sleeps_too_and_wakes_with_its_fault(bench, spec, rig, measure):
    """An over-voltage trip, the cell back in range, then the host gone (a vehicle parked after the fault, a rack
    controller shut down): a BMS in FAULT must fall asleep as in STANDBY, or it drains the 12 V battery while
    nobody is there to clear it. Woken, it must still report the fault (latched, as in NVM), and close only once
    the host has cleared it."""
    sleep = _sleep(spec)
    bms, ov = bench.bms, spec.protections["cell_ov"]
    bench.power_up()
    bench.force_cell(0, ov.high + 0.01)
    bms.wait_state(BmsState.FAULT, 5 * ov.max_reaction_ms / 1000)
    bench.force_cell(0, None)
    bms.request("standby")   # the host, seeing the fault, asks for STANDBY before it goes
    asleep_s = _fall_asleep(bench, sleep, rig, measure, "_in_fault")
    _wake(bench, sleep, asleep_s, measure, BmsState.FAULT, "_in_fault")
    assert "cell_ov" in bms.faults, f"woke from its sleep in FAULT without the over-voltage fault: {bms.describe()}"
    bms.clear_faults()
    bench.power_up()


@pytest.mark.verifies("sleep", "protections.{name}")
@pytest.mark.parametrize("name", PARKED_CHECKS)
def test_a_parked_bms_wakes_by_itself_for_a_cell_out_of_range_and_for_nothing_else(bench, spec, rig, measure, name):
    """Asleep, a BMS must still look at its cells now and then by itself (a wake-up timer): a cell of a parked pack
    that leaks to empty through a soft short, recharged later, plates copper into a short circuit; one that heats is
    a fire with nobody there. With `max_check_period_s` in [sleep]: asleep with healthy cells, it stays silent for
    that long (a check that boots, frames and all, wakes the bus and every ECU that sleeps on it). Then the last
    cell falls below its cut-off, or its thermistor reads past the over-temperature band: the BMS must wake by itself
    and report the fault (its DTC stored, a record for the host's next frame and for the workshop) within
    max_check_period_s, plus max_wake_ms and the protection's reaction budget."""
    sleep = _sleep(spec)
    period_s = sleep.get("max_check_period_s")
    if period_s is None:
        pytest.skip(f"{spec.path.name} [sleep] has no max_check_period_s: this BMS does not check its cells asleep")
    bms, protection = bench.bms, spec.protections[name]
    past_band = (protection.low - PARKED_PAST_BAND * protection.tolerance if name in UNDER_LIMITS
                 else protection.high + PARKED_PAST_BAND * protection.tolerance)
    status = bms.contactor_readback.message
    stats = bms.monitor.stats[status]
    _standby(bench)
    _fall_asleep(bench, sleep, rig, measure, "_parked")
    heard = stats.count
    bench.loop.run_for(period_s)
    assert stats.count == heard, (f"asleep with healthy cells, the BMS sent {stats.count - heard} {status} frames in "
                                  f"{period_s:g} s: its checks wake the bus")
    apply, release = stimulus(bench, name)
    apply(past_band)
    forced_s = bench.loop.t_s
    bench.trace.mark(forced_s, f"{name} stimulus at {past_band:g} {protection.unit}, parked")
    budget_s = period_s + (sleep["max_wake_ms"] + protection.max_reaction_ms) / 1000
    try:
        found_s = bench.loop.run_until(lambda: name in bms.faults, budget_s + 1.0,
                                       lambda: f"asleep, the last cell's {name} stimulus at {past_band:g} "
                                               f"{protection.unit}: no {name} reported; {bms.describe()}")
    finally:
        release()
    measure(f"parked_check_detection_{name}", found_s - forced_s, high=budget_s, unit="s")
    # A clear is refused while the condition lasts: first the BMS must have read the released channel.
    settle_ms = spec.value("accuracy.temperature_settle_ms" if name == "cell_ot" else "accuracy.settle_ms")
    bench.loop.run_for(settle_ms / 1000)
    bms.heartbeat(True)
    bms.clear_faults()
    bench.power_up()


@pytest.mark.verifies("sleep")
def test_a_host_that_keeps_talking_keeps_the_bms_awake(bench, spec, measure):
    """In STANDBY with the host's frames coming, for longer than the BMS may idle before it sleeps: no gap in its
    status frames (the longest at most three cycles), and it closes on request as fast as before."""
    sleep = _sleep(spec)
    bms = bench.bms
    _standby(bench)
    seen = watch(bench, AWAKE_FACTOR * sleep["max_idle_s"])
    names = sorted(state.name if state is not None else "none" for state in seen["states"])
    assert seen["states"] == {BmsState.STANDBY}, f"left STANDBY with the host asking for it: states {names}; " \
        f"{bms.describe()}"
    cycle_s = bms.monitor.cycle_s(bms.contactor_readback.message)
    measure("standby_status_gap", seen["longest_gap_s"] * 1000, high=3 * cycle_s * 1000, unit="ms")
    bench.power_up()
