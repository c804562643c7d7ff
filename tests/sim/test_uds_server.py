"""The reference BMS's diagnostic server, byte by byte on its bus (hil/sim/uds_server.py): ISO-TP framing as
ISO 15765-2 lays it out, written here by hand rather than by can-isotp (which the server uses), and UDS answers
as ISO 14229-1 gives them, the DTC memory behind them."""
import pytest

from hil.protocol import (DTC_LATCHED_STATUS, DTC_TEST_FAILED, DTCS, SNAPSHOT_DIDS, ScaledDid,
                          reference_security_key)
from hil.sim.bms_firmware import VERSION_TEXT
from hil.sim.uds_server import S3_SERVER_S, SECURITY_DELAY_S

PAD = 0xCC


def _frame(*data: int) -> bytes:
    return bytes(data) + bytes([PAD] * (8 - len(data)))


@pytest.fixture
def tester(make_boards):
    """Boards with the firmware in STANDBY, and every frame of UDS_BmsResponse kept as it comes."""
    boards = make_boards()
    boards.standby()
    return boards


def _ask(boards, *request: int, tasks: int = 2) -> list[bytes]:
    """A single-frame request; the frames that came within `tasks` main tasks."""
    return boards.ask_uds(*request, tasks=tasks)


def test_a_short_answer_is_one_single_frame(tester):
    assert _ask(tester, 0x3E, 0x00) == [_frame(0x02, 0x7E, 0x00)]                           # TesterPresent
    assert _ask(tester, 0x10, 0x03) == [_frame(0x06, 0x50, 0x03, 0x00, 0x32, 0x00, 0xC8)]   # P2 50 ms, P2* 2 s
    assert _ask(tester, 0x14, 0xFF, 0xFF, 0xFF) == [_frame(0x01, 0x54)]                       # nothing stored
    assert _ask(tester, 0x19, 0x02, 0xFF) == [_frame(0x03, 0x59, 0x02, 0x2F)]                 # no DTC records


def test_requests_it_cannot_serve_get_iso_14229s_negative_responses(tester):
    assert _ask(tester, 0x31, 0x01, 0x02, 0x03) == [_frame(0x03, 0x7F, 0x31, 0x11)]   # serviceNotSupported
    assert _ask(tester, 0xBA) == [_frame(0x03, 0x7F, 0xBA, 0x11)]                     # no UDS service at all
    assert _ask(tester, 0x22, 0xF1, 0x90) == [_frame(0x03, 0x7F, 0x22, 0x31)]         # requestOutOfRange (VIN)
    assert _ask(tester, 0x22, 0xF1) == [_frame(0x03, 0x7F, 0x22, 0x13)]               # incorrect length
    assert _ask(tester, 0x10, 0x02) == [_frame(0x03, 0x7F, 0x10, 0x12)]               # no programming session
    assert _ask(tester, 0x14, 0x00, 0x01, 0x00) == [_frame(0x03, 0x7F, 0x14, 0x31)]   # one group: not kept
    assert _ask(tester, 0x3E, 0x80) == []   # suppressPosRspMsgIndicationBit: no answer


def test_a_request_to_every_ecu_is_answered_on_the_response_id_and_refused_only_where_it_matters(tester):
    """Functional addressing (UDS_FunctionalRequest, 0x7DF): the same answers on 0x7E8, but no serviceNotSupported,
    subFunctionNotSupported or requestOutOfRange (ISO 14229-1: of the many ECUs that hear it, those that cannot
    serve it stay silent). Other refusals still come."""
    def ask(*request):
        return tester.ask_uds(*request, message="UDS_FunctionalRequest")
    assert ask(0x3E, 0x00) == [_frame(0x02, 0x7E, 0x00)]
    assert ask(0x3E, 0x80) == []
    assert ask(0x31, 0x01, 0x02, 0x03) == []       # serviceNotSupported: silent
    assert ask(0x10, 0x02) == []                   # subFunctionNotSupported: silent
    assert ask(0x22, 0xF1, 0x90) == []             # requestOutOfRange: silent
    assert ask(0x22, 0xF1) == [_frame(0x03, 0x7F, 0x22, 0x13)]   # incorrect length: still refused
    assert ask(0x10, 0x03) == [_frame(0x06, 0x50, 0x03, 0x00, 0x32, 0x00, 0xC8)]
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x7F, 0x2E, 0x33)], \
        "the functional request opened the extended session: locked, the write is securityAccessDenied"


def test_a_long_answer_waits_for_the_testers_flow_control(tester):
    """The version (3 + 5 bytes) does not fit a single frame: a first frame, then, only after the tester's flow
    control, the consecutive frame."""
    version = VERSION_TEXT.encode()
    payload = bytes([0x62, 0xF1, 0x89]) + version
    first = _ask(tester, 0x22, 0xF1, 0x89, tasks=5)
    assert first == [bytes([0x10, len(payload)]) + payload[:6]], "a first frame, and nothing more until the FC"
    tester.uds_answers.clear()
    tester.sender.send_frame("UDS_BmsRequest", _frame(0x30, 0x00, 0x00))   # clear to send, all of it, no gap
    tester.step(2)
    assert tester.uds_answers == [_frame(0x21, *payload[6:])]


def test_stored_dtcs_are_read_out_with_their_status_and_cleared(tester):
    """An over-voltage and an over-temperature latched: both DTCs, failed and confirmed (11 bytes: a first
    frame and a consecutive frame). Once the host has cleared the faults, both still stored, no longer failed;
    after ClearDiagnosticInformation, none."""
    tester.power_up()
    tester.ce.setpoint_v[0] = tester.cal["cell_ov_v"] + 0.01
    tester.ce.setpoint_c[1] = tester.cal["cell_ot_c"] + 2.0
    tester.run_until(lambda: tester.fault("cell_ov") and tester.fault("cell_ot"), 2.0, "cell_ov and cell_ot latched")
    records = [*DTCS["cell_ov"].to_bytes(3, "big"), DTC_LATCHED_STATUS, *DTCS["cell_ot"].to_bytes(3, "big"),
               DTC_LATCHED_STATUS]
    first = _ask(tester, 0x19, 0x02, 0xFF)
    assert first == [bytes([0x10, 11, 0x59, 0x02, 0x2F, *records[:3]])]
    tester.uds_answers.clear()
    tester.sender.send_frame("UDS_BmsRequest", _frame(0x30, 0x00, 0x00))
    tester.step(2)
    assert tester.uds_answers == [_frame(0x21, *records[3:])]
    tester.ce.setpoint_v[0] = tester.ocv_at(0.5)
    tester.ce.setpoint_c[1] = 25.0
    tester.clear_faults()
    tester.step(2)
    cleared = DTC_LATCHED_STATUS & ~DTC_TEST_FAILED
    assert tester.fw.dtcs == {DTCS["cell_ov"]: cleared, DTCS["cell_ot"]: cleared}
    assert _ask(tester, 0x19, 0x01, 0x01) == [_frame(0x06, 0x59, 0x01, 0x2F, 0x01, 0x00, 0x00)]   # none failing
    assert _ask(tester, 0x14, 0xFF, 0xFF, 0xFF) == [_frame(0x01, 0x54)]
    assert tester.fw.dtcs == {}


def _ask_long(boards, *request: int) -> bytes:
    """A single-frame request whose answer is a first frame and consecutive frames: the tester's flow control
    (clear to send, all of it, no gap) after the first; the answer reassembled, its sequence numbers checked."""
    first = _ask(boards, *request, tasks=3)
    assert len(first) == 1 and first[0][0] >> 4 == 1, f"expected one first frame, got {first}"
    length = (first[0][0] & 0x0F) << 8 | first[0][1]
    payload = bytearray(first[0][2:])
    boards.uds_answers.clear()
    boards.sender.send_frame("UDS_BmsRequest", _frame(0x30, 0x00, 0x00))
    boards.step(3)
    for number, frame in enumerate(boards.uds_answers, start=1):
        assert frame[0] == 0x20 | number % 16, f"consecutive frame {number}: {frame.hex()}"
        payload += frame[1:]
    assert len(payload) >= length, f"{len(payload)} of {length} bytes came"
    return bytes(payload[:length])


def test_scaled_dids_encode_as_written_by_hand():
    assert SNAPSHOT_DIDS["max_cell_voltage_v"].encode(4.215) == bytes([0x10, 0x77])   # 4215 mV
    assert SNAPSHOT_DIDS["pack_current_a"].encode(-12.3) == bytes([0xFF, 0x85])        # -123 x 0.1 A
    assert SNAPSHOT_DIDS["soc"].decode(bytes([0x13, 0x88])) == 0.5                      # 5000 x 0.0001
    assert SNAPSHOT_DIDS["min_temperature_c"].encode(float("nan")) == bytes([0x7F, 0xFF])   # not available
    assert ScaledDid(0x1234, "uint8", 0.5, -40.0).encode(25.0) == bytes([130])
    assert SNAPSHOT_DIDS["max_cell_voltage_v"].encode(1e6) == bytes([0xFF, 0xFE])   # clipped below "n/a"


def test_a_dtc_carries_its_trip_snapshots_and_occurrence_count(tester):
    """An over-current trip at 1.5 times the threshold, cleared by the host, then one at 1.2 times: the DTC's
    snapshot records 0x01 (first occurrence) and 0x02 (latest) each hold the seven DIDs in order, with the
    current each trip latched at; its extended data record 0x01 counts two occurrences. A DTC that never failed
    answers with its DTC and status only; one outside the table, or a record the server does not keep, is
    refused."""
    code = DTCS["discharge_oc"]
    dtc = list(code.to_bytes(3, "big"))
    tester.power_up()
    for factor in (1.5, 1.2):
        tester.ce.current_a = tester.cal["discharge_oc_a"] * factor
        tester.run_until(lambda: tester.fault("discharge_oc"), 2.0, "discharge_oc latched")
        tester.ce.current_a = 0.0
        tester.clear_faults()
        tester.run_until(lambda: not tester.fw.faults, 0.5, "the fault cleared")
    status = DTC_LATCHED_STATUS & ~DTC_TEST_FAILED
    answer = _ask_long(tester, 0x19, 0x04, *dtc, 0xFF)
    assert answer[:6] == bytes([0x59, 0x04, *dtc, status])
    records, at = {}, 6
    while at < len(answer):
        number, count = answer[at], answer[at + 1]
        at += 2
        values = {}
        for _ in range(count):
            did = int.from_bytes(answer[at:at + 2], "big")
            (name, codec), = ((name, codec) for name, codec in SNAPSHOT_DIDS.items() if codec.did == did)
            values[name] = codec.decode(answer[at + 2:at + 2 + codec.size])
            at += 2 + codec.size
        assert list(values) == list(SNAPSHOT_DIDS), f"record {number}'s DIDs: {list(values)}"
        records[number] = values
    assert sorted(records) == [0x01, 0x02]
    for number, factor in ((0x01, 1.5), (0x02, 1.2)):
        assert records[number]["pack_current_a"] == pytest.approx(tester.cal["discharge_oc_a"] * factor, abs=0.1)
        assert records[number]["soc"] == pytest.approx(tester.fw.soc, abs=0.01)
    only_latest = _ask_long(tester, 0x19, 0x04, *dtc, 0x02)
    assert only_latest[6] == 0x02 and len(only_latest) == 6 + 2 + 4 * len(SNAPSHOT_DIDS)
    occurrences = _ask_long(tester, 0x19, 0x06, *dtc, 0xFF)   # 8 bytes: just over a single frame
    assert occurrences == bytes([0x59, 0x06, *dtc, status, 0x01, 2])
    never = list(DTCS["cell_ut"].to_bytes(3, "big"))
    assert _ask(tester, 0x19, 0x04, *never, 0xFF) == [_frame(0x06, 0x59, 0x04, *never, 0x00)]
    assert _ask(tester, 0x19, 0x06, *never, 0x01) == [_frame(0x06, 0x59, 0x06, *never, 0x00)]
    assert _ask(tester, 0x19, 0x04, 0x12, 0x34, 0x56, 0xFF) == [_frame(0x03, 0x7F, 0x19, 0x31)]   # not its DTC
    assert _ask(tester, 0x19, 0x04, *dtc, 0x03) == [_frame(0x03, 0x7F, 0x19, 0x31)]   # no third record
    assert _ask(tester, 0x19, 0x06, *dtc, 0x02) == [_frame(0x03, 0x7F, 0x19, 0x31)]
    assert _ask(tester, 0x19, 0x04, *dtc) == [_frame(0x03, 0x7F, 0x19, 0x13)]         # no record number
    assert _ask(tester, 0x14, 0xFF, 0xFF, 0xFF) == [_frame(0x01, 0x54)]
    assert _ask(tester, 0x19, 0x06, *dtc, 0xFF) == [_frame(0x06, 0x59, 0x06, *dtc, 0x00)]   # cleared with it


def test_a_dark_bms_answers_nothing(tester):
    tester.host.supply.answer(b"VOLT 0", tester.t_s)
    tester.step()
    assert not tester.fw.powered and _ask(tester, 0x3E, 0x00, tasks=5) == []


def test_the_reference_key_is_the_seed_xor_the_mask_rotated_plus_the_level():
    """Worked by hand: 0x12345678 ^ 0x5A17C0DE = 0x482396A6, rotated left by 7 bits 0x11CB5324, plus level 1."""
    assert reference_security_key(bytes.fromhex("12345678"), 1) == bytes.fromhex("11CB5325")
    assert reference_security_key(bytes.fromhex("12345678"), 3) == bytes.fromhex("11CB5327")


def _seed(answer: list[bytes]) -> bytes:
    assert len(answer) == 1 and answer[0][:3] == bytes([0x06, 0x67, 0x01]), answer
    return answer[0][3:7]


def test_security_access_guards_the_ov_trip_write(tester):
    """SecurityAccess only in the extended session; a key before a seed is out of sequence; the right key unlocks
    and the seed is then zeros. WriteDataByIdentifier of the OV trip (0x4B01, mV): not in the default session,
    securityAccessDenied while locked, taken unlocked when it lowers the trip, requestOutOfRange above the
    calibration; ReadDataByIdentifier reads it back. A session change locks again."""
    factory_mv = round(tester.cal["cell_ov_v"] * 1000)
    assert _ask(tester, 0x22, 0x4B, 0x01) == [_frame(0x05, 0x62, 0x4B, 0x01, *factory_mv.to_bytes(2, "big"))]
    assert _ask(tester, 0x27, 0x01) == [_frame(0x03, 0x7F, 0x27, 0x7F)]                 # not in the default session
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x7F, 0x2E, 0x7F)]
    _ask(tester, 0x10, 0x03)
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x7F, 0x2E, 0x33)]   # securityAccessDenied
    assert _ask(tester, 0x27, 0x02, 1, 2, 3, 4) == [_frame(0x03, 0x7F, 0x27, 0x24)]        # requestSequenceError
    assert _ask(tester, 0x27, 0x05) == [_frame(0x03, 0x7F, 0x27, 0x12)]                    # no such level
    seed = _seed(_ask(tester, 0x27, 0x01))
    assert any(seed)
    assert _ask(tester, 0x27, 0x02, *reference_security_key(seed, 1)) == [_frame(0x02, 0x67, 0x02)]
    assert _seed(_ask(tester, 0x27, 0x01)) == bytes(4), "unlocked: a zero seed"
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x6E, 0x4B, 0x01)]   # 4.100 V
    assert tester.fw.cal["cell_ov_v"] == 4.1
    assert _ask(tester, 0x22, 0x4B, 0x01) == [_frame(0x05, 0x62, 0x4B, 0x01, 0x10, 0x04)]
    above_mv = (factory_mv + 50).to_bytes(2, "big")
    assert _ask(tester, 0x2E, 0x4B, 0x01, *above_mv) == [_frame(0x03, 0x7F, 0x2E, 0x31)]     # never above the cal
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10) == [_frame(0x03, 0x7F, 0x2E, 0x13)]         # one byte short
    assert _ask(tester, 0x2E, 0xF1, 0x89, 0x31) == [_frame(0x03, 0x7F, 0x2E, 0x31)]         # not writable
    _ask(tester, 0x10, 0x03)
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x7F, 0x2E, 0x33)], "locked again"


def test_wrong_keys_lock_out_a_reset_included_and_a_silent_tester_loses_the_session(tester):
    """Two wrong keys invalidKey, the third exceededNumberOfAttempts, then requiredTimeDelayNotExpired for
    SECURITY_DELAY_S, across a power cycle too (the count is in NVM, the delay runs again from the boot); after it
    one more try. Unlocked and silent for S3_SERVER_S, the session is the default one again."""
    _ask(tester, 0x10, 0x03)
    codes = [_ask(tester, 0x27, 0x02, *bytes(4 * [_seed(_ask(tester, 0x27, 0x01))[0] ^ 0xFF]))[0][3]
             for _ in range(3)]
    assert codes == [0x35, 0x35, 0x36]
    assert _ask(tester, 0x27, 0x01) == [_frame(0x03, 0x7F, 0x27, 0x37)]
    tester.host.supply.answer(b"VOLT 0", tester.t_s)
    tester.step()
    tester.host.supply.answer(b"VOLT 13.5", tester.t_s)
    tester.run_until(lambda: tester.fw.powered and tester.fw.state.name == "STANDBY", 2.0, "booted again")
    booted_s = tester.t_s
    _ask(tester, 0x10, 0x03)
    assert _ask(tester, 0x27, 0x01) == [_frame(0x03, 0x7F, 0x27, 0x37)], "a reset does not clear the lockout"
    tester.run_for(SECURITY_DELAY_S - (tester.t_s - booted_s) - 1.0)
    _ask(tester, 0x10, 0x03)   # the silent wait ended the session (S3)
    assert _ask(tester, 0x27, 0x01) == [_frame(0x03, 0x7F, 0x27, 0x37)]
    tester.run_for(1.5)
    _seed(_ask(tester, 0x27, 0x01))
    assert _ask(tester, 0x27, 0x02, *bytes(4)) == [_frame(0x03, 0x7F, 0x27, 0x36)], "one more try, then locked"
    tester.run_for(SECURITY_DELAY_S + 0.1)
    _ask(tester, 0x10, 0x03)
    seed = _seed(_ask(tester, 0x27, 0x01))
    assert _ask(tester, 0x27, 0x02, *reference_security_key(seed, 1)) == [_frame(0x02, 0x67, 0x02)]
    assert tester.fw.nvm["security_attempts"] == 0
    tester.run_for(S3_SERVER_S - 0.1)
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x6E, 0x4B, 0x01)], "a pause short of S3"
    tester.run_for(S3_SERVER_S + 0.05)
    assert _ask(tester, 0x2E, 0x4B, 0x01, 0x10, 0x04) == [_frame(0x03, 0x7F, 0x2E, 0x7F)], "S3 over: default"
