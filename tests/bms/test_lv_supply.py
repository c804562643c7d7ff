"""The BMS's own low-voltage supply (KL30): it rides through a cold crank and a jump start, and comes back from
a reset with its SOC and with any fault it had latched.

A BMS is an ECU on the vehicle's 12 V system. When the engine (or a generator set's starter) cranks, that
supply sags for seconds; when the 12 V battery is disconnected, it is gone. The bench's programmable supply
(`bench.supply`, SCPI) plays both; short steps run as the supply's own voltage list, timed by it.
"""
import pytest

from hil.protocol import BmsState

from .observe import sent_since, watch

# Every test here holds the BMS to [lv_supply] (its boot time, its SOC kept, what it rides through).
pytestmark = [pytest.mark.rig_requires("lv_supply"), pytest.mark.verifies("lv_supply")]

LOAD_A = 20.0           # discharge during the test: what the SOC must keep track of
DISCHARGE_S = 15.0      # long enough that the charge counted (~1.7 % of a 5 Ah cell) dwarfs the tolerance
DARK_S = 1.0            # how long a cut supply stays off


def _lv_supply(spec) -> dict:
    if "lv_supply" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [lv_supply]: this BMS has no low-voltage supply of its own")
    return spec.section("lv_supply")


def _ride_through(bench, measure, name: str, steps: list[tuple[float, float]], what: str) -> None:
    """Under load, with contactors closed, the supply plays `steps` ((volts, seconds), the last one the plateau):
    that must change nothing, no reset, no state change, no fault, no gap in the status frames (`name`: the
    longest, at most three cycles)."""
    bench.power_up("discharge")
    bench.set_load(LOAD_A)
    bench.loop.run_for(1.0)
    plateau_v, plateau_s = steps[-1]
    lead_s = sum(seconds for _, seconds in steps[:-1])
    started_s = bench.loop.t_s
    duration_s = bench.supply.play(steps)
    seen = watch(bench, lead_s + plateau_s / 2)
    held_v = bench.supply.measure_voltage_v()   # the supply does play it: a test that cannot fail is none
    assert abs(held_v - plateau_v) < 0.1, f"{bench.supply.where} reads {held_v} V during the {what}'s plateau"
    later = watch(bench, started_s + duration_s + 0.5 - bench.loop.t_s)   # and half a second after it
    states = seen["states"] | later["states"]
    names = sorted(state.name if state is not None else "none" for state in states)
    assert states == {BmsState.NORMAL}, (
        f"the BMS left NORMAL during a {what}: states {names}; {bench.bms.describe()}")
    assert not (seen["opened"] or later["opened"]), f"contactors opened during the {what}: {bench.bms.describe()}"
    assert not (seen["faults"] | later["faults"]), f"faults during the {what}: {seen['faults'] | later['faults']}"
    cycle_s = bench.bms.monitor.cycle_s(bench.bms.contactor_readback.message)
    measure(name, max(seen["longest_gap_s"], later["longest_gap_s"]) * 1000, high=3 * cycle_s * 1000, unit="ms")


def test_cold_crank_ride_through(bench, spec, measure):
    """Under load, with contactors closed, a crank down to the BMS's rated minimum must change nothing: no
    reset, no state change, no fault, no gap in its status frames."""
    lv = _lv_supply(spec)
    _ride_through(bench, measure, "crank_status_gap", [(lv["crank_low_v"], lv["crank_low_ms"] / 1000),
                                                       (lv["crank_hold_v"], lv["crank_hold_s"])],
                  f"crank to {lv['crank_low_v']} V")


def test_jump_start_ride_through(bench, spec, measure):
    """A jump start (another vehicle's, or a 24 V truck's, battery on the 12 V system) is an over-voltage the BMS
    must ride through unchanged, like the crank: its regulator is rated for it, and a lockout below it drops the
    contactors of a vehicle that is being started."""
    lv = _lv_supply(spec)
    if "jump_start_v" not in lv:
        pytest.skip(f"{spec.path.name} has no [lv_supply] jump_start_v: no over-voltage for this BMS to ride through")
    _ride_through(bench, measure, "jump_start_status_gap", [(lv["jump_start_v"], lv["jump_start_s"])],
                  f"jump start at {lv['jump_start_v']} V")


@pytest.mark.parametrize("loss", ["cut", "deep_crank", "bounce"])
def test_supply_loss_keeps_soc(bench, spec, measure, loss):
    """The supply is cut (or dips below the brown-out level) mid-discharge: the BMS goes dark, its contactors
    open. When the supply returns it must be back in STANDBY within max_boot_s, with the SOC it had. A bounce
    (a chattering KL30 connector) cuts it, and cuts it again for deep_crank_ms as soon as the BMS is heard
    from, while it starts up."""
    lv = _lv_supply(spec)
    bms = bench.bms
    bench.power_up("discharge")
    soc_start = bms.soc
    bench.set_load(LOAD_A)
    bench.loop.run_for(DISCHARGE_S)
    soc_before = bms.soc
    tolerance = lv["max_soc_loss_pct"] / 100
    assert soc_start - soc_before > 3 * tolerance, (
        f"SOC moved only {soc_start:.4f} -> {soc_before:.4f} in {DISCHARGE_S} s at {LOAD_A} A: too little to tell a "
        "kept SOC from a lost one")
    if loss in ("cut", "bounce"):
        bench.supply.output(False)
        returns_s = bench.loop.t_s + DARK_S
    else:
        deep_s = lv["deep_crank_ms"] / 1000
        bench.supply.play([(lv["deep_crank_v"], deep_s)])
        returns_s = bench.loop.t_s + deep_s
    # The host, as a VCU would once the BMS is silent, stops drawing and asks for STANDBY.
    bench.set_load(0.0)
    bms.request("standby")
    status = bms.contactor_readback.message
    bench.loop.run_until(lambda: bms.monitor.is_absent(status), 1.0,
                         lambda: f"the BMS kept sending {status} after its supply went to "
                                 f"{'0' if loss == 'cut' else lv['deep_crank_v']} V: {bms.describe()}")
    if loss in ("cut", "bounce"):
        bench.loop.run_until(lambda: bench.loop.t_s >= returns_s, DARK_S + 1.0)
        bench.supply.output(True)
        returns_s = bench.loop.t_s
    if loss == "bounce":
        bench.loop.run_until(lambda: not bms.monitor.is_absent(status, k_cycles=1.0), 5 * lv["max_boot_s"],
                             lambda: f"no {status} after the supply returned: {bms.describe()}")
        deep_s = lv["deep_crank_ms"] / 1000
        bench.supply.play([(0.0, deep_s)])
        returns_s = bench.loop.t_s + deep_s
        bench.loop.run_until(lambda: bench.loop.t_s >= returns_s, deep_s + 1.0)
    boot_s = bms.wait_state(BmsState.STANDBY, 5 * lv["max_boot_s"]) - returns_s
    assert not bms.contactors_closed, f"contactors closed after the reset without a request: {bms.describe()}"
    if bms.soc_message is None:
        pytest.skip("this BMS's DUT map has no soc: boot time measured, SOC not readable")
    # A SOC frame sent since the boot: the value from before the reset is still in the Monitor until then.
    standby_s, soc_stats = bench.clock.now_s(), bms.monitor.stats[bms.soc_message]
    bench.loop.run_until(lambda: sent_since(soc_stats, standby_s), 2.0,
                         lambda: f"no {bms.soc_message} after the BMS came back: {bms.describe()}")
    soc_after = bms.soc
    measure(f"boot_after_{loss}", boot_s, high=lv["max_boot_s"], unit="s")
    measure(f"soc_kept_after_{loss}", (soc_after - soc_before) * 100, low=-lv["max_soc_loss_pct"],
            high=lv["max_soc_loss_pct"], unit="%")


def test_latched_fault_survives_a_supply_cut(bench, spec, measure):
    """The BMS cut an over-current and latched the fault; the load is gone, its cause may not be (a short behind a
    fuse that did not blow). A reset of its supply (a key cycle, a chattering connector) must not clear the fault:
    the BMS must come back in FAULT, refuse a close request, and close again only once the host has cleared it."""
    lv = _lv_supply(spec)
    if not lv.get("keeps_faults", False):
        pytest.skip(f"{spec.path.name} [lv_supply] does not state keeps_faults = true: this BMS's latched faults "
                    "need not survive a reset")
    bms, oc = bench.bms, spec.protections["discharge_oc"]
    bench.power_up("discharge")
    bench.set_load(oc.high + 1.0, honour_limits=False)
    bms.wait_state(BmsState.FAULT, 5 * oc.max_reaction_ms / 1000)
    bench.set_load(0.0)
    assert "discharge_oc" in bms.faults, f"tripped for the wrong reason: {bms.describe()}"
    status = bms.contactor_readback.message
    bench.supply.output(False)
    bench.loop.run_until(lambda: bms.monitor.is_absent(status), 1.0,
                         lambda: f"the BMS kept sending {status} after its supply was cut: {bms.describe()}")
    bench.loop.run_for(DARK_S)
    bench.supply.output(True)
    on_s, returns_s, stats = bench.clock.now_s(), bench.loop.t_s, bms.monitor.stats[status]
    back_s = bench.loop.run_until(
        lambda: sent_since(stats, on_s) and bms.state != BmsState.INIT,
        5 * lv["max_boot_s"], lambda: f"the BMS did not come out of INIT after its supply returned: {bms.describe()}")
    assert bms.state == BmsState.FAULT and "discharge_oc" in bms.faults, (
        f"the latched discharge_oc did not survive the reset: {bms.describe()}")
    measure("boot_into_fault", back_s - returns_s, high=lv["max_boot_s"], unit="s")
    bms.request("discharge")   # a VCU that asks again, as after any key cycle
    bench.loop.run_for(1.0)
    assert bms.state == BmsState.FAULT and not bms.contactors_closed, (
        f"a close request after the reset was obeyed before the fault was cleared: {bms.describe()}")
    bms.request("standby")
    bms.clear_faults()
    bms.wait_state(BmsState.STANDBY, 1.0)
    bench.power_up("discharge")   # cleared by the host: the pack is usable again
