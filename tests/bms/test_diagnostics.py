"""What a tester reads from the BMS over UDS (ISO 14229): its build, and a stored DTC for each fault it acted on.

A workshop, an end-of-line station and the CI job that flashed the board ask a production BMS over UDS which
build it runs and which faults it has stored, and they clear them. A trip the BMS acted on but did not store
leaves no trace for any of them; a DTC lost in a key cycle hides a fault the host has cleared since; a clear that
clears nothing buries the next fault among old ones. Runs where the harness has UDS for the BMS (`bench.uds`:
the reference BMS's, or a DUT map's `[uds]`).
"""
import pytest

from hil.protocol import DTC_CONFIRMED, DTC_TEST_FAILED, BmsState

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


def _described(uds, dtcs: dict) -> str:
    return ", ".join(uds.describe(code, status) for code, status in dtcs.items()) or "none"


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


def test_a_trip_is_stored_as_a_confirmed_dtc_until_a_tester_clears_it(bench, spec, rig):
    """An over-voltage trip: its DTC stored as failed and confirmed; once the host has cleared the fault, still
    confirmed (no longer failed); after a supply cut, still there (where the rig can cut it); after a tester's
    ClearDiagnosticInformation, gone."""
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
        bench.supply.output(False)
        bench.loop.run_for(DARK_S)
        bench.supply.output(True)
        bms.wait_state(BmsState.STANDBY, 3.0)
        stored = uds.read_dtcs()
        assert stored.get(code, 0) & DTC_CONFIRMED, (
            f"after a {DARK_S:g} s supply cut, {uds.describe(code)} is gone: stored {_described(uds, stored)}")
    uds.clear_dtcs()
    stored = uds.read_dtcs()
    assert not stored, f"ClearDiagnosticInformation answered, but the BMS still stores {_described(uds, stored)}"
