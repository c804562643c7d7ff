"""Protections trip inside their tolerance band and reaction time, and do not trip just below."""
import numpy as np
import pytest

from hil.errors import HilTimeout
from hil.protocol import BmsState

from .loads import LIMIT_RAMP_S, steady_load_a

# Time held just below a threshold: twice the reaction budget, so a debounce that would fire, fires.
BELOW_HOLD_FACTOR = 2.0
# Bursts between the sustained level and the peak one: three, each 0.45 of the long delay's budget, as long apart,
# add up to more than the delay where a counter does not reset. Then a current just below the level held longer
# than the budget: the delay is long, and twice its budget over the wire would cost more than it shows.
SUSTAINED_BURSTS = 3
SUSTAINED_BURST_FRACTION = 0.45
SUSTAINED_BELOW_HOLD_FACTOR = 1.25
# Host frames of each message lost, one heartbeat timeout apart: a loss now and then, not a dead host.
LOST_FRAMES = 3


def _until_tripped_open(bench, fault: str, since_s: float, budget_ms: float, cause) -> float:
    """Run until the BMS reports `fault` with every contactor open (precharge too), five budgets at most; the time
    from `since_s`. Fails saying `cause()`: what the bench did, as it stands then."""
    return bench.loop.run_until(
        lambda: fault in bench.bms.faults and not bench.bms.any_contactor_closed, 5 * budget_ms / 1000,
        lambda: f"no {fault} fault with every contactor open, {cause()}; {bench.bms.describe()}") - since_s


def _step_and_time(bench, apply, timeout_s):
    """Apply a stimulus, return the time until both main contactors report open."""
    t_step = bench.loop.t_s
    apply()
    return bench.bms.wait_contactors_open(timeout_s) - t_step


@pytest.mark.verifies("protections.discharge_oc")
def test_discharge_overcurrent_opens_contactors(bench, spec, measure):
    oc = spec.protections["discharge_oc"]
    bench.power_up()
    bench.set_load(oc.low - 0.5, honour_limits=False)
    bench.loop.run_for(BELOW_HOLD_FACTOR * oc.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed, f"tripped below {oc.low} A: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.set_load(oc.high + 1.0, honour_limits=False),
                                timeout_s=5 * oc.max_reaction_ms / 1000)
    measure("discharge_oc_reaction", reaction_s * 1000, high=oc.max_reaction_ms, unit="ms")
    bench.bms.wait_state(BmsState.FAULT, 1.0)
    assert "discharge_oc" in bench.bms.faults, f"contactors open without the discharge_oc fault: {bench.bms.describe()}"


@pytest.mark.verifies("protections.short_circuit")
def test_short_circuit_opens_contactors_before_the_overcurrent_debounce(bench, spec, measure):
    """A short (a crushed cable, a failed motor controller, a rack's shorted busbar) must be cut at once: the
    over-current debounce, there to ride through bursts, would let the wiring carry it that long. A burst just
    below the short-circuit level, as long as half the budget (a drone motor's inrush, a GPU rack's step),
    must trip nothing."""
    sc = spec.protections.get("short_circuit")
    if sc is None:
        pytest.skip(f"{spec.path.name} has no [protections.short_circuit]: this BMS has no fast short-circuit cut")
    bench.power_up()
    bench.set_load(sc.low - 1.0, honour_limits=False)
    bench.loop.run_for(sc.max_reaction_ms / 2000)
    bench.set_load(0.0)
    bench.loop.run_for(sc.max_reaction_ms / 1000)   # long enough for a trip the burst set off to be reported
    assert bench.bms.contactors_closed and not bench.bms.faults, \
        f"a {sc.max_reaction_ms / 2:g} ms burst at {sc.low - 1.0:g} A tripped: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.set_load(sc.high + 1.0, honour_limits=False),
                                timeout_s=5 * sc.max_reaction_ms / 1000)
    measure("short_circuit_reaction", reaction_s * 1000, high=sc.max_reaction_ms, unit="ms")
    bench.bms.wait_state(BmsState.FAULT, 1.0)
    assert "short_circuit" in bench.bms.faults, \
        f"contactors open without the short_circuit fault: {bench.bms.describe()}"


@pytest.mark.verifies("protections.discharge_oc_sustained", "warnings.discharge_oc")
def test_a_sustained_overload_below_the_overcurrent_level_is_cut_after_its_long_delay(bench, spec, measure):
    """A stalled motor, a failed converter, a soft short through a chafed cable, or a host that ignores the limit:
    a current above the pack's continuous rating and below the over-current level, held. The peak level's debounce
    never sees it, and the wiring, the fuse and the cells heat for as long as it lasts. A second, lower level with a
    long delay (a gas gauge's OCD1 beside OCD2) must cut it, as `discharge_oc`, within its budget, after a
    `discharge_oc` warning where the spec and the BMS's proxy have one; bursts just as high but shorter than the
    delay (a drone's punch-outs, a rack's load steps, the steady load between them) must trip nothing, and neither
    must a current held just below the level."""
    sustained = spec.protections.get("discharge_oc_sustained")
    if sustained is None:
        pytest.skip(f"{spec.path.name} has no [protections.discharge_oc_sustained]: this BMS has one over-current "
                    "level only")
    overload_a = (sustained.high + spec.protections["discharge_oc"].low) / 2   # between the two levels' bands
    burst_s, rest_a = SUSTAINED_BURST_FRACTION * sustained.max_reaction_ms / 1000, steady_load_a(spec)
    bench.power_up()
    for burst in range(SUSTAINED_BURSTS):
        bench.set_load(overload_a, honour_limits=False)
        bench.loop.run_for(burst_s)
        bench.set_load(rest_a, honour_limits=False)
        bench.loop.run_for(burst_s)
        assert bench.bms.contactors_closed and not bench.bms.faults, (
            f"burst {burst + 1} of {SUSTAINED_BURSTS} at {overload_a:g} A, each {burst_s:g} s with as long at "
            f"{rest_a:g} A between, tripped: {bench.bms.describe()}")
    below_a = sustained.low - sustained.tolerance / 2
    bench.set_load(below_a, honour_limits=False)
    bench.loop.run_for(SUSTAINED_BELOW_HOLD_FACTOR * sustained.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed and not bench.bms.faults, \
        f"{below_a:g} A, below the sustained band, tripped: {bench.bms.describe()}"
    since_s = bench.loop.t_s
    bench.set_load(overload_a, honour_limits=False)
    warning = spec.warnings.get("discharge_oc")
    if warning is not None and "discharge_oc" in bench.bms.warning_names:   # the host told first, to back off
        bench.loop.run_until(lambda: "discharge_oc" in bench.bms.warnings or bench.bms.faults,
                             5 * warning.max_reaction_ms / 1000,
                             lambda: f"no discharge_oc warning at {overload_a:g} A; {bench.bms.describe()}")
        assert not bench.bms.faults, f"cut at {overload_a:g} A with no warning first: {bench.bms.describe()}"
    reaction_s = _until_tripped_open(bench, "discharge_oc", since_s, sustained.max_reaction_ms,
                                     lambda: f"{overload_a:g} A held {bench.loop.t_s - since_s:.2f} s")
    measure("discharge_oc_sustained_reaction", reaction_s * 1000, high=sustained.max_reaction_ms, unit="ms")


@pytest.mark.verifies("protections.discharge_oc_sustained")
def test_a_host_drawing_all_the_bms_allows_is_never_cut_by_the_long_delay(bench, spec, measure):
    """The other side of the long delay: the BMS publishes what a host may draw (its discharge limit), and a host
    that draws all of it, for as long as it likes, must never be cut. A limit above the long-delay level (a 10 s
    peak-power figure sent as the continuous one) cuts a drone that climbs at full throttle, or a rack that holds
    its peak, some seconds in, following every rule it was given. The host asks for more than the bursts of the
    sustained test (between the two levels' bands) and takes what the limit allows, for 1.25 times the long
    delay's budget: nothing may trip, and the highest limit published must lie below the sustained band."""
    sustained = spec.protections.get("discharge_oc_sustained")
    if sustained is None:
        pytest.skip(f"{spec.path.name} has no [protections.discharge_oc_sustained]: no long delay for a host at its "
                    "limit to meet")
    bench.power_up()
    bench.loop.run_for(LIMIT_RAMP_S)
    if bench.bms.discharge_limit_a is None:
        pytest.skip(f"this BMS publishes no discharge limit: nothing tells a host what it may draw "
                    f"({bench.bms.describe()})")
    demand_a = (sustained.high + spec.protections["discharge_oc"].low) / 2
    bench.set_load(demand_a, honour_limits=True)
    limits_a, drawn_a = [], []

    def tripped() -> bool:
        limits_a.append(bench.bms.discharge_limit_a or 0.0)
        drawn_a.append(bench.pack_current_a)
        return not bench.bms.contactors_closed or bool(bench.bms.faults)

    start_s = bench.loop.t_s
    cut_s = bench.loop.first_time(tripped, SUSTAINED_BELOW_HOLD_FACTOR * sustained.max_reaction_ms / 1000)
    highest_a = max(limits_a)
    assert cut_s is None, (f"a host drawing the published limit (at most {highest_a:.1f} A) was cut after "
                           f"{cut_s - start_s:.2f} s: {bench.bms.describe()}")
    assert max(drawn_a) >= 0.9 * highest_a, (f"the host drew at most {max(drawn_a):.1f} A of a {highest_a:.1f} A "
                                             "limit: it did not draw all it was allowed")
    measure("discharge_limit_vs_sustained_level", highest_a, high=sustained.low, unit="A")


@pytest.mark.verifies("protections.cell_ov")
def test_cell_overvoltage_opens_contactors(bench, spec, measure):
    ov = spec.protections["cell_ov"]
    bench.power_up()
    channel = bench.pack.n_series - 1  # the last cell: loop bounds are where firmware slips
    bench.force_cell(channel, ov.low - 0.003)
    bench.loop.run_for(BELOW_HOLD_FACTOR * ov.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed, f"tripped below {ov.low} V: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.force_cell(channel, ov.high + 0.003),
                                timeout_s=5 * ov.max_reaction_ms / 1000)
    measure("cell_ov_reaction", reaction_s * 1000, high=ov.max_reaction_ms, unit="ms")
    bench.bms.wait_state(BmsState.FAULT, 1.0)
    assert "cell_ov" in bench.bms.faults, f"contactors open without the cell_ov fault: {bench.bms.describe()}"


@pytest.mark.verifies("protections.cell_ov")
def test_fault_latches_until_cleared(bench, spec):
    ov = spec.protections["cell_ov"]
    bench.power_up()
    bench.force_cell(0, ov.high + 0.01)
    bench.bms.wait_state(BmsState.FAULT, 2.0)
    bench.force_cell(0, None)
    bench.loop.run_for(1.0)
    assert bench.bms.state == BmsState.FAULT, "fault cleared itself without a host request"
    assert not bench.bms.contactors_closed
    bench.bms.clear_faults()
    bench.bms.wait_state(BmsState.NORMAL, 3.0)  # discharge is still requested, so it precharges again


@pytest.mark.verifies("heartbeat")
@pytest.mark.parametrize("mode", ["discharge", "charge"])
def test_heartbeat_loss_opens_contactors(bench, spec, measure, mode):
    budget_ms = spec.value("heartbeat.max_reaction_ms")
    bench.power_up(mode)
    bench.bms.heartbeat(False)
    t_last_s = max(bench.sender.last_sent_s(name) for name in bench.bms.heartbeat_messages)
    reaction_s = bench.bms.wait_contactors_open(5 * budget_ms / 1000) - t_last_s
    measure(f"heartbeat_reaction_{mode}", reaction_s * 1000, low=spec.value("heartbeat.timeout_ms"),
            high=budget_ms, unit="ms")


@pytest.mark.verifies("heartbeat")
@pytest.mark.parametrize("fault", ["frozen_counter", "bad_crc"])
def test_stale_or_corrupted_host_frames_are_a_lost_heartbeat(bench, spec, measure, fault):
    """A hung host whose CAN controller keeps re-sending its last frame (its alive counter frozen) is as dead as a
    silent one, and a frame whose CRC fails was corrupted on its way (ISO 26262's repetition and corruption, which
    E2E protection is there to catch). Neither may keep the contactors closed: with every host frame unsound from
    now on, the BMS must open within its heartbeat budget of the last sound frame, and not before its timeout."""
    missing = bench.bms.host_frames_without(fault)
    if missing:
        what = "alive counter" if fault == "frozen_counter" else "CRC"
        pytest.skip(f"the host's {', '.join(missing)} carry no {what}")
    budget_ms = spec.value("heartbeat.max_reaction_ms")
    bench.power_up()
    t_last_s = max(bench.sender.last_sent_s(name) for name in bench.bms.heartbeat_messages)
    bench.bms.host_frame_fault(fault)
    reaction_s = bench.bms.wait_contactors_open(5 * budget_ms / 1000) - t_last_s
    measure(f"heartbeat_reaction_{fault}", reaction_s * 1000, low=spec.value("heartbeat.timeout_ms"),
            high=budget_ms, unit="ms")
    bench.bms.wait_state(BmsState.FAULT, 1.0)
    assert "heartbeat" in bench.bms.faults, bench.bms.describe()


@pytest.mark.verifies("heartbeat")
def test_a_host_frame_lost_now_and_then_is_not_a_lost_heartbeat(bench, spec):
    """A frame the host sent that never arrived (a gateway's full queue, a host task that overran) is no sign of a
    dead host: the next one comes on time, its alive counter two on. Losses like that, once in a while, must not
    open the contactors: that nuisance trip drops a rack onto its backup or cuts a drone's power mid-flight."""
    timeout_s = spec.value("heartbeat.timeout_ms") / 1000
    bench.power_up()
    for _ in range(LOST_FRAMES):
        bench.bms.host_frame_fault("lost_frame")
        bench.loop.run_for(timeout_s)
    bench.loop.run_for(spec.value("heartbeat.max_reaction_ms") / 1000)   # time for a trip to be reported
    assert bench.bms.state == BmsState.NORMAL and bench.bms.contactors_closed and not bench.bms.faults, \
        f"{LOST_FRAMES} host frames of each message lost, one per {timeout_s * 1000:g} ms: {bench.bms.describe()}"


@pytest.mark.verifies("heartbeat")
def test_a_burst_of_lost_host_frames_inside_the_timeout_is_not_a_lost_heartbeat(bench, spec):
    """A gateway that reboots, a bus recovering from bus-off: several host frames in a row lost on their way, the
    next one inside the heartbeat timeout with its alive counter that many on. The BMS must take it at once: one whose
    E2E check first wants frames in sequence again (AUTOSAR's SyncCounter) stretches the gap past its timeout, and
    drops a rack onto its backup. Each burst leaves the gap two of the slowest host message's cycles short of
    timeout_ms; LOST_FRAMES of them, two timeouts apart."""
    timeout_s = spec.value("heartbeat.timeout_ms") / 1000
    cycle_s = max(bench.sender.cycle_s(name) for name in bench.bms.heartbeat_messages)
    frames = int(timeout_s / cycle_s + 1e-9) - 2
    if frames < 2:
        pytest.skip(f"host frames every {cycle_s * 1000:g} ms, a {timeout_s * 1000:g} ms timeout: no room inside it "
                    "for a burst of two lost frames")
    bench.power_up()
    for _ in range(LOST_FRAMES):
        bench.bms.host_frame_fault("lost_frame", frames)
        bench.loop.run_for(2 * timeout_s)
    bench.loop.run_for(spec.value("heartbeat.max_reaction_ms") / 1000)   # time for a trip to be reported
    assert bench.bms.state == BmsState.NORMAL and bench.bms.contactors_closed and not bench.bms.faults, (
        f"{LOST_FRAMES} bursts of {frames} host frames lost in a row (a gap of {(frames + 1) * cycle_s * 1000:g} ms "
        f"against a {timeout_s * 1000:g} ms timeout): {bench.bms.describe()}")


@pytest.mark.verifies("protections.cell_uv")
@pytest.mark.parametrize("load", ["idle", "under_load"])
def test_cell_undervoltage_opens_contactors(bench, spec, measure, load):
    """The cut-off is a limit on the cell's terminal voltage, under load too: a drone drawing hard on an empty pack
    must be cut when a cell reaches it, not when the cell would read it at rest (the suite's steady load, drawn
    whatever the limits say, as a motor controller that does not listen)."""
    uv = spec.protections["cell_uv"]
    bench.power_up()
    if load == "under_load":
        bench.set_load(steady_load_a(spec), honour_limits=False)
    channel = bench.pack.n_series - 1
    bench.force_cell(channel, uv.high + 0.003)
    bench.loop.run_for(BELOW_HOLD_FACTOR * uv.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed, f"tripped above {uv.high} V: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.force_cell(channel, uv.low - 0.003),
                                timeout_s=5 * uv.max_reaction_ms / 1000)
    measure("cell_uv_reaction" + ("_under_load" if load == "under_load" else ""), reaction_s * 1000,
            high=uv.max_reaction_ms, unit="ms")
    assert "cell_uv" in bench.bms.faults, f"contactors open without the cell_uv fault: {bench.bms.describe()}"


@pytest.mark.verifies("protections.charge_oc")
def test_charge_overcurrent_opens_contactors(bench, spec, measure):
    oc = spec.protections["charge_oc"]
    bench.power_up("charge")
    bench.set_load(-(oc.low - 0.5), honour_limits=False)
    bench.loop.run_for(BELOW_HOLD_FACTOR * oc.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed, f"tripped below {oc.low} A charge: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.set_load(-(oc.high + 1.0), honour_limits=False),
                                timeout_s=5 * oc.max_reaction_ms / 1000)
    measure("charge_oc_reaction", reaction_s * 1000, high=oc.max_reaction_ms, unit="ms")
    assert "charge_oc" in bench.bms.faults, f"contactors open without the charge_oc fault: {bench.bms.describe()}"


@pytest.mark.verifies("protections.cell_ot")
@pytest.mark.parametrize("sensor", ["first", "last"])
def test_cell_overtemperature_opens_contactors(bench, spec, measure, sensor):
    ot = spec.protections["cell_ot"]
    bench.power_up()
    channel = 0 if sensor == "first" else bench.pack.n_series - 1
    bench.force_temperature(channel, ot.low - 1.0)
    bench.loop.run_for(BELOW_HOLD_FACTOR * ot.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed, f"tripped below {ot.low} degC: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.force_temperature(channel, ot.high + 1.0),
                                timeout_s=5 * ot.max_reaction_ms / 1000)
    measure(f"cell_ot_reaction_{sensor}_sensor", reaction_s * 1000, high=ot.max_reaction_ms, unit="ms")
    assert "cell_ot" in bench.bms.faults, f"contactors open without the cell_ot fault: {bench.bms.describe()}"


@pytest.mark.verifies("protections.cell_ut")
def test_cell_undertemperature_opens_contactors(bench, spec, measure):
    """Charging a cold lithium cell plates lithium onto its anode: the BMS must open in charge mode too."""
    ut = spec.protections.get("cell_ut")
    if ut is None:
        pytest.skip("the spec states no [protections.cell_ut]")
    bench.power_up("charge")
    channel = bench.pack.n_series - 1
    bench.force_temperature(channel, ut.high + 1.0)
    bench.loop.run_for(BELOW_HOLD_FACTOR * ut.max_reaction_ms / 1000)
    assert bench.bms.contactors_closed, f"tripped above {ut.high} degC: {bench.bms.describe()}"
    reaction_s = _step_and_time(bench, lambda: bench.force_temperature(channel, ut.low - 1.0),
                                timeout_s=5 * ut.max_reaction_ms / 1000)
    measure("cell_ut_reaction", reaction_s * 1000, high=ut.max_reaction_ms, unit="ms")
    assert "cell_ut" in bench.bms.faults, f"contactors open without the cell_ut fault: {bench.bms.describe()}"


# Where along the stack the suite connects an insulation fault, as the cell tap counted from the pack's negative
# terminal: a function of the number of blocks in series. None: the positive terminal, where a bench that connects
# its resistor at one point only has it.
INSULATION_TAPS = {"positive": lambda n: None, "middle": lambda n: n // 2, "negative": lambda n: 0}


@pytest.mark.verifies("protections.insulation")
@pytest.mark.rig_requires("hv_insulation")
@pytest.mark.parametrize("where", ["positive", *(pytest.param(where, marks=pytest.mark.rig_requires("insulation_tap"))
                                                 for where in ("middle", "negative"))])
def test_insulation_fault_opens_contactors(bench, spec, measure, where):
    """A resistance from the pack to chassis below the error level (ohm per volt of pack voltage) is a shock
    hazard: the BMS must open; just above the level it must not. Wherever it connects: a monitor that judges by how
    far chassis sits from the pack's midpoint (a passive bridge) is blind to a fault halfway up the stack."""
    iso = spec.protections.get("insulation")
    if iso is None:
        pytest.skip("the spec states no [protections.insulation]")
    tap = INSULATION_TAPS[where](bench.pack.n_series)
    bench.power_up()
    pack_v = float(bench.pack.measured_cell_voltage_v.sum())   # at rest: what the BMS measures too
    try:
        bench.cell_emulator.set_insulation_fault(1.05 * iso.high * pack_v, tap)
        bench.loop.run_for(BELOW_HOLD_FACTOR * iso.max_reaction_ms / 1000)
        assert bench.bms.contactors_closed, f"tripped above {iso.high} ohm/V at the {where} tap: {bench.bms.describe()}"
        reaction_s = _step_and_time(bench,
                                    lambda: bench.cell_emulator.set_insulation_fault(0.95 * iso.low * pack_v, tap),
                                    timeout_s=5 * iso.max_reaction_ms / 1000)
    finally:
        bench.cell_emulator.set_insulation_fault(None)   # the resistor is the bench's: never leave it connected
    measure("insulation_reaction" if tap is None else f"insulation_reaction_{where}", reaction_s * 1000,
            high=iso.max_reaction_ms, unit="ms")
    assert "insulation" in bench.bms.faults, f"contactors open without the insulation fault: {bench.bms.describe()}"


@pytest.mark.verifies("contactor_weld")
@pytest.mark.rig_requires("contactor_weld")
@pytest.mark.parametrize("contactor", ["pos", "neg"])
def test_welded_contactor_is_detected(bench, spec, measure, contactor):
    """A main contactor welded shut (the bench's relay across its contacts) is unseen while closed, but once
    the BMS opens it, its feedback disagrees with the command: the BMS must report a contactor fault, and must
    not clear it nor close again while the weld is there (it would close the other pole onto a live link)."""
    if "contactor_weld" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [contactor_weld]: this BMS does not check its contactors' feedback")
    budget_ms = spec.value("contactor_weld.max_reaction_ms")
    bench.power_up()
    try:
        bench.cell_emulator.set_contactor_weld(contactor)
        bench.trace.mark(bench.loop.t_s, f"{contactor} contactor welded")
        bench.loop.run_for(BELOW_HOLD_FACTOR * budget_ms / 1000)
        assert bench.bms.contactors_closed and not bench.bms.faults, (
            f"a weld of a closed contactor is no fault yet: {bench.bms.describe()}")
        requested_s = bench.loop.t_s
        bench.bms.request("standby")
        reaction_s = bench.loop.run_until(
            lambda: "contactor" in bench.bms.faults, 5 * budget_ms / 1000,
            lambda: f"no contactor fault after the request to open, the {contactor} contactor welded; "
                    f"{bench.bms.describe()}") - requested_s
        bench.bms.clear_faults()
        bench.bms.request("discharge")
        bench.loop.run_for(1.0)
        assert bench.bms.state == BmsState.FAULT and "contactor" in bench.bms.faults, (
            f"the contactor fault cleared with the {contactor} contactor still welded: {bench.bms.describe()}")
        assert not bench.bms.contactors_closed, bench.bms.describe()
    finally:
        bench.cell_emulator.set_contactor_weld(None)   # the relay is the bench's: never leave it closed
        bench.trace.mark(bench.loop.t_s, "weld released")
    measure(f"contactor_weld_reaction_{contactor}", reaction_s * 1000, high=budget_ms, unit="ms")


@pytest.mark.verifies("contactor_weld")
@pytest.mark.rig_requires("precharge_weld")
def test_welded_precharge_contactor_is_detected(bench, spec, measure):
    """A precharge contactor welded shut passes unnoticed while the main contactors are closed (its resistor sits
    across the positive one), but once they open it keeps the DC link live through its resistor, and the next
    power-up has no precharge to switch. Its command is open in operation, so the BMS must report a contactor fault
    from its feedback, with both main contactors open, and must not clear it nor close them while the weld lasts."""
    budget_ms = spec.data.get("contactor_weld", {}).get("max_precharge_reaction_ms")
    if budget_ms is None:
        pytest.skip(f"{spec.path.name} has no [contactor_weld] max_precharge_reaction_ms: this BMS does not check its "
                    "precharge contactor's feedback")
    bench.power_up()
    try:
        bench.cell_emulator.set_contactor_weld("pre")
        welded_s = bench.loop.t_s
        bench.trace.mark(welded_s, "precharge contactor welded")
        reaction_s = bench.loop.run_until(
            lambda: "contactor" in bench.bms.faults and not bench.bms.contactors_closed, 5 * budget_ms / 1000,
            lambda: f"no contactor fault with the main contactors open, the precharge contactor welded; "
                    f"{bench.bms.describe()}") - welded_s
        bench.bms.clear_faults()
        bench.bms.request("discharge")
        closed_s = bench.loop.first_time(lambda: bench.bms.state != BmsState.FAULT or bench.bms.contactors_closed, 1.0)
        assert closed_s is None, (f"the BMS left FAULT or closed its main contactors with the precharge contactor "
                                  f"welded: {bench.bms.describe()}")
    finally:
        bench.cell_emulator.set_contactor_weld(None)   # the relay is the bench's: never leave it closed
        bench.trace.mark(bench.loop.t_s, "weld released")
    measure("contactor_weld_reaction_pre", reaction_s * 1000, high=budget_ms, unit="ms")


@pytest.mark.verifies("contactor_stuck_open")
@pytest.mark.rig_requires("contactor_stuck_open")
@pytest.mark.parametrize("contactor", ["pos", "neg"])
def test_contactor_stuck_open_is_detected(bench, spec, measure, contactor):
    """A main contactor that fails to close (the bench's relay in series with its coil) leaves no path for
    current: the BMS must say so with a contactor fault, not sit in NORMAL with no fault (a vehicle stranded
    with no diagnosis) nor blame the precharge (the wrong part replaced). It must open every contactor, the
    precharge one too (its resistor is sized for a pulse, not the load), and not retry on its own."""
    if "contactor_stuck_open" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [contactor_stuck_open]: this BMS does not check that its contactors "
                    "close")
    budget_ms = spec.value("contactor_stuck_open.max_reaction_ms")
    bench.cell_emulator.enable(True)
    bench.bms.wait_state(BmsState.STANDBY, 3.0)
    try:
        bench.cell_emulator.set_contactor_stuck_open(contactor)
        bench.trace.mark(bench.loop.t_s, f"{contactor} contactor stuck open")
        requested_s = bench.loop.t_s
        bench.bms.request("discharge")
        reaction_s = _until_tripped_open(bench, "contactor", requested_s, budget_ms,
                                         lambda: f"the {contactor} contactor stuck open, after the request to close")
        retried_s = bench.bms.left_fault_within(1.0)   # the request to close still standing
        assert retried_s is None, f"the BMS left FAULT or closed a contactor again by itself: {bench.bms.describe()}"
    finally:
        bench.cell_emulator.set_contactor_stuck_open(None)   # the relay is the bench's: never leave it open
        bench.trace.mark(bench.loop.t_s, "coil restored")
    measure(f"contactor_stuck_open_reaction_{contactor}", reaction_s * 1000, high=budget_ms, unit="ms")


@pytest.mark.verifies("contactor_stuck_open")
@pytest.mark.rig_requires("contactor_stuck_open")
@pytest.mark.parametrize("contactor", ["pos", "neg"])
def test_a_contactor_that_drops_out_under_load_is_detected(bench, spec, measure, contactor):
    """A closed main contactor that opens by itself (its coil's supply lost for a moment, its driver failing; the
    bench's relay in series with its coil) breaks the load. A BMS that compares its feedback only as it switches
    goes on reporting NORMAL, and current limits, to a host that counts on them: a backup unit that says it is
    ready with its output open. The BMS must report a contactor fault with every contactor open within
    max_dropout_reaction_ms, and, once the coil has its supply back, must not close again by itself: the DC link
    has sagged under the load, and closing onto it unprecharged is the inrush that welds contacts."""
    budget_ms = spec.data.get("contactor_stuck_open", {}).get("max_dropout_reaction_ms")
    if budget_ms is None:
        pytest.skip(f"{spec.path.name} has no [contactor_stuck_open] max_dropout_reaction_ms: this BMS does not "
                    "check its closed contactors' feedback in operation")
    load_a = steady_load_a(spec)
    bench.power_up()
    bench.set_load(load_a)
    bench.loop.run_for(1.0)
    assert bench.bms.contactors_closed and bench.pack_current_a > 0.9 * load_a and not bench.bms.faults, (
        f"{load_a:g} A asked, {bench.pack_current_a:g} A drawn: {bench.bms.describe()}")
    try:
        bench.cell_emulator.set_contactor_stuck_open(contactor)
        dropped_s = bench.loop.t_s
        bench.trace.mark(dropped_s, f"{contactor} contactor's coil broken under {load_a:g} A")
        reaction_s = _until_tripped_open(bench, "contactor", dropped_s, budget_ms,
                                         lambda: f"the {contactor} contactor dropped out under {load_a:g} A")
    finally:
        bench.cell_emulator.set_contactor_stuck_open(None)   # the relay is the bench's: never leave it open
        bench.trace.mark(bench.loop.t_s, "coil restored")
    reclosed_s = bench.bms.left_fault_within(1.0)   # the host's request to close still standing
    assert reclosed_s is None, f"the BMS left FAULT or closed a contactor again by itself: {bench.bms.describe()}"
    measure(f"contactor_dropout_reaction_{contactor}", reaction_s * 1000, high=budget_ms, unit="ms")


@pytest.mark.verifies("afe")
@pytest.mark.rig_requires("afe_link")
def test_a_lost_front_end_link_opens_the_contactors(bench, spec, measure):
    """The BMS reads its cells and thermistors through its front end (an AFE on an isoSPI daisy chain). A link that
    breaks (a cracked connector, a slave board losing its supply) leaves it the last values it read: a BMS that
    goes on judging them sees a pack frozen at that moment while a cell charges past OV. It must report `afe` with
    every contactor open within [afe] max_reaction_ms, and not close again while the link stays broken."""
    budget_ms = spec.data.get("afe", {}).get("max_reaction_ms")
    if budget_ms is None:
        pytest.skip(f"{spec.path.name} has no [afe]: this BMS does not check the link to its front end")
    bench.power_up()
    try:
        bench.cell_emulator.set_afe_link_open(True)
        broken_s = bench.loop.t_s
        bench.trace.mark(broken_s, "front end's link broken")
        reaction_s = _until_tripped_open(bench, "afe", broken_s, budget_ms, lambda: "the link to the front end broken")
        bench.bms.clear_faults()
        reclosed_s = bench.bms.left_fault_within(1.0)   # the host's request to close still standing
        assert reclosed_s is None, (f"the BMS left FAULT or closed a contactor with the link to its front end still "
                                    f"broken: {bench.bms.describe()}")
    finally:
        bench.cell_emulator.set_afe_link_open(False)   # the relay is the bench's: never leave it open
        bench.trace.mark(bench.loop.t_s, "front end's link restored")
    measure("afe_link_reaction", reaction_s * 1000, high=budget_ms, unit="ms")


# A connector chattering under vibration: HVIL_CHATTER_COUNT interruptions of the spec's ride_through_ms, one every
# HVIL_CHATTER_PERIOD_S. 47 ms is prime, so against a BMS task of any whole number of milliseconds below it the
# interruptions fall at every phase of its sampling: a BMS that reads the loop once without debouncing it sees some.
HVIL_CHATTER_PERIOD_S = 0.047
HVIL_CHATTER_COUNT = 10


def _hvil_spec(spec) -> dict:
    if "hvil" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [hvil]: this BMS has no high-voltage interlock loop")
    return spec.data["hvil"]


@pytest.mark.verifies("hvil")
@pytest.mark.rig_requires("hvil")
def test_open_interlock_opens_contactors_until_cleared(bench, spec, measure):
    """The high-voltage interlock loop runs through every HV connector and cover, and its pins break first: open,
    somebody is pulling a live connector. A connector chattering under vibration (a drone's motors, a rack's fans)
    breaks it for milliseconds, again and again: no trip. Held open, the BMS must report `hvil` with every
    contactor open within max_reaction_ms, close nothing while it stays open (a clear request notwithstanding),
    and stay in FAULT once it closes again, until the host clears it."""
    hvil = _hvil_spec(spec)
    budget_ms, glitch_s = hvil["max_reaction_ms"], hvil["ride_through_ms"] / 1000
    bench.power_up()
    try:
        if glitch_s > 0:
            for _ in range(HVIL_CHATTER_COUNT):
                bench.cell_emulator.set_hvil_open(True)
                bench.loop.run_for(glitch_s)
                bench.cell_emulator.set_hvil_open(False)
                bench.loop.run_for(HVIL_CHATTER_PERIOD_S - glitch_s)
            bench.loop.run_for(budget_ms / 1000)
            assert bench.bms.contactors_closed and "hvil" not in bench.bms.faults, (
                f"tripped on {HVIL_CHATTER_COUNT} interruptions of {hvil['ride_through_ms']} ms: "
                f"{bench.bms.describe()}")
        opened_s = bench.loop.t_s
        bench.trace.mark(opened_s, "interlock loop open")
        bench.cell_emulator.set_hvil_open(True)
        reaction_s = _until_tripped_open(bench, "hvil", opened_s, budget_ms, lambda: "the interlock loop open")
        bench.bms.clear_faults()   # the host's discharge request still stands
        closed_s = bench.loop.first_time(lambda: bench.bms.any_contactor_closed, 1.0)
        assert closed_s is None, (f"a contactor closed with the interlock loop open, after a clear: "
                                  f"{bench.bms.describe()}")
        bench.cell_emulator.set_hvil_open(False)
        bench.trace.mark(bench.loop.t_s, "interlock loop closed")
        assert bench.bms.left_fault_within(0.5) is None, (
            f"the BMS left FAULT by itself once the loop closed: {bench.bms.describe()}")
    finally:
        bench.cell_emulator.set_hvil_open(False)   # the relay is the bench's: never leave the loop open
    measure("hvil_reaction", reaction_s * 1000, high=budget_ms, unit="ms")
    bench.bms.clear_faults()
    bench.loop.run_until(lambda: bench.bms.contactors_closed, 3.0,
                         lambda: f"not closed again once the loop closed and the fault was cleared; "
                                 f"{bench.bms.describe()}")


@pytest.mark.verifies("hvil")
@pytest.mark.rig_requires("hvil")
def test_nothing_closes_onto_an_open_interlock(bench, spec):
    """A pack must not connect to an unplugged connector's pins: the loop open as the host asks to close (a
    service plug left out at key-on), the BMS must close nothing, the precharge contactor included (its resistor
    would still put the pack's voltage on the pins), and must report `hvil`."""
    hvil = _hvil_spec(spec)
    bench.cell_emulator.enable(True)
    bench.bms.wait_state(BmsState.STANDBY, 3.0)
    try:
        bench.cell_emulator.set_hvil_open(True)
        bench.trace.mark(bench.loop.t_s, "interlock loop open")
        bench.bms.request("discharge")
        closed_s = bench.loop.first_time(lambda: bench.bms.any_contactor_closed,
                                         max(1.0, 5 * hvil["max_reaction_ms"] / 1000))
        assert closed_s is None, f"a contactor closed onto the open interlock loop: {bench.bms.describe()}"
        assert "hvil" in bench.bms.faults, f"the open interlock loop is not reported: {bench.bms.describe()}"
    finally:
        bench.cell_emulator.set_hvil_open(False)   # the relay is the bench's: never leave the loop open
        bench.trace.mark(bench.loop.t_s, "interlock loop closed")


def _current_sensor_spec(spec) -> dict:
    if "current_sensor" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [current_sensor]: this BMS does not check its current sensor")
    return spec.data["current_sensor"]


@pytest.mark.verifies("current_sensor")
@pytest.mark.rig_requires("current_sensor")
@pytest.mark.parametrize("failure", ["dead", "frozen"])
def test_a_current_sensor_that_stops_measuring_is_detected(bench, spec, measure, failure):
    """Over-current and short-circuit protection, the SOC and the current limits all read one sensor. A dead one
    (a shunt amplifier that lost its supply reads 0 A) or a frozen one (its ADC or its bus stopped updating: it
    repeats its last reading) leaves the BMS blind to a short. The cells show what flows: each moves by its IR
    drop when the current steps. `dead`: the sensor drops to 0 A with load_a flowing; `frozen`: it holds its
    reading at rest, and the load then steps to load_a. The BMS must report `current_sensor` with every contactor
    open within max_reaction_ms. The same steps read by a sound sensor, first, must trip nothing."""
    sensor = _current_sensor_spec(spec)
    load_a, budget_ms = sensor["load_a"], sensor["max_reaction_ms"]
    hold_s = BELOW_HOLD_FACTOR * budget_ms / 1000
    bench.power_up()
    for step_a in (load_a, 0.0):
        bench.set_load(step_a)
        bench.loop.run_for(hold_s)
        assert bench.bms.contactors_closed and not bench.bms.faults, (
            f"a step to {step_a:g} A tripped with the current sensor sound: {bench.bms.describe()}")
    try:
        if failure == "dead":
            bench.set_load(load_a)
            bench.loop.run_for(hold_s)
            failed_s = bench.loop.t_s
            bench.force_current(0.0)
        else:
            bench.force_current(bench.pack_current_a)
            bench.loop.run_for(hold_s)   # frozen at rest: a BMS may or may not tell it from a sound sensor yet
            failed_s = bench.loop.t_s
            bench.set_load(load_a)
        reaction_s = _until_tripped_open(bench, "current_sensor", failed_s, budget_ms,
                                         lambda: f"the sensor {failure} and {load_a:g} A drawn")
    finally:
        bench.force_current(None)
    measure("current_sensor_reaction", reaction_s * 1000, high=budget_ms, unit="ms")


# The host asks to close this long after the sensor's offset appears (or a quarter of the budget, if less): after
# a setpoint period and a BMS task, so the BMS reads both, before any debounce a BMS might run has ended.
OFFSET_ASK_S = 0.05


@pytest.mark.verifies("current_sensor")
@pytest.mark.rig_requires("current_sensor")
@pytest.mark.parametrize("sign", [1, -1], ids=["reads_discharge", "reads_charge"])
def test_a_current_sensor_offset_is_seen_while_nothing_flows(bench, spec, measure, sign):
    """With every contactor open nothing flows, so what the current sensor reads then is its offset (a Hall
    sensor's zero drifts with temperature and age), which the coulomb count would integrate as charge or discharge
    for as long as the pack is in use. An offset within max_offset_a - offset_tolerance_a, either way, must pass;
    one of max_offset_a + offset_tolerance_a must be reported as `current_sensor` within max_offset_reaction_ms.
    The host asks to close shortly after the offset appears (as one does at power-up), before any debounce has
    run: nothing may close. Once the sensor reads zero again, its fault clears and the BMS closes."""
    sensor = _current_sensor_spec(spec)
    if "max_offset_a" not in sensor:
        pytest.skip(f"{spec.path.name} [current_sensor] has no max_offset_a: this BMS does not check its sensor's zero")
    max_a, tolerance_a = sensor["max_offset_a"], sensor["offset_tolerance_a"]
    budget_ms = sensor["max_offset_reaction_ms"]
    bench.power_up()
    bench.bms.request("standby")
    bench.bms.wait_contactors_open(1.0)
    try:
        bench.offset_current(sign * (max_a - tolerance_a))
        bench.loop.run_for(BELOW_HOLD_FACTOR * budget_ms / 1000)
        assert not bench.bms.faults, (f"an offset of {sign * (max_a - tolerance_a):+g} A, within the spec's "
                                      f"{max_a:g} - {tolerance_a:g} A, was reported: {bench.bms.describe()}")
        offset_a = sign * (max_a + tolerance_a)
        bench.offset_current(offset_a)
        offset_s = bench.loop.t_s
        bench.loop.run_for(min(OFFSET_ASK_S, budget_ms / 4000))
        bench.bms.request("discharge")
        reaction_s = bench.loop.run_until(
            lambda: "current_sensor" in bench.bms.faults or bench.bms.any_contactor_closed, 5 * budget_ms / 1000,
            lambda: f"no current_sensor fault with the sensor reading {offset_a:+g} A and every contactor open; "
                    f"{bench.bms.describe()}") - offset_s
        closed_s = bench.loop.first_time(lambda: bench.bms.any_contactor_closed, 1.0)
        assert closed_s is None, (f"a contactor closed on request with the sensor reading {offset_a:+g} A and "
                                  f"nothing flowing: {bench.bms.describe()}")
        measure("current_offset_reaction", reaction_s * 1000, high=budget_ms, unit="ms")
    finally:
        bench.offset_current(0.0)
    bench.bms.request("standby")
    bench.bms.clear_faults()
    bench.power_up()   # the offset gone, the fault clears and the BMS closes again


# The thermal-runaway test heats at this many times the spec's rate: a runaway's onset, faster still once it runs.
RUNAWAY_RATE_FACTOR = 2.0
# Its pack model updates temperatures every 0.1 s, not every second as by default: in 1 s steps, a BMS's rise over
# its last second would hold one step or, with a little jitter, none or two, which no real sensor shows.
RUNAWAY_THERMAL_DT_S = 0.1


@pytest.mark.verifies("thermal_runaway", "protections.cell_ot")
@pytest.mark.rig_requires("thermistors")
def test_thermal_runaway_is_flagged_before_overtemperature(custom_bench, spec, measure):
    """A cell heating itself (an internal short, a venting cell: the onset of a thermal runaway) must be reported
    within seconds, with every contactor open, long before it reaches the over-temperature threshold. A pack that
    its load heats evenly, just as fast (a drone's punch-out, a rack's sustained peak), is no runaway: no trip."""
    if "thermal_runaway" not in spec.data:
        pytest.skip(f"{spec.path.name} has no [thermal_runaway]: this BMS does not watch for a cell heating itself")
    budget_ms = spec.value("thermal_runaway.max_detect_ms")
    bench = custom_bench(f"pack.thermal_dt_s={RUNAWAY_THERMAL_DT_S}")
    heat_w = RUNAWAY_RATE_FACTOR * spec.value("thermal_runaway.rate_c_per_s") * bench.cell.heat_capacity_j_per_k
    pack = bench.pack
    channel = pack.n_series // 2   # between two neighbours, which draw some of its heat
    bench.power_up()
    try:
        for block in range(pack.n_series):
            pack.faults.set("runaway_heating", block=block, power_w=heat_w)
        bench.trace.mark(bench.loop.t_s, f"every cell heated, {heat_w:.0f} W each")
        tripped_s = bench.loop.first_time(lambda: bool(bench.bms.faults), BELOW_HOLD_FACTOR * budget_ms / 1000)
        assert tripped_s is None, f"a pack heated evenly tripped: {bench.bms.describe()}"
        pack.faults.clear("runaway_heating")
        heated_s = bench.loop.t_s
        pack.faults.set("runaway_heating", block=channel, power_w=heat_w)
        bench.trace.mark(heated_s, f"cell {channel + 1} heated, {heat_w:.0f} W")
        detect_s = _until_tripped_open(bench, "thermal_runaway", heated_s, budget_ms,
                                       lambda: f"cell {channel + 1} at {pack.temperature_c[channel]:.1f} degC, rising")
        cell_c = float(pack.temperature_c[channel])
    finally:
        pack.faults.clear("runaway_heating")
        bench.trace.mark(bench.loop.t_s, "heating off")
    measure("thermal_runaway_detection", detect_s * 1000, high=budget_ms, unit="ms")
    ot = spec.protections.get("cell_ot")
    if ot is not None:   # the point of watching the rate: well before the cell is hot enough for OT
        measure("thermal_runaway_margin_to_ot", ot.low - cell_c, low=0.0, unit="degC")


def _excursions(bench, channel: int, level_v: float, excursion_s: float, count: int = 8) -> list[float]:
    """`count` times: cell `channel` held at `level_v` for `excursion_s`, then as long back at the pack's own value.
    Returns the BMS's own readings of that cell at the end of each excursion (none for a map without cell
    voltages): what shows it saw them."""
    readings_v = []
    n = bench.cell_emulator.n_channels
    for _ in range(count):
        bench.force_cell(channel, level_v)
        bench.loop.run_for(excursion_s)
        reported_v = bench.bms.cell_voltages_v(n)
        if reported_v is not None and np.isfinite(reported_v[channel]):
            readings_v.append(float(reported_v[channel]))
        bench.force_cell(channel, None)
        bench.loop.run_for(excursion_s)
    return readings_v


@pytest.mark.verifies("protections.cell_ov")
def test_overvoltage_spikes_shorter_than_debounce_do_not_trip(bench, spec):
    """Transients above the threshold but shorter than the debounce are not a fault: the debounce resets."""
    ov = spec.protections["cell_ov"]
    bench.power_up()
    readings_v = _excursions(bench, 2, ov.high + 0.01, 0.4 * ov.max_reaction_ms / 1000)
    if readings_v:
        assert max(readings_v) > ov.high, f"the BMS never reported a spike (cell 3 at most {max(readings_v)} V)"
    assert bench.bms.contactors_closed and not bench.bms.faults, bench.bms.describe()


@pytest.mark.verifies("protections.cell_uv")
def test_undervoltage_dips_under_load_shorter_than_debounce_do_not_trip(bench, spec):
    """A drone's punch-outs at low charge, a rack's load steps on a backup near empty: each sags the emptiest cell
    below the cut-off for a moment, under the suite's steady load. Dips shorter than the debounce, again and again,
    are no fault: a counter that does not reset as the cell recovers adds them up to a trip, a drone's power cut
    mid-flight. Eight dips, each 0.4 of the UV reaction budget, as long apart."""
    uv = spec.protections["cell_uv"]
    bench.power_up()
    bench.set_load(steady_load_a(spec), honour_limits=False)
    channel = bench.pack.n_series - 1
    readings_v = _excursions(bench, channel, uv.low - 0.01, 0.4 * uv.max_reaction_ms / 1000)
    if readings_v:
        assert min(readings_v) < uv.low, (f"the BMS never reported a dip (cell {channel + 1} at least "
                                          f"{min(readings_v)} V)")
    assert bench.bms.contactors_closed and "cell_uv" not in bench.bms.faults, (
        f"dips below {uv.low:g} V of {0.4 * uv.max_reaction_ms:g} ms each tripped: {bench.bms.describe()}")
    assert not bench.bms.faults, bench.bms.describe()


@pytest.mark.verifies()   # no spec entry: any BMS must see a broken sense line, whatever its accuracy
@pytest.mark.rig_requires("fault_relays")
@pytest.mark.parametrize("relay,fault", [("open_wire", "sense_wire"), ("thermistor_open", "thermistor"),
                                         ("thermistor_short", "thermistor")])
def test_measurement_faults_are_detected(bench, relay, fault):
    bench.power_up()
    bench.cell_emulator.set_relay(5, **{relay: True})
    bench.bms.wait_state(BmsState.FAULT, 2.0)
    bench.bms.wait_contactors_open(0.5)
    assert fault in bench.bms.faults, bench.bms.describe()


@pytest.mark.verifies()   # the harness's own wait, no requirement of the BMS's
def test_wait_for_signal_values_through_the_bench(bench):
    """The DBC-level wait: BMS_Status reaches NORMAL with both contactors closed, in bench time."""
    if "BMS_Status" not in {message.name for message in bench.db.messages}:
        pytest.skip("waits on the reference DBC's BMS_Status, which this BMS's DBC does not have")
    bench.cell_emulator.enable(True)
    bench.bms.request("discharge")
    sample = bench.wait_for("BMS_Status", {"BMS_State": "NORMAL", "BMS_ContactorPos": 1, "BMS_ContactorNeg": 1},
                            timeout_s=3.0)
    assert sample.signals["BMS_State"] in (3, "NORMAL") and sample.time_s <= bench.loop.t_s
    with pytest.raises(HilTimeout, match="BMS_Status"):
        bench.wait_for("BMS_Status", {"BMS_State": "SAFE"}, timeout_s=0.2)
