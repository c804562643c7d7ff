"""Balancing, weak cells, leaking cells and blocks whose resistance rose: what the BMS must notice about the cells
themselves."""
import numpy as np
import pytest

from hil.protocol import BmsState

from .loads import rack_profile


def bench_soc0(rig) -> float:
    return rig.data["pack"].get("soc0", 0.5)


def _spread_mv(bench) -> float:
    v = bench.pack.cell_voltage_v
    return float(v.max() - v.min()) * 1000


@pytest.mark.verifies("balancing")
@pytest.mark.slow
@pytest.mark.rig_requires("virtual_clock")  # tens of minutes of balancing
def test_balancing_converges_a_spread_pack(custom_bench, rig, spec, measure):
    balancing = spec.section("balancing")
    bench = custom_bench(f"pack.soc_spread={balancing['initial_soc_spread']}",
                         f"pack.soc0={balancing.get('soc0', bench_soc0(rig))}",
                         f"dut.calibration.balance_current_a={balancing['bleed_current_a']}")
    bench.cell_emulator.enable(True)
    bench.bms.wait_state(BmsState.STANDBY, 3.0)
    bench.loop.run_for(5.0)
    start_mv = _spread_mv(bench)
    start_soc_pct = float(np.ptp(bench.pack.soc)) * 100
    assert bench.bms.balancing_mask(bench.pack.n_series).any(), "no cell bleeds although the spread is large"
    bench.loop.run_for(balancing["duration_s"])
    threshold_mv = bench.rig.data["dut"]["calibration"]["balance_threshold_mv"]
    measure("balancing_voltage_spread_start", start_mv, low=1.5 * threshold_mv, unit="mV")
    # Bleeding stops once every cell is within the threshold of the lowest, so SOC converges to the
    # threshold's worth of SOC, not to zero.
    measure("balancing_soc_spread_end", float(np.ptp(bench.pack.soc)) * 100,
            high=balancing["max_final_fraction"] * start_soc_pct, unit="%")


@pytest.mark.verifies("balancing")
def test_no_balancing_while_faulted(custom_bench, rig, spec):
    balancing = spec.section("balancing")   # a pack spread as the spec's balancing test spreads it
    bench = custom_bench(f"pack.soc_spread={balancing['initial_soc_spread']}",
                         f"pack.soc0={balancing.get('soc0', bench_soc0(rig))}")
    bench.power_up()
    bench.loop.run_for(1.5)
    assert bench.bms.balancing_mask(bench.pack.n_series).any(), "expected balancing with a spread pack"
    bench.force_cell(0, bench.spec.protections["cell_ov"].high + 0.02)
    bench.bms.wait_state(BmsState.FAULT, 2.0)
    bench.loop.run_for(1.5)  # a slow-task cycle plus a BMS_BalancingMask cycle
    assert not bench.bms.balancing_mask(bench.pack.n_series).any(), "still bleeding cells in FAULT"


@pytest.mark.verifies("protections.cell_uv")
def test_weak_cell_limits_discharge_current(custom_bench, spec, measure):
    bench = custom_bench("pack.soc0=0.3")
    weak = bench.pack.n_series // 2   # mid-pack, on a pack of any size
    for cell in range(bench.pack.n_parallel):   # the whole block: the BMS sees blocks, and one cell of six sags little
        bench.pack.faults.set("high_resistance", block=weak, cell=cell, factor=4.0)
    bench.power_up()
    bench.loop.run_for(5.0)  # the limit ramps up after power-up
    nominal_a = bench.bms.discharge_limit_a
    bench.set_load(0.9 * nominal_a)
    bench.loop.run_for(30.0)
    assert bench.bms.contactors_closed and not bench.bms.faults, bench.bms.describe()
    weak_v = float(bench.pack.cell_voltage_v[weak])
    others_v = float(np.delete(bench.pack.cell_voltage_v, weak).min())
    assert weak_v < others_v - 0.05, "the weak cell should sag most"
    measure("weak_cell_discharge_limit", bench.bms.discharge_limit_a, high=0.9 * nominal_a, unit="A")
    measure("weak_cell_min_voltage", weak_v, low=spec.protections["cell_uv"].high, unit="V")


# A pack from a production line is never even: with a spread this size some cells sit above the balancing
# threshold from the start, and bleed for as long as the test runs.
SPREAD_PACK = ("pack.soc_spread=0.02", "pack.capacity_spread=0.02", "pack.resistance_spread=0.05")


def _rest_in_standby(bench) -> float:
    """Power the BMS up into STANDBY (at rest) with some cells bleeding; return how long its self-discharge
    check needs to judge: the relaxation time, then three windows (two to compare, and one of slack)."""
    bench.cell_emulator.enable(True)
    bench.bms.wait_state(BmsState.STANDBY, 3.0)
    bench.loop.run_for(1.0)
    assert bench.bms.balancing_mask(bench.pack.n_series).any(), "no cell bleeds: the test would not see balancing"
    calibration = bench.rig.data["dut"]["calibration"]
    return calibration["soc_rest_s"] + 3 * calibration["self_discharge_window_s"]


@pytest.mark.verifies("diagnostics")
@pytest.mark.rig_requires("virtual_clock")  # a leak shows over minutes of rest
def test_self_discharging_cell_is_flagged(custom_bench, spec):
    """A leaking cell becomes the lowest, so the others bleed towards it for as long as it leaks: balancing must
    not blind the check. The leak goes into the pack's lowest cell, which never bleeds (a leaking cell that
    bleeds at first is judged only once it has stopped, `soc_rest_s` later: minutes more)."""
    if not spec.value("diagnostics.self_discharge"):
        pytest.skip(f"{spec.path.name}: diagnostics.self_discharge = false (not required of this BMS)")
    bench = custom_bench(*SPREAD_PACK)
    lowest = int(np.argmin(bench.pack.cell_voltage_v))
    bench.pack.faults.set("internal_short", block=lowest, r_ohm=10.0)  # ~0.37 A leak, ~7 %/h on a 5 Ah cell
    judged_within_s = _rest_in_standby(bench)
    bench.loop.run_until(lambda: "self_discharge" in bench.bms.warnings, judged_within_s, bench.bms.describe)


@pytest.mark.verifies("diagnostics")
@pytest.mark.rig_requires("virtual_clock")
def test_healthy_pack_is_not_flagged_for_self_discharge(custom_bench, rig, spec):
    """A healthy pack with two cells 15 % fuller than the rest (a module swapped in), which bleed at the spec's
    accelerated current for the whole test: they fall faster than the others, by the charge bled, not a leak."""
    if not spec.value("diagnostics.self_discharge"):
        pytest.skip(f"{spec.path.name}: diagnostics.self_discharge = false (the BMS does not diagnose it)")
    n_series = rig.data["pack"]["n_series"]
    soc0_by_cell = np.broadcast_to(bench_soc0(rig), n_series) + np.isin(np.arange(n_series), (3, 4)) * 0.15
    soc0_by_cell = [round(float(soc), 4) for soc in soc0_by_cell]
    bench = custom_bench("pack.capacity_spread=0.02", "pack.resistance_spread=0.05", "pack.soc_spread=0",
                         f"pack.soc0={soc0_by_cell}",   # no SOC spread of the rig's: those two alone bleed
                         f"dut.calibration.balance_current_a={spec.section('balancing')['bleed_current_a']}")
    bench.loop.run_for(_rest_in_standby(bench))
    assert list(np.flatnonzero(bench.bms.balancing_mask(n_series))) == [3, 4], "the two fuller cells should still bleed"
    assert "self_discharge" not in bench.bms.warnings, bench.bms.describe()


# An open cell of a parallel block (a blown cell fuse, a lifted wire bond) carries nothing: its resistance, so
# many times its own that its share of any current is below the model's rounding.
OPEN_CELL_FACTOR = 1e6


def _resistance_spec(bench, spec) -> dict:
    required = spec.data.get("cell_resistance")
    if required is None:
        pytest.skip(f"{spec.path.name}: no [cell_resistance] (not required of this BMS)")
    if "cell_resistance" not in bench.bms.warning_names:
        pytest.skip("this BMS's proxy cannot read a cell_resistance warning (its DUT map names none)")
    return required


@pytest.mark.verifies("cell_resistance")
@pytest.mark.rig_requires("virtual_clock")   # minutes of load steps
@pytest.mark.parametrize("fault", ["busbar", "lost_cell"])
def test_a_block_whose_resistance_rose_is_flagged_and_derated(custom_bench, spec, measure, fault):
    """A mid-pack block of a pack with a production spread: every cell `factor` times as resistive (a loosening
    busbar joint), or, on a pack with cells in parallel, one of them open (its neighbours carry its share, each
    above its rating at the pack's full current). Under the AI-training load the BMS must flag it as
    cell_resistance, name the block, and (with `derate_tolerance_pct`) lower its discharge limit at rest by the block's
    resistance over the median block's (the bench's own, at that moment: the factor times the block's spread)."""
    bench = custom_bench(*SPREAD_PACK)
    required = _resistance_spec(bench, spec)
    block, n_parallel = bench.pack.n_series // 2, bench.pack.n_parallel
    if fault == "busbar":
        factor = required["factor"]
        for cell in range(n_parallel):
            bench.pack.faults.set("high_resistance", block=block, cell=cell, factor=factor)
    else:
        if n_parallel == 1:
            pytest.skip("one cell per block: an open cell is an open string, not a resistance")
        factor = n_parallel / (n_parallel - 1)
        if factor < required["factor"] - 1e-9:
            pytest.skip(f"one open cell of {n_parallel} in parallel raises its block's resistance by {factor:.3g}: "
                        f"below the spec's factor {required['factor']:g}")
        bench.pack.faults.set("high_resistance", block=block, cell=0, factor=OPEN_CELL_FACTOR)
    bench.power_up()
    bench.loop.run_for(5.0)   # the limits ramp up after power-up; at rest, as they are measured after the flag
    limit_before_a = bench.bms.discharge_limit_a
    within_s = required["within_s"]
    bench.run_profile(rack_profile("ai-training", bench, spec, within_s))   # a load step about once a second
    start_s = bench.loop.t_s
    flagged_s = bench.loop.run_until(lambda: "cell_resistance" in bench.bms.warnings, within_s,
                                     lambda: f"block {block} {factor:.3g} times as resistive; {bench.bms.describe()}")
    measure("cell_resistance_flagged_after", flagged_s - start_s, high=within_s, unit="s")
    reported = bench.bms.high_resistance_block
    assert reported is None or reported == block, f"the BMS names block {reported}, the bench weakened block {block}"
    assert bench.bms.contactors_closed and not bench.bms.faults, "a warning, not a trip: " + bench.bms.describe()
    tolerance_pct = required.get("derate_tolerance_pct")
    if tolerance_pct is not None:
        bench.set_load(0.0)
        bench.loop.run_for(2.0)   # a BMS_Limits cycle, and a slow task of the BMS, after the flag
        block_r_ohm = 1.0 / np.add.reduce(1.0 / bench.pack.cell_r0_ohm, axis=1)
        ratio = float(block_r_ohm[block] / np.median(block_r_ohm))
        measure("cell_resistance_discharge_limit", bench.bms.discharge_limit_a,
                high=limit_before_a / ratio * (1 + tolerance_pct / 100), unit="A")


@pytest.mark.verifies("cell_resistance")
@pytest.mark.rig_requires("virtual_clock")
def test_a_healthy_pack_is_not_flagged_for_resistance(custom_bench, spec):
    """The same load on a pack with the production spread and no fault: no block may be flagged."""
    bench = custom_bench(*SPREAD_PACK)
    within_s = _resistance_spec(bench, spec)["within_s"]
    bench.power_up()
    bench.run_profile(rack_profile("ai-training", bench, spec, within_s))
    bench.loop.run_for(within_s)
    assert bench.bms.contactors_closed, bench.bms.describe()
    assert "cell_resistance" not in bench.bms.warnings, bench.bms.describe()
