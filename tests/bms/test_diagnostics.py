"""What a tester reads from the BMS over UDS (ISO 14229): its build, and a stored DTC for each fault it acted on.

A workshop, an end-of-line station and the CI job that flashed the board ask a production BMS over UDS which
build it runs and which faults it has stored, and they clear them. A trip the BMS acted on but did not store
leaves no trace for any of them; a DTC lost in a key cycle hides a fault the host has cleared since; a clear that
clears nothing buries the next fault among old ones. A DTC's snapshot is what a workshop diagnoses from (the
current the pack carried, its cells and temperatures when the error latched): one that shows the pack as it is
when read, contactors open and nothing flowing, sends it the wrong way; an occurrence counter that restarts at
every host clear hides a fault that keeps coming back. Runs where the harness has UDS for the BMS (`bench.uds`:
the reference BMS's, or a DUT map's `[uds]`).
"""
import numpy as np
import pytest

from hil.protocol import DTC_CONFIRMED, DTC_FAILED_THIS_CYCLE, DTC_PENDING, DTC_TEST_FAILED, BmsState

from .observe import key_cycle

HEALTHY_S = 2.0   # closed and idle this long after power-up: a DTC stored meanwhile is a nuisance one
DARK_S = 1.0      # the supply cut: a key cycle


def _uds(bench):
    if bench.uds is None:
        if bench.spec.data.get("diagnostics", {}).get("stores_dtcs", False):   # else the audit is silently off
            pytest.fail(f"{bench.spec.path.name} says the BMS stores a DTC for each error ([diagnostics] stores_dtcs), "
                        "but the harness has no UDS for it: give the DUT map a [uds] table (hil/devices/dut_map.py), "
                        "or leave stores_dtcs out", pytrace=False)
        pytest.skip("the harness has no UDS for this BMS (a DUT map without [uds]: see hil/devices/dut_map.py)")
    return bench.uds


def _uds_with(bench, spec_key: str, has: bool, missing: str):
    """The tester, where the map gives what `spec_key` of [diagnostics] needs (`has`); a failure where the spec
    says the BMS does it and the harness cannot check, else a skip."""
    uds = _uds(bench)
    if not has(uds):
        if bench.spec.data.get("diagnostics", {}).get(spec_key, False):
            pytest.fail(f"{bench.spec.path.name} says [diagnostics] {spec_key}, but the harness knows no {missing} "
                        "for this BMS: give them in its DUT map's [uds] (hil/devices/dut_map.py)", pytrace=False)
        pytest.skip(f"no {missing} known for this BMS ([uds] of its DUT map)")
    return uds


def _described(uds, dtcs: dict) -> str:
    return ", ".join(uds.describe(code, status) for code, status in dtcs.items()) or "none"


@pytest.mark.verifies("diagnostics")
def test_the_bms_says_its_build_over_uds_and_stores_no_dtc_while_healthy(bench):
    uds = _uds(bench)
    uds.clear_dtcs()   # a bench's BMS may hold DTCs from before this run
    bench.power_up()
    bench.loop.run_for(HEALTHY_S)
    version = uds.software_version()
    said = bench.bms.firmware_version if bench.bms.firmware_message is not None else None
    assert said is None or version == said, f"UDS 0x{uds.software_version_did:04X} says {version!r}, " \
                                            f"{bench.bms.firmware_message} says {said!r}"
    expected = bench.rig.expected_firmware
    assert expected is None or version == expected, f"the BMS runs {version!r}; the rig expects {expected!r}"
    stored = uds.read_dtcs()
    assert not stored, f"DTCs stored by a healthy bench, closed and idle: {_described(uds, stored)}"


@pytest.mark.verifies("diagnostics")
def test_a_trip_is_stored_as_a_confirmed_dtc_until_a_tester_clears_it(bench, spec, rig):
    """An over-voltage trip: its DTC stored as failed and confirmed; once the host has cleared the fault, still
    confirmed (no longer failed); after a supply cut (where the rig can cut it), still there, and a new operation
    cycle: not failed this cycle, still pending (it failed in the last one); after a second cut, a cycle without
    the fault, no longer pending (ISO 14229-1, D.2; each bit where the BMS's availability mask has it); after a
    tester's ClearDiagnosticInformation, gone."""
    uds = _uds(bench)
    code = uds.dtcs.get("cell_ov")
    if code is None:
        pytest.skip("the map's [uds.dtcs] names no DTC for cell_ov")
    bms, ov = bench.bms, spec.protections["cell_ov"]
    uds.clear_dtcs()
    bench.power_up()
    bench.force_cell(0, ov.high + 0.01)
    bms.wait_state(BmsState.FAULT, 5 * ov.max_reaction_ms / 1000)
    stored = uds.read_dtcs()
    assert stored.get(code, 0) & (DTC_TEST_FAILED | DTC_CONFIRMED) == DTC_TEST_FAILED | DTC_CONFIRMED, (
        f"after the over-voltage trip ({bms.describe()}), expected {uds.describe(code)} failed and confirmed; "
        f"stored: {_described(uds, stored)}")
    bench.force_cell(0, None)
    bms.clear_faults()
    bms.wait_state(BmsState.NORMAL, 3.0)   # discharge is still requested: it closes again
    stored = uds.read_dtcs()
    assert stored.get(code, 0) & (DTC_TEST_FAILED | DTC_CONFIRMED) == DTC_CONFIRMED, (
        f"once the host had cleared the fault, expected {uds.describe(code)} still confirmed, no longer failed; "
        f"stored: {_described(uds, stored)}")
    if "lv_supply" in rig.capabilities:
        bench.set_load(0.0)
        bms.request("standby")
        for cycle, pending in (("first", DTC_PENDING), ("second", 0)):
            key_cycle(bench, DARK_S)
            stored = uds.read_dtcs()
            checked = (DTC_FAILED_THIS_CYCLE | DTC_PENDING | DTC_CONFIRMED) & uds.status_availability
            assert stored.get(code, 0) & checked == (pending | DTC_CONFIRMED) & checked, (
                f"after the {cycle} {DARK_S:g} s supply cut (a new operation cycle), expected {uds.describe(code)} "
                f"confirmed, {'' if pending else 'not '}pending and not failed this cycle; stored "
                f"{_described(uds, stored)}")
    uds.clear_dtcs()
    stored = uds.read_dtcs()
    assert not stored, f"ClearDiagnosticInformation answered, but the BMS still stores {_described(uds, stored)}"


@pytest.mark.verifies("diagnostics", "accuracy")
def test_a_dtc_snapshot_holds_the_pack_as_it_tripped(bench, spec, measure):
    """A discharge over-current trip: each snapshot record of its DTC holds the current that tripped it, within the
    spec's current accuracy, and the hottest cell's temperature and the SOC of that moment, not the pack as it is
    once the contactors have opened."""
    uds = _uds_with(bench, "stores_snapshots", lambda uds: uds.snapshot, "snapshot DIDs ([uds.snapshot])")
    code = uds.dtcs.get("discharge_oc")
    if code is None:
        pytest.skip("the map's [uds.dtcs] names no DTC for discharge_oc")
    oc, accuracy = spec.protections["discharge_oc"], spec.section("accuracy")
    uds.clear_dtcs()
    bench.power_up()
    soc_before = bench.bms.soc
    trip_a = oc.high + 1.0
    bench.set_load(trip_a, honour_limits=False)
    bench.bms.wait_state(BmsState.FAULT, 5 * oc.max_reaction_ms / 1000)
    hottest_c = float(np.max(bench.pack.measured_temperature_c))
    bench.set_load(0.0)
    bench.loop.run_for(0.5)   # long enough for a snapshot that is not one to have drifted to the idle pack
    records = uds.read_snapshots(code)
    assert records, f"{uds.describe(code)} has no snapshot record after the trip ({bench.bms.describe()})"
    current_tolerance_a = accuracy["pack_current_a"] + accuracy.get("pack_current_pct", 0.0) / 100 * trip_a
    for number, values in sorted(records.items()):
        if "pack_current_a" in values:
            measure(f"dtc_snapshot_{number}_current_error", abs(values["pack_current_a"] - trip_a),
                    high=current_tolerance_a, unit="A")
        if "max_temperature_c" in values:
            measure(f"dtc_snapshot_{number}_temperature_error", abs(values["max_temperature_c"] - hottest_c),
                    high=accuracy["temperature_c"], unit="degC")
        if "soc" in values and soc_before is not None:
            assert values["soc"] == pytest.approx(soc_before, abs=0.02), \
                f"record {number}: SOC {values['soc']:.3f}; the BMS reported {soc_before:.3f} just before the trip"


@pytest.mark.verifies("diagnostics", "accuracy")
def test_each_occurrence_is_counted_and_the_first_snapshot_kept(bench, spec):
    """Two over-voltage trips, 10 mV and then 50 mV above the threshold, each cleared by the host: the DTC counts two
    occurrences, its first snapshot holds the first trip's cell voltage and its latest the second's."""
    def has_either(uds):
        return uds.occurrence_record is not None or (uds.snapshot_records and "max_cell_voltage_v" in uds.snapshot)
    uds = _uds_with(bench, "counts_occurrences", has_either, "occurrence counter or first and latest snapshots")
    code = uds.dtcs.get("cell_ov")
    if code is None:
        pytest.skip("the map's [uds.dtcs] names no DTC for cell_ov")
    bms, ov = bench.bms, spec.protections["cell_ov"]
    levels_v = (ov.high + 0.010, ov.high + 0.050)
    uds.clear_dtcs()
    bench.power_up()
    for level_v in levels_v:
        bench.force_cell(0, level_v)
        bms.wait_state(BmsState.FAULT, 5 * ov.max_reaction_ms / 1000)
        bench.force_cell(0, None)
        bms.clear_faults()
        bms.wait_state(BmsState.NORMAL, 3.0)
    if uds.occurrence_record is not None:
        count = uds.occurrences(code)
        assert count == len(levels_v), f"{uds.describe(code)}: {count} occurrence(s) counted of {len(levels_v)}"
    records = uds.read_snapshots(code) if uds.snapshot else {}
    tolerance_v = spec.section("accuracy")["cell_voltage_mv"] / 1000
    for which, level_v in zip(("first", "latest"), levels_v):
        number = uds.snapshot_records.get(which)
        if number is None or "max_cell_voltage_v" not in uds.snapshot:
            continue
        seen_v = records.get(number, {}).get("max_cell_voltage_v")
        assert seen_v is not None and abs(seen_v - level_v) <= tolerance_v, (
            f"{uds.describe(code)}'s {which} snapshot (record 0x{number:02X}) holds a highest cell of "
            f"{seen_v} V; that trip forced {level_v:.3f} V (records: {records})")
