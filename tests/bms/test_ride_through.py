"""Transients that stay within limits must not trip the BMS."""
import math

import pytest

from hil.profiles import PROFILES
from hil.profiles.compose import sequence
from hil.protocol import BmsState
from hil.spec import CORNERS

from .loads import LIMIT_RAMP_S, pack_capacity_ah, rack_profile


@pytest.mark.verifies("protections.discharge_oc", "protections.cell_uv")
def test_ai_training_swings_ride_through(bench, spec, measure):
    bench.power_up()
    profile = rack_profile("ai-training", bench, spec, 20.0)
    bench.run_profile(profile)
    bench.loop.run_for(profile.duration_s)
    assert bench.bms.state == BmsState.NORMAL, bench.bms.describe()
    assert bench.bms.contactors_closed
    rows = bench.trace.rows
    peak_a = max(r[2] for r in rows)
    low_a = min(r[2] for r in rows[len(rows) // 10:])
    measure("ai_training_peak_current", peak_a, high=spec.protections["discharge_oc"].low, unit="A")
    # The swing really happened: compute and communication phases both visible in the current.
    measure("ai_training_swing", peak_a - low_a, low=3.0, unit="A")
    measure("ai_training_min_cell_voltage", min(r[3] for r in rows), low=spec.protections["cell_uv"].high, unit="V")


# How often a ride's `probe` looks: each cell-emulator setpoint period, far shorter than any punch-out.
PROBE_PERIOD_S = 0.01


def _ride(bench, profile, spec, measure, name, probe=None, actions=()):
    """Run `profile` from NORMAL; nothing may trip, no cell may reach UV, and the load must really flow: the
    peak current drawn reaches what the profile asked for, or the least the spec says the BMS must allow
    (`ride_through.min_discharge_limit_a`) where the ask was more. `probe()`, if given, is called every
    PROBE_PERIOD_S; `actions`, (seconds into the profile, callable) pairs, are called at those times, to the
    nearest PROBE_PERIOD_S."""
    bench.power_up()
    bench.run_profile(profile)
    if probe is None and not actions:
        bench.loop.run_for(profile.duration_s)
    else:
        pending = sorted(actions, key=lambda action: action[0])
        for period in range(round(profile.duration_s / PROBE_PERIOD_S)):
            while pending and pending[0][0] <= (period + 0.5) * PROBE_PERIOD_S:
                pending.pop(0)[1]()
            bench.loop.run_for(PROBE_PERIOD_S)
            if probe is not None:
                probe()
    assert bench.bms.state == BmsState.NORMAL and bench.bms.contactors_closed, bench.bms.describe()
    assert not bench.bms.faults, bench.bms.describe()
    rows = bench.trace.rows
    measure(f"{name}_min_cell_voltage", min(r[3] for r in rows), low=spec.protections["cell_uv"].high, unit="V")
    n_series = bench.pack.n_series
    asked_a = max(r[1] / (n_series * r[4]) if profile.kind == "power" else r[1] for r in rows)
    must_allow_a = min(asked_a, spec.value("ride_through.min_discharge_limit_a"))
    measure(f"{name}_peak_current", max(r[2] for r in rows), low=0.9 * must_allow_a,
            high=spec.protections["discharge_oc"].low, unit="A")
    return rows


@pytest.mark.verifies("ride_through", "protections.discharge_oc", "protections.cell_uv")
def test_ai_job_start_ride_through(bench, spec, measure):
    """A synchronised job start: idle to full rack power in under 10 ms."""
    profile = rack_profile("ai-job-start", bench, spec, 10.0)
    _ride(bench, profile, spec, measure, "ai_job_start")


@pytest.mark.verifies("ride_through", "protections.discharge_oc", "protections.cell_uv")
def test_bbu_ride_through_grid_loss(bench, spec, measure):
    """Open Rack V3 grid loss: 2 ms bus hold, BBU start within 2 ms more, carry the pulsing rack load."""
    profile = rack_profile("bbu-ride-through", bench, spec, 20.0, ride_through_s=15.0)
    _ride(bench, profile, spec, measure, "bbu")


# A grid that flickers (a storm, a utility's recloser): the grid drops, comes back for FLICKER_RECHARGE_S while the
# shelf recharges the module and asks its BMS to charge, then drops again. The shelf's controller asks to discharge
# HOST_NOTICES_S after the second loss: until then the module carries the rack with its host asking it to charge.
FLICKER_OUTAGE_AT_S = 0.5
FLICKER_RIDE_S = 5.0
FLICKER_RECHARGE_S = 5.0
HOST_NOTICES_S = 1.0


@pytest.mark.verifies("ride_through", "protections.discharge_oc", "protections.cell_uv")
def test_a_grid_loss_while_the_pack_recharges_is_carried_at_once(bench, spec, measure):
    """A backup unit spends most of its life recharging or floating, its host asking its BMS to charge; a grid loss
    gives that host no time to ask again before the rack falls onto the pack (2 ms hold, 2 ms start in Open Rack
    V3). A BMS that lets no current out in charge mode (a vehicle's rule at a charger), or that opens and
    precharges again when the request changes, drops the rack. The second loss must be carried as the first: no
    moment with the contactors open or out of NORMAL, and what the rack asks for (up to the least the spec makes
    the BMS allow) delivered, to within a tenth, while the host still asks to charge."""
    if not spec.data["ride_through"].get("discharge_while_charging", False):
        pytest.skip(f"{spec.path.name} [ride_through] does not set discharge_while_charging: this pack need not "
                    "carry a load while its host asks it to charge (a drone's, charged on the ground)")
    grid_back_s = FLICKER_OUTAGE_AT_S + FLICKER_RIDE_S
    first = rack_profile("bbu-ride-through", bench, spec, grid_back_s + FLICKER_RECHARGE_S,
                         outage_at_s=FLICKER_OUTAGE_AT_S, ride_through_s=FLICKER_RIDE_S)
    second = rack_profile("bbu-ride-through", bench, spec, FLICKER_RIDE_S, outage_at_s=0.0,
                          ride_through_s=FLICKER_RIDE_S)
    assert first.demand[-1] < 0 < second.demand[-1], "the second loss must come mid-recharge"
    second_loss_s = first.duration_s
    dropped_s, start_s = [], []

    def not_dropped():
        if not (bench.bms.state == BmsState.NORMAL and bench.bms.contactors_closed):
            dropped_s.append(bench.loop.t_s)

    rows = _ride(bench, sequence(first, second), spec, measure, "grid_flicker", probe=not_dropped,
                 actions=[(0.0, lambda: start_s.append(bench.loop.t_s)),
                          (grid_back_s, lambda: bench.bms.request("charge")),
                          (second_loss_s + HOST_NOTICES_S, lambda: bench.bms.request("discharge"))])
    measure("grid_flicker_dropped", len(dropped_s) * PROBE_PERIOD_S * 1000, high=0.0, unit="ms")
    # While the host still asked to charge: each sample after the BBU's start against what the rack asked for.
    loss_s = start_s[0] + second_loss_s + PROBE_PERIOD_S
    must_allow_a = spec.value("ride_through.min_discharge_limit_a")
    n_series = bench.pack.n_series
    carried = [r[2] / min(r[1] / (n_series * r[4]), must_allow_a) for r in rows
               if loss_s <= r[0] < loss_s - PROBE_PERIOD_S + HOST_NOTICES_S]
    measure("grid_flicker_carried_in_charge_mode", min(carried), low=0.9, unit="")


@pytest.mark.verifies("ride_through", "protections.discharge_oc", "protections.cell_uv")
def test_drone_punch_out_honours_current_limit(bench, spec, measure):
    """Drone punch-outs that ask for 30 % more than the BMS allows: the host caps them, and nothing trips. The
    limit falls as a small pack drains in the flight, so the current is taken against the limit in force then."""
    n_series, capacity_ah = bench.pack.n_series, pack_capacity_ah(bench)
    bench.power_up()
    bench.loop.run_for(LIMIT_RAMP_S)
    limit_a = bench.bms.discharge_limit_a
    peak_c = 1.3 * limit_a / capacity_ah
    profile = PROFILES["drone-industrial"](duration_s=60.0, dt_s=bench.loop.dt_s, seed=bench.rig.seed,
                                           capacity_ah=capacity_ah, peak_c=peak_c, hover_c=peak_c / 2,
                                           nominal_v=n_series * float(bench.pack.cell_voltage_v.mean()))
    above_limit_a = []   # the current drawn less the limit the BMS published then
    rows = _ride(bench, profile, spec, measure, "drone",
                 probe=lambda: above_limit_a.append(bench.pack_current_a - bench.bms.discharge_limit_a))
    # The punch-outs asked for more than the limit, and the current drawn reached it, capped.
    assert max(r[1] / (n_series * r[4]) for r in rows) > limit_a, "the profile never asked for more than the limit"
    measure("drone_peak_current_vs_limit", max(above_limit_a), low=-0.05, high=0.05, unit="A")


# From a corner of the pack's window ([corners] in the spec), a host draws all the BMS allows (just under the
# over-current band, capped by the published limit) for CORNER_BURST_S, rests as long, CORNER_BURSTS times: each
# burst starts at the limit the BMS set at rest, the hardest case for its resistance estimate.
CORNER_BURST_S = 5.0
CORNER_BURSTS = 6


@pytest.mark.verifies("corners.{corner}", "protections.cell_uv")
@pytest.mark.rig_requires("virtual_clock")   # a minute of bursts from each corner: run where time is virtual
@pytest.mark.parametrize("corner", CORNERS)
def test_the_discharge_limit_holds_the_cells_up_at_the_corners(custom_bench, spec, measure, corner):
    """The discharge limit (SOP) is the current at which the weakest cell would sit just above UV, sized by the
    cells' resistance: it doubles from 25 to 0 degC, and rises again near empty. From a corner of the pack's window
    (an SOC, and the ambient the cells start at), a host that draws all the BMS allows must trip nothing and take no
    cell into the UV band: a limit sized by the warm figure drags the weakest cell far below it."""
    point = spec.data.get("corners", {}).get(corner)
    if point is None:
        pytest.skip(f"{spec.path.name} has no [corners.{corner}]")
    bench = custom_bench(f"pack.soc0={point['soc']}", f"pack.ambient_c={point['ambient_c']}")
    bench.power_up()
    demand_a = 0.95 * spec.protections["discharge_oc"].low
    for burst in range(CORNER_BURSTS):
        bench.set_load(demand_a)
        bench.loop.run_for(CORNER_BURST_S)
        bench.set_load(0.0)
        bench.loop.run_for(CORNER_BURST_S)
        assert not bench.bms.faults and bench.bms.contactors_closed, (
            f"tripped in burst {burst + 1} at the BMS's limit from the {corner} corner ({point}): "
            f"{bench.bms.describe()}")
    rows = bench.trace.rows
    measure(f"corner_{corner}_min_cell_voltage", min(r[3] for r in rows), low=spec.protections["cell_uv"].high,
            unit="V")
    measure(f"corner_{corner}_peak_current", max(r[2] for r in rows), unit="A")   # what the BMS allowed there


# A pack whose cells are spread (SOC's standard deviation): its fullest block reaches the top, and its emptiest
# the bottom, well before the pack's mean SOC does.
END_SOC_SPREAD = 0.03
# Or level, with one block of less capacity than the others (an aged cell, a module from another lot): it fills and
# empties first, and its SOC parts from the others' under load, where no rest shows it.
FADED_BLOCK_CAPACITY = 0.8
CHARGE_SOC0 = 0.88
# Charged until the fullest cell has reached the spec's min_charge_cell_v, then this long more, through the CV
# phase, where an overshoot into OV would come; at most CHARGE_MAX_S in all (a large pack charges at a lower C-rate).
CHARGE_HOLD_S = 120.0
CHARGE_MAX_S = 900.0


def _measure_end_block_soc(bench, spec, measure, name: str, reported, extreme) -> None:
    """What the BMS reports for the block that ended a charge or discharge (its pack SOC, if it reports none such)
    less that block's true SOC, the `extreme` (max or min) of the pack's, within `[soc] max_error_pct`."""
    reported = reported if reported is not None else bench.bms.soc
    tolerance_pct = spec.value("soc.max_error_pct")
    measure(name, 100.0 * (reported - float(extreme(bench.pack.soc))), low=-tolerance_pct, high=tolerance_pct,
            unit="%")


def _seconds_at_the_limit(bench, max_s: float, extreme, what: str):
    """Each second of up to `max_s` with the host following the BMS's limit: (the second, the most `extreme` (max
    or min) cell voltage so far). Any trip fails the test, naming `what` that voltage is and its value."""
    seen_v = None
    for second in range(round(max_s)):
        bench.loop.run_for(1.0)
        now_v = float(extreme(bench.pack.cell_voltage_v))
        seen_v = now_v if seen_v is None else extreme(seen_v, now_v)
        assert not bench.bms.faults and bench.bms.contactors_closed, (
            f"tripped at the BMS's limit, {what} at {seen_v:.4f} V: {bench.bms.describe()}")
        yield second, seen_v


@pytest.mark.verifies("ride_through", "protections.cell_ov", "soc")
@pytest.mark.rig_requires("virtual_clock")  # minutes of charging: run where time is virtual
def test_charging_a_spread_pack_near_full_follows_the_limit_without_a_trip(custom_bench, spec, measure):
    """A charger that follows the BMS's charge current limit must never drive the fullest cell into OV (a
    nuisance trip at the end of every charge), and must still be let charge that cell up to the top."""
    bench = custom_bench(f"pack.soc0={CHARGE_SOC0}", f"pack.soc_spread={END_SOC_SPREAD}")
    _charge_to_full(bench, spec, measure, "charge")


@pytest.mark.verifies("ride_through", "protections.cell_ov", "soc")
@pytest.mark.rig_requires("virtual_clock")  # minutes of charging: run where time is virtual
def test_charging_a_pack_with_a_faded_block_near_full_follows_the_limit_without_a_trip(custom_bench, rig, spec,
                                                                                        measure):
    """The same end of a charge where the pack starts level but one mid-pack block holds less charge: it fills first,
    and ever faster than the rest, with no rest to read it off its voltage."""
    bench = custom_bench(f"pack.soc0={CHARGE_SOC0}", _faded_block(rig))
    _charge_to_full(bench, spec, measure, "faded_block_charge")


def _faded_block(rig) -> str:
    """The override that fades one mid-pack block to FADED_BLOCK_CAPACITY of the others' capacity."""
    n_series = rig.data["pack"]["n_series"]
    capacity = [1.0] * n_series
    capacity[n_series // 2] = FADED_BLOCK_CAPACITY
    return f"pack.soh_capacity={capacity}"


def _charge_to_full(bench, spec, measure, name: str) -> None:
    """From CHARGE_SOC0, just under the charge over-current level capped at the BMS's limit, until the fullest cell has
    been at the spec's min_charge_cell_v for CHARGE_HOLD_S; measured as `{name}_fullest_cell_peak` and
    `{name}_end_fullest_soc_error`."""
    ov = spec.protections["cell_ov"]
    bench.power_up("charge")
    # The charger asks for just under the charge over-current trip; the BMS's limit caps it.
    bench.set_load(-(spec.protections["charge_oc"].low - 0.5))
    top_v = spec.value("ride_through.min_charge_cell_v")
    peak_v, top_s = 0.0, None
    for second, peak_v in _seconds_at_the_limit(bench, CHARGE_MAX_S, max, "charging, the fullest cell"):
        if top_s is None and peak_v >= top_v:
            top_s = second
        if top_s is not None and second - top_s >= CHARGE_HOLD_S:
            break
    measure(f"{name}_fullest_cell_peak", peak_v, low=top_v, high=ov.low, unit="V")
    _measure_end_block_soc(bench, spec, measure, f"{name}_end_fullest_soc_error", bench.bms.soc_max, max)


DISCHARGE_SOC0 = 0.2
# The load: the pack's rated 1 C, which a backup unit's long outage or a drone's hover holds to the end.
DISCHARGE_C_RATE = 1.0
# The BMS has ended the discharge once its limit is below this fraction of that load (0.02 C).
DISCHARGE_END_FRACTION = 0.02
DISCHARGE_MAX_S = 1200.0


@pytest.mark.verifies("ride_through", "protections.cell_uv", "soc")
@pytest.mark.rig_requires("virtual_clock")  # minutes of discharging: run where time is virtual
def test_discharging_a_spread_pack_to_empty_follows_the_limit_without_a_trip(custom_bench, spec, measure):
    """A host that follows the BMS's discharge current limit to the end (a backup unit through a long outage, a
    drone to its landing) must never drive the emptiest block into UV, must still be let use that block down to
    the spec's `discharge_end_cell_v`, and must be told the truth about it: once the limit has ended the
    discharge, the SOC the BMS reports for its emptiest block (its pack SOC, if it reports no lowest) must be
    within `[soc] max_error_pct` of that block's true SOC. A BMS that counts one SOC, the mean, tells the host
    that charge is left when none is, and tapers too late for its emptiest block."""
    bench = custom_bench(f"pack.soc0={DISCHARGE_SOC0}", f"pack.soc_spread={END_SOC_SPREAD}")
    _discharge_to_empty(bench, spec, measure, "discharge")


@pytest.mark.verifies("ride_through", "protections.cell_uv", "soc")
@pytest.mark.rig_requires("virtual_clock")  # minutes of discharging: run where time is virtual
def test_discharging_a_pack_with_a_faded_block_to_empty_follows_the_limit_without_a_trip(custom_bench, rig, spec,
                                                                                           measure):
    """The same end of a discharge where the pack starts level but one mid-pack block holds less charge: it empties
    first, and ever faster than the rest, however well the pack was balanced. Its SOC parts from the pack's under
    load, with no rest to read it off its voltage: a BMS that takes its blocks' SOC as the pack's plus the spread it
    saw at rest tells the host that charge is left in a block that has none."""
    bench = custom_bench(f"pack.soc0={DISCHARGE_SOC0}", _faded_block(rig))
    _discharge_to_empty(bench, spec, measure, "faded_block_discharge")


def _discharge_to_empty(bench, spec, measure, name: str) -> None:
    """From DISCHARGE_SOC0, the pack's 1 C capped at the BMS's limit until the limit ends the discharge; measured as
    `{name}_emptiest_cell_low` and `{name}_end_emptiest_soc_error`."""
    uv = spec.protections["cell_uv"]
    bench.power_up()
    if bench.bms.discharge_limit_a is None:
        pytest.skip("this BMS's proxy reads no discharge limit (a DUT map without discharge_limit_a): no end to follow")
    load_a = DISCHARGE_C_RATE * pack_capacity_ah(bench)
    bench.set_load(load_a)   # the BMS's limit caps it near the end
    lowest_v, ended_s = math.inf, None
    for second, lowest_v in _seconds_at_the_limit(bench, DISCHARGE_MAX_S, min, "discharging, the emptiest cell"):
        if bench.bms.discharge_limit_a < DISCHARGE_END_FRACTION * load_a:
            ended_s = second
            break
    assert ended_s is not None, (
        f"the BMS's discharge limit was still {bench.bms.discharge_limit_a:.2f} A after {DISCHARGE_MAX_S:.0f} s at "
        f"{load_a:.1f} A, emptiest cell at {lowest_v:.4f} V: it never ended the discharge")
    measure(f"{name}_emptiest_cell_low", lowest_v, low=uv.high, high=spec.value("ride_through.discharge_end_cell_v"),
            unit="V")
    _measure_end_block_soc(bench, spec, measure, f"{name}_end_emptiest_soc_error", bench.bms.soc_min, min)
