"""The harness as a diagnostic tester (hil/devices/uds.py): UDS over ISO-TP on the bench's bus, on the virtual
clock and over the wire, through the built-in proxy or a DUT map's [uds]; refusals and silence named."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from udsoncan import Request, services

from hil.bench import Bench
from hil.devices.uds import UdsRefused
from hil.errors import HilError, HilTimeout
from hil.protocol import DTC_LATCHED_STATUS, DTCS, SNAPSHOT_DIDS, BmsState
from hil.rig import PROJECT_ROOT, load_rig
from hil.sim.bms_firmware import VERSION_TEXT

SIM = PROJECT_ROOT / "rigs" / "sim.toml"
REFERENCE_MAP = PROJECT_ROOT / "fixtures" / "duts" / "reference-bms.toml"


def _trip_ov_and_ot(bench) -> None:
    bench.power_up()
    bench.force_cell(0, 4.35)
    bench.force_temperature(1, 75.0)
    bench.loop.run_until(lambda: {"cell_ov", "cell_ot"} <= set(bench.bms.faults), 3.0, bench.bms.describe)


def test_the_reference_bms_answers_the_tester_on_the_virtual_clock():
    with Bench(load_rig(SIM)) as bench:
        uds = bench.uds
        assert uds.software_version() == VERSION_TEXT   # 8 bytes: a first frame, flow control, a consecutive frame
        uds.session(3)
        uds.tester_present()
        assert uds.read_dtcs() == {}
        _trip_ov_and_ot(bench)
        stored = uds.read_dtcs()
        assert stored == {DTCS["cell_ov"]: DTC_LATCHED_STATUS, DTCS["cell_ot"]: DTC_LATCHED_STATUS}
        assert [uds.describe(code, status) for code, status in stored.items()] == [
            "cell_ov (P1A00-00) status 0x2F", "cell_ot (P1A04-00) status 0x2F"]
        assert uds.read_dtcs(status_mask=0x40) == {}   # the mask selects: no DTC has that bit
        uds.clear_dtcs()
        assert uds.read_dtcs() == {
            code: DTC_LATCHED_STATUS for code in (DTCS["cell_ov"], DTCS["cell_ot"])}, "still latched: stored again"
        assert bench.monitor.problems() == [], "the diagnostic frames are in the DBC, and an answer is no cycle"


def test_snapshots_and_occurrences_through_the_map_and_its_own_names(tmp_path):
    """The reference BMS's DTC records read through its map: the over-voltage and over-temperature trips' snapshots
    hold the forced cell and thermistor, each counted once, and `hil uds` shows them. A DID the map names by a name
    of its own reads under that name; one it lacks is refused naming the DIDs it knows (their sizes are all a tester
    has to split a record)."""
    from hil.devices.uds_cli import _describe, _dtcs
    text = REFERENCE_MAP.read_text()
    with Bench(load_rig(SIM, [f'dut.map="{REFERENCE_MAP}"'])) as bench:
        uds = bench.uds
        assert uds.snapshot == SNAPSHOT_DIDS and uds.read_snapshots(DTCS["cell_ov"]) == {}
        assert uds.occurrences(DTCS["cell_ov"]) == 0
        _trip_ov_and_ot(bench)
        records = uds.read_snapshots(DTCS["cell_ov"])
        assert sorted(records) == [1, 2] and list(records[2]) == list(SNAPSHOT_DIDS)
        assert records[1]["max_cell_voltage_v"] == pytest.approx(4.35, abs=0.005), records
        assert uds.read_snapshots(DTCS["cell_ot"])[2]["max_temperature_c"] == pytest.approx(75.0, abs=1.0)
        assert uds.occurrences(DTCS["cell_ov"]) == uds.occurrences(DTCS["cell_ot"]) == 1
        shown = _describe({"rig": "sim", "snapshot_records": uds.snapshot_records,
                           "dtcs": _dtcs(uds, uds.read_dtcs(), details=True)})
        assert "    occurrences: 1" in shown
        assert any(line.startswith("    snapshot 0x01 (first): max_cell_voltage_v 4.35") for line in shown), shown
    path = tmp_path / "own-name.toml"
    path.write_text(text.replace("pack_voltage_v = { did", "hv_bus_v = { did"))
    with Bench(load_rig(SIM, [f'dut.map="{path}"'])) as bench:
        _trip_ov_and_ot(bench)
        assert bench.uds.read_snapshots(DTCS["cell_ov"])[2]["hv_bus_v"] == pytest.approx(16 * 3.85, abs=3.0)
    path.write_text(text.replace("pack_voltage_v = { did", "# pack_voltage_v = { did"))
    with Bench(load_rig(SIM, [f'dut.map="{path}"'])) as bench:
        _trip_ov_and_ot(bench)
        with pytest.raises(UdsRefused, match=r"the snapshot of cell_ov \(P1A00-00\) cannot be read by \[uds.snapshot\] "
                                             r"\(0x4A01, .*, 0x4A06\): .*0x4a07"):
            bench.uds.read_snapshots(DTCS["cell_ov"])


def test_a_refused_request_names_the_service_and_iso_14229s_reason():
    with Bench(load_rig(SIM)) as bench:
        with pytest.raises(UdsRefused, match=r"ReadDataByIdentifier refused by the BMS: negative response 0x31 "
                                             r"\(RequestOutOfRange\)"):
            bench.uds.read_did(0xF190)
        with pytest.raises(UdsRefused, match=r"RoutineControl refused by the BMS: negative response 0x11 "
                                             r"\(ServiceNotSupported\)"):
            bench.uds.request(Request(service=services.RoutineControl, subfunction=1, data=b"\x02\x03"))
        assert bench.uds.software_version() == VERSION_TEXT, "a refusal leaves the tester ready for the next"


def test_a_request_with_its_answer_suppressed_is_silence_unless_refused():
    """TesterPresent with suppressPosRspMsgIndicationBit (0x3E 0x80): no answer, None. The bit does not silence a
    refusal (ISO 14229-1): a subfunction the BMS does not know still raises with its code."""
    with Bench(load_rig(SIM)) as bench:
        uds = bench.uds
        uds.session(3)
        heard = bench.monitor.stats[uds.response_message].count
        assert uds.tester_present(suppress_response=True) is None
        assert bench.monitor.stats[uds.response_message].count == heard, "a suppressed positive answer was sent"
        request = Request(service=services.TesterPresent, subfunction=1, suppress_positive_response=True)
        with pytest.raises(UdsRefused, match=r"TesterPresent refused by the BMS: negative response 0x12") as refused:
            uds.request(request, timeout_s=0.2, silence_ok=True)
        assert refused.value.code == 0x12
        assert uds.tester_present() is not None, "without the bit, the positive answer comes"


def test_a_request_to_every_ecu_is_one_frame_on_the_functional_id(tmp_path):
    """The reference BMS answers functional TesterPresent. A request too long for a single frame is refused before
    it is sent, and a map without [uds] functional_request names the key."""
    with Bench(load_rig(SIM)) as bench:
        uds = bench.uds
        assert uds.functional_message == "UDS_FunctionalRequest"
        assert uds.tester_present(functional=True).service == services.TesterPresent
        with pytest.raises(HilError, match=r"WriteDataByIdentifier to every ECU at once: 9 bytes; a functional request "
                                           r"is one ISO-TP single frame, 7 bytes at most"):
            uds.request(Request(service=services.WriteDataByIdentifier, data=bytes(8)), functional=True)
    map_path = tmp_path / "no-functional.toml"
    map_path.write_text(REFERENCE_MAP.read_text().replace('functional_request = "UDS_FunctionalRequest"', ""))
    with Bench(load_rig(SIM, [f'dut.map="{map_path}"'])) as bench:
        with pytest.raises(HilError, match=r"TesterPresent to every ECU at once: the harness knows no functional "
                                           r"request message for this BMS; give its DUT map's \[uds\] functional_"):
            bench.uds.tester_present(functional=True)


def test_a_silent_bms_is_a_timeout_saying_nothing_came():
    with Bench(load_rig(SIM)) as bench:
        bench.supply.output(False)
        bench.loop.run_for(0.1)
        with pytest.raises(HilTimeout, match=r"not met within 0.2 s .*TesterPresent to the BMS \(UDS_BmsRequest\): "
                                             r"no answer on UDS_BmsResponse \(0 frame\(s\) came\)"):
            bench.uds.request(services.TesterPresent.make_request(), timeout_s=0.2)


def test_a_dut_maps_uds_drives_the_tester_and_tells_the_build_where_can_does_not(tmp_path):
    """The reference BMS through its map, then without [firmware]: the bench then reads the build over UDS; and a
    map without [uds] has no tester (the suite's diagnostic tests skip)."""
    text = REFERENCE_MAP.read_text()
    with Bench(load_rig(SIM, [f'dut.map="{REFERENCE_MAP}"'])) as bench:
        assert bench.uds.request_message == "UDS_BmsRequest" and bench.uds.software_version() == VERSION_TEXT
        assert bench.firmware_source == "BMS_Version"   # CAN says it: no need to ask
    path = tmp_path / "no-firmware.toml"
    path.write_text(text[:text.index("[firmware]")] + text[text.index("[uds]"):])
    with Bench(load_rig(SIM, [f'dut.map="{path}"', f'dut.firmware="{VERSION_TEXT}"'])) as bench:
        assert bench.firmware_source == "UDS ReadDataByIdentifier 0xF189" and bench.reported_firmware is None
        bench.check_firmware()
        assert bench.reported_firmware == VERSION_TEXT
    with Bench(load_rig(SIM, [f'dut.map="{path}"', 'dut.firmware="9.9.9"'])) as bench:
        with pytest.raises(HilError, match=rf"says it runs '{VERSION_TEXT}' \(UDS ReadDataByIdentifier 0xF189\)"):
            bench.check_firmware()
    path.write_text(text[:text.index("[uds]")])
    with Bench(load_rig(SIM, [f'dut.map="{path}"'])) as bench:
        assert bench.uds is None


def test_a_maps_key_function_in_a_file_beside_it_unlocks_the_protected_write(tmp_path):
    """A lab keeps its maker's key algorithm in its own file ("keys.py:function" beside the map): the tester unlocks
    with it and writes. A key function that gives the wrong key is refused as the BMS refuses it (invalidKey, its
    code kept), and a write before any key is securityAccessDenied. One that raises, or gives no bytes, is named
    with the seed it was given."""
    (tmp_path / "keys.py").write_text("from hil.protocol import reference_security_key\n"
                                      "def good(seed, level):\n    return reference_security_key(seed, level)\n"
                                      "def bad(seed, level):\n    return bytes(len(seed))\n"
                                      "def raises(seed, level):\n    raise ValueError('seed too short')\n"
                                      "def gives_text(seed, level):\n    return seed.hex()\n")
    text = REFERENCE_MAP.read_text()
    path = tmp_path / "map.toml"
    for function, error in (("raises", r"failed for seed [0-9a-f ]{11}: ValueError: seed too short"),
                            ("gives_text", r"gave '[0-9a-f]{8}' for seed [0-9a-f ]{11}; expected the key's bytes")):
        path.write_text(text.replace('"hil.protocol:reference_security_key"', f'"keys.py:{function}"'))
        with Bench(load_rig(SIM, [f'dut.map="{path}"'])) as bench:
            bench.uds.session(3)
            with pytest.raises(HilError, match=rf"the security key function \(\[uds\] security_key, {function}\) "
                                               rf"{error}"):
                bench.uds.unlock()
    for function in ("good", "bad"):
        path.write_text(text.replace('"hil.protocol:reference_security_key"', f'"keys.py:{function}"'))
        with Bench(load_rig(SIM, [f'dut.map="{path}"'])) as bench:
            uds = bench.uds
            value = uds.read_did(uds.protected_did)
            uds.session(3)
            with pytest.raises(UdsRefused, match=r"WriteDataByIdentifier refused by the BMS: negative response 0x33 "
                                                 r"\(SecurityAccessDenied\)") as refused:
                uds.write_did(uds.protected_did, value)
            assert refused.value.code == 0x33
            if function == "bad":
                with pytest.raises(UdsRefused, match=r"SecurityAccess refused by the BMS: negative response 0x35 "
                                                     r"\(InvalidKey\)"):
                    uds.unlock()
                continue
            assert any(uds.unlock()) and not any(uds.unlock()), "a seed, then zeros once unlocked"
            uds.write_did(uds.protected_did, value)


def test_a_tester_without_a_key_says_which_map_key_is_missing(tmp_path):
    text = REFERENCE_MAP.read_text()
    path = tmp_path / "no-key.toml"
    path.write_text(_without(text, "security_key", "security_level"))
    with Bench(load_rig(SIM, [f'dut.map="{path}"'])) as bench:
        with pytest.raises(HilError, match=r"no security key is known for this BMS: give \[uds\] security_key"):
            bench.uds.unlock()
        with pytest.raises(HilError, match=r"no security access level is known for this BMS: give \[uds\] "
                                           r"security_level"):
            bench.uds.request_seed()


@pytest.mark.wire
def test_the_tester_over_slcan_reads_the_build_and_a_stored_dtc():
    """The boards in their own process behind a pty, python-can's slcan client in the harness, real clock: the
    multi-frame answers' flow control crosses the wire both ways."""
    with Bench(load_rig(PROJECT_ROOT / "rigs" / "slcan.toml")) as bench:
        assert bench.uds.software_version() == VERSION_TEXT
        _trip_ov_and_ot(bench)
        assert bench.uds.read_dtcs() == {DTCS["cell_ov"]: DTC_LATCHED_STATUS, DTCS["cell_ot"]: DTC_LATCHED_STATUS}
        snapshot = bench.uds.read_snapshots(DTCS["cell_ov"])[2]   # ten frames, flow-controlled over the wire
        assert snapshot["max_cell_voltage_v"] == pytest.approx(4.35, abs=0.005), snapshot
        assert bench.uds.occurrences(DTCS["cell_ov"]) == 1
        bench.release_channels()
        bench.loop.run_for(2.0)   # the thermistor reports once a second
        bench.bms.clear_faults()
        bench.bms.wait_state(BmsState.NORMAL, 3.0)
        bench.uds.clear_dtcs()
        assert bench.uds.read_dtcs() == {}


def test_hil_uds_reads_the_build_and_the_dtcs_outside_any_test(capsys, tmp_path):
    from hil.cli import main
    assert main(["uds", "--clear", "--did", "0xF189", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    readings = json.loads(lines[-1])
    assert readings["software_version"] == VERSION_TEXT and readings["dtcs"] == readings["dtcs_after_clear"] == {}
    assert readings["dids"] == {"0xF189": VERSION_TEXT.encode().hex(" ")} and readings["safe"]
    assert f"build: {VERSION_TEXT}" in lines and "after the clear: 0" in lines
    assert f"DID 0xF189: {VERSION_TEXT.encode().hex(' ')} ({VERSION_TEXT!r})" in lines
    assert main(["uds", "--did", "0xF189", "--did", "0xF190"]) == 1   # the VIN: not this BMS's
    out = capsys.readouterr().out
    assert "DID 0xF189: " in out and out.rstrip().endswith(
        "PROBLEM: ReadDataByIdentifier refused by the BMS: negative response 0x31 (RequestOutOfRange)")
    text = REFERENCE_MAP.read_text()
    path = tmp_path / "no-uds.toml"
    path.write_text(text[:text.index("[uds]")])
    assert main(["uds", "--set", f'dut.map="{path}"']) == 2
    assert "the harness has no UDS for this BMS: a DUT map needs a [uds] table" in capsys.readouterr().err


def test_hil_uds_writes_a_protected_did_unlocked(capsys, tmp_path):
    """`--write` unlocks with the map's key and writes (the OV trip lowered to 4.100 V, read back); a map with no
    key is a problem named; a value that is not hex is refused before the bench opens."""
    from hil.cli import main
    assert main(["uds", "--write", "0x4B01=1004", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[-1])["written"] == {"0x4B01": "10 04"}
    assert "DID 0x4B01 written, reads back: 10 04" in lines
    path = tmp_path / "no-key.toml"
    path.write_text(_without(REFERENCE_MAP.read_text(), "security_key"))
    assert main(["uds", "--write", "0x4B01=1004", "--set", f'dut.map="{path}"']) == 1
    assert capsys.readouterr().out.rstrip().endswith(
        "PROBLEM: no security key is known for this BMS: give [uds] security_key in its DUT map "
        "(hil/devices/dut_map.py)")
    with pytest.raises(SystemExit) as exited:
        main(["uds", "--write", "0x4B01=4.1"])
    assert exited.value.code == 2
    assert "'0x4B01=4.1': expected DID=HEX, the bytes to write in hex" in capsys.readouterr().err


def _without(text: str, *lines: str) -> str:
    for line in lines:
        text = "\n".join(kept for kept in text.splitlines() if not kept.startswith(line))
    return text


@pytest.mark.parametrize(("cut", "outcome", "message"), [
    (lambda text: text[:text.index("[uds]")], "4 failed",
     "reference-bms.toml says the BMS stores a DTC for each error ([diagnostics] stores_dtcs), but the harness has "
     "no UDS for it: give the DUT map a [uds] table"),
    (lambda text: _without(text[:text.index("[uds.snapshot]")], "snapshot_records", "occurrence_record"),
     "2 failed, 2 passed", "reference-bms.toml says [diagnostics] stores_snapshots, but the harness knows no snapshot "
                           "DIDs ([uds.snapshot]) for this BMS"),
], ids=["no-uds", "no-dtc-records"])
def test_a_spec_that_says_dtcs_are_stored_fails_the_diagnostic_tests_without_uds(tmp_path, cut, outcome, message):
    """A map without [uds] under a spec with [diagnostics] stores_dtcs: the audit after each test cannot run, so
    the diagnostic tests fail saying so, rather than skip and leave it unsaid. The same for a map without the DTCs'
    snapshots and occurrence counter under a spec that says the BMS keeps them."""
    path = tmp_path / "cut.toml"
    path.write_text(cut(REFERENCE_MAP.read_text()))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             str(PROJECT_ROOT / "tests" / "bms" / "test_diagnostics.py"), "--set", f'dut.map="{path}"'],
                            capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert result.returncode == 1 and outcome in result.stdout, result.stdout[-2000:]
    assert message in result.stdout, result.stdout[-2000:]
