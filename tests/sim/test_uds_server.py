"""The reference BMS's diagnostic server, byte by byte on its bus (hil/sim/uds_server.py): ISO-TP framing as
ISO 15765-2 lays it out, written here by hand rather than by can-isotp (which the server uses), and UDS answers
as ISO 14229-1 gives them, the DTC memory behind them."""
import pytest

from hil.protocol import DTC_LATCHED_STATUS, DTC_TEST_FAILED, DTCS, SNAPSHOT_DIDS, ScaledDid
from hil.sim.bms_firmware import VERSION_TEXT

PAD = 0xCC


def _frame(*data: int) -> bytes:
    return bytes(data) + bytes([PAD] * (8 - len(data)))


@pytest.fixture
def tester(make_boards):
    """Boards with the firmware in STANDBY, and every frame of UDS_BmsResponse kept as it comes."""
    boards = make_boards()
    boards.answers = []
    boards.monitor.tap("UDS_BmsResponse", lambda msg: boards.answers.append(bytes(msg.data)))
    boards.standby()
    return boards


def _ask(boards, *request: int, tasks: int = 2) -> list[bytes]:
    """A single-frame request; the frames that came within `tasks` main tasks."""
    boards.answers.clear()
    boards.sender.send_frame("UDS_BmsRequest", _frame(len(request), *request))
    boards.step(tasks)
    return list(boards.answers)


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


def test_a_long_answer_waits_for_the_testers_flow_control(tester):
    """The version (3 + 5 bytes) does not fit a single frame: a first frame, then, only after the tester's flow
    control, the consecutive frame."""
    version = VERSION_TEXT.encode()
    payload = bytes([0x62, 0xF1, 0x89]) + version
    first = _ask(tester, 0x22, 0xF1, 0x89, tasks=5)
    assert first == [bytes([0x10, len(payload)]) + payload[:6]], "a first frame, and nothing more until the FC"
    tester.answers.clear()
    tester.sender.send_frame("UDS_BmsRequest", _frame(0x30, 0x00, 0x00))   # clear to send, all of it, no gap
    tester.step(2)
    assert tester.answers == [_frame(0x21, *payload[6:])]


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
    tester.answers.clear()
    tester.sender.send_frame("UDS_BmsRequest", _frame(0x30, 0x00, 0x00))
    tester.step(2)
    assert tester.answers == [_frame(0x21, *records[3:])]
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
    boards.answers.clear()
    boards.sender.send_frame("UDS_BmsRequest", _frame(0x30, 0x00, 0x00))
    boards.step(3)
    for number, frame in enumerate(boards.answers, start=1):
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
