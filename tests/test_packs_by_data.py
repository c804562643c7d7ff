"""The packs that are data only (a rig, a spec, a cell file and a calibration; no code): on each, the suite's
tests that its pack tries hardest pass. The whole suite passes on them too (`hil run --rig rigs/sim-drone.toml`,
`--rig rigs/sim-lfp.toml`, `--rig rigs/sim-bbu.toml`); CI runs these few, in a subprocess each, as `hil run` does."""
import pytest

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
