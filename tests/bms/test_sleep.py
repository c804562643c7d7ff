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

from .observe import sent_since, watch

# Once asleep, how long to wait before reading the supply's current: the board's own transient (a regulator
# settling, an RTC's first tick) is over.
SETTLE_S = 0.5
# How far the SOC may move across a sleep: the pack rested, so only what the BMS saved and read back.
MAX_SOC_CHANGE = 0.01
# A host that keeps talking, in STANDBY, this many times max_idle_s: it must see no gap in the BMS's frames.
AWAKE_FACTOR = 1.5


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


def test_an_idle_bms_sleeps_at_its_quiescent_current_and_wakes_on_the_hosts_next_frame(bench, spec, rig, measure):
    """The host stops sending in STANDBY: within max_idle_s of its last frame the BMS falls silent (asleep), and,
    on rigs with `lv_supply`, draws at most max_quiescent_ma from its supply. The host's next frame wakes it: its
    status frames come again within max_wake_ms, in STANDBY with the SOC it had, and it closes on request."""
    sleep = _sleep(spec)
    bms = bench.bms
    status = bms.contactor_readback.message
    stats = bms.monitor.stats[status]
    _standby(bench)
    soc = bms.soc
    bms.heartbeat(False)
    last_host_s = max(bench.sender.last_sent_s(name) for name in bms.heartbeat_messages)
    bench.loop.run_until(lambda: bms.monitor.is_absent(status), sleep["max_idle_s"] + 1.0,
                         lambda: f"the BMS still sends {status} {bench.loop.t_s - last_host_s:.1f} s after the host's "
                                 f"last frame: {bms.describe()}")
    measure("sleep_after_idle", stats.last_s - last_host_s, high=sleep["max_idle_s"], unit="s")
    if "lv_supply" in rig.capabilities:
        bench.loop.run_for(SETTLE_S)
        measure("quiescent_current", bench.supply.measure_current_a() * 1000, high=sleep["max_quiescent_ma"],
                unit="mA")
    asleep_s = bench.loop.t_s
    bms.heartbeat(True)
    def sent_since_asleep() -> list[float]:
        return [sent_s for name in bms.heartbeat_messages
                if (sent_s := bench.sender.last_sent_s(name) or 0.0) >= asleep_s]

    bench.loop.run_until(sent_since_asleep, 1.0, "the host's first frame after the sleep")
    woken_s = min(sent_since_asleep())   # when the first of them went out
    awake_s = bench.loop.run_until(lambda: sent_since(stats, woken_s), 5 * sleep["max_wake_ms"] / 1000,
                                   lambda: f"no {status} since the host's first frame: {bms.describe()}")
    measure("wake_time", (awake_s - woken_s) * 1000, high=sleep["max_wake_ms"], unit="ms")
    # The state from before the sleep stays in the Monitor until the BMS has sent a new one: wait for one after the
    # wake-up, then for a SOC frame after that (it says INIT's RAM default until the SOC is read back from NVM).
    bench.loop.run_until(lambda: bms.state == BmsState.STANDBY and stats.last_s > awake_s, 3.0,
                         lambda: f"not back in STANDBY after waking: {bms.describe()}")
    assert not bms.faults, f"woke with faults: {bms.describe()}"
    if bms.soc_message is not None:
        standby_s, soc_stats = bench.clock.now_s(), bms.monitor.stats[bms.soc_message]
        bench.loop.run_until(lambda: sent_since(soc_stats, standby_s), 2.0,
                             lambda: f"no {bms.soc_message} after the BMS woke: {bms.describe()}")
        assert abs(bms.soc - soc) <= MAX_SOC_CHANGE, f"SOC {soc:.3f} before the sleep, {bms.soc:.3f} after it"
    bench.power_up()


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
