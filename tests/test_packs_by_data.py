"""The packs that are data only (a rig, a spec, a cell file and a calibration; no code): on each, the suite's
tests that its pack tries hardest pass. The whole suite passes on them too (`hil run --rig rigs/sim-drone.toml`,
`--rig rigs/sim-lfp.toml`, `--rig rigs/sim-bbu.toml`); CI runs these few, in a subprocess each, as `hil run` does."""
import pytest

from hil.bench import Bench
from hil.rig import PROJECT_ROOT, load_rig
from hil.spec import load_spec
from tests.test_suite_power import _hil


@pytest.mark.parametrize("rig,selection", [
    # 100 C+ punch-outs on a 1.5 Ah pack that drains in the flight, a current-sensor check calibrated for a LiPo's
    # fast relaxation (the LG M50's 200 ms window trips on its punch-outs), and a flight to empty: the LiPo's knee.
    ("sim-drone", "drone_punch or current_sensor or weak_cell or discharging_a_spread"),
    # LFP: a third of the resistance, so a third of the voltage step the current check sees.
    ("sim-lfp", "current_sensor"),
    # Six cells in parallel per block: a weak block, one open cell of a block (flagged by its resistance), and a grid
    # loss at the module's 3 kW with 160 % pulses. (Its charge to the top of closely matched blocks takes 80 s here:
    # the full suite runs it.)
    ("sim-bbu", "bbu_ride or weak_cell or lost_cell"),
])
def test_a_pack_by_data_passes_its_hardest_tests(tmp_path, rig, selection):
    result = _hil("run", "--rig", f"rigs/{rig}.toml", "-k", selection, "--report", str(tmp_path), "-q", timeout_s=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.splitlines()[-1], result.stdout[-1000:]


def test_a_drone_pack_held_above_its_long_delay_level_is_cut_for_the_overload():
    """113 C held on the drone rig's 6S 1.5 Ah LiPo (170 A, between its long-delay level and its peak one) must be cut
    as the overload it is: discharge_oc, after the long delay. With the model's thermal network stepped once a second
    (the default), each step moved the cells' resistance, and at 170 A their voltage, by more than the BMS's current
    check allows with no current step: it cut the pack 2 s in for a frozen current sensor, a fault real cells, whose
    resistance follows their temperature smoothly, never show (`--set pack.thermal_dt_s=1.0` brings it back). The
    drone rig steps it every 0.1 s."""
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim-drone.toml")
    protections = load_spec(rig.spec_path).protections
    sustained, peak = protections["discharge_oc_sustained"], protections["discharge_oc"]
    with Bench(rig) as bench:
        bench.power_up()
        bench.set_load((sustained.high + peak.low) / 2, honour_limits=False)
        bench.loop.run_until(lambda: bool(bench.bms.faults), sustained.max_reaction_ms / 1000 + 1.0, bench.bms.describe)
        assert bench.bms.faults == ["discharge_oc"], bench.bms.describe()
