"""What the suite watches the BMS's frames for, shared by the tests that take it down and up again (its supply, its
sleep, a key cycle)."""
from hil.protocol import BmsState


def sent_since(stats, since_s: float) -> bool:
    """Whether a frame counted in `stats` (a Monitor's CycleStats) came after `since_s`, on the bench clock: the
    values from before a reset stay in the Monitor until the BMS sends again."""
    return stats.last_s is not None and stats.last_s > since_s


def watch(bench, duration_s: float) -> dict:
    """Run the bench for `duration_s`, noting every state the BMS reported, whether its contactors ever
    reported open, and the longest time without a status frame (a reset shows as a gap of its boot time)."""
    bms, monitor = bench.bms, bench.bms.monitor
    stats = monitor.stats[bms.contactor_readback.message]
    seen = {"states": set(), "opened": False, "longest_gap_s": 0.0, "faults": set()}

    def look() -> bool:
        seen["states"].add(bms.state)
        seen["opened"] |= not bms.contactors_closed
        seen["faults"].update(bms.faults)
        if stats.last_s is not None:
            seen["longest_gap_s"] = max(seen["longest_gap_s"], bench.clock.now_s() - stats.last_s)
        return False

    end_s = bench.loop.t_s + duration_s
    bench.loop.run_until(lambda: look() or bench.loop.t_s >= end_s, duration_s + 1.0)
    return seen


def key_cycle(bench, dark_s: float) -> None:
    """Cut the BMS's supply for `dark_s` (a rig with "lv_supply"), then wait for its status frames and STANDBY."""
    bms = bench.bms
    status = bms.contactor_readback.message
    bench.supply.output(False)
    bench.loop.run_for(dark_s)
    bench.supply.output(True)
    bench.loop.run_until(lambda: not bms.monitor.is_absent(status), 3.0,
                         lambda: f"the BMS silent after its supply came back: {bms.describe()}")
    bms.wait_state(BmsState.STANDBY, 3.0)
