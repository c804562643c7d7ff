"""AUTOSAR E2E profiles named by a DUT map or a cell-emulator map (`[e2e]`, hil/can/e2e.py): the harness seals
its own frames and checks the device's with the device's profile and data ID, so a production BMS (or an
emulator) that drops frames failing E2E can be driven, and one whose frames fail it is caught.

The CRCs are checked against the AUTOSAR definitions, computed here by hand: profile 1 chains
Crc_CalculateCRC8 over the data ID's two bytes and the payload, each call after the first starting from the
last result XORed back, which leaves CRC-8/SAE-J1850 from 0x00 without a final XOR; profile 5 is
CRC-16/CCITT-FALSE over the payload, then the data ID, low byte first.
"""
from __future__ import annotations

import can
import pytest

from hil.bench import Bench
from hil.can.dbc import load_dbcs
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.cli import main
from hil.clock import VirtualClock
from hil.devices.ce_map import load_ce_map
from hil.devices.dut_map import load_dut_map
from hil.errors import ConfigError
from hil.loop import Loop
from hil.protocol import BmsState
from hil.rig import PROJECT_ROOT, load_rig
from tests.can.conftest import fresh_channel

# A BMS of another maker, its frames protected as AUTOSAR has it: P01 (CRC in byte 0, counter in byte 1),
# P05 (CRC-16 in bytes 0-1, counter in byte 2), P02 and P11; the host's request with P01.
ECU_DBC = """VERSION ""

NS_ :
\tBA_DEF_
\tBA_
\tVAL_
\tBA_DEF_DEF_

BS_:

BU_: ECU HOST

BO_ 1281 ECU_State: 8 ECU
 SG_ ECU_State_CRC : 0|8@1+ (1,0) [0|255] "" HOST
 SG_ ECU_State_Counter : 8|4@1+ (1,0) [0|15] "" HOST
 SG_ State : 16|4@1+ (1,0) [0|15] "" HOST
 SG_ Contactors : 20|1@1+ (1,0) [0|1] "" HOST
 SG_ Current : 24|16@1- (0.1,0) [-3276.8|3276.7] "A" HOST

BO_ 1282 ECU_Limits: 8 ECU
 SG_ ECU_Limits_CRC : 0|16@1+ (1,0) [0|65535] "" HOST
 SG_ ECU_Limits_Counter : 16|8@1+ (1,0) [0|255] "" HOST
 SG_ DischargeLimit : 24|16@1+ (0.1,0) [0|6553.5] "A" HOST

BO_ 1283 ECU_Soc: 8 ECU
 SG_ ECU_Soc_CRC : 0|8@1+ (1,0) [0|255] "" HOST
 SG_ ECU_Soc_Counter : 8|4@1+ (1,0) [0|15] "" HOST
 SG_ Soc : 16|8@1+ (0.5,0) [0|100] "%" HOST

BO_ 1284 ECU_Temps: 8 ECU
 SG_ Checksum : 0|8@1+ (1,0) [0|255] "" HOST
 SG_ Alive : 8|4@1+ (1,0) [0|15] "" HOST
 SG_ MaxTemp : 16|8@1- (1,0) [-128|127] "degC" HOST

BO_ 1296 HOST_Request: 8 HOST
 SG_ HOST_Request_CRC : 0|8@1+ (1,0) [0|255] "" ECU
 SG_ HOST_Request_Counter : 8|4@1+ (1,0) [0|15] "" ECU
 SG_ Mode : 16|2@1+ (1,0) [0|3] "" ECU

BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_ "GenMsgCycleTime" BO_ 1281 10;
BA_ "GenMsgCycleTime" BO_ 1282 10;
BA_ "GenMsgCycleTime" BO_ 1283 10;
BA_ "GenMsgCycleTime" BO_ 1284 10;
BA_ "GenMsgCycleTime" BO_ 1296 10;

VAL_ 1281 State 0 "OFF" 1 "STANDBY" 2 "RUN" 3 "ERROR" ;
VAL_ 1296 Mode 0 "STANDBY" 1 "RUN" ;
"""

P02_IDS = list(range(0x40, 0x50))
ECU_MAP = f"""
[read]
state = "ECU_State.State"
contactors = ["ECU_State.Contactors"]
pack_current_a = "ECU_State.Current"

[states]
STANDBY = ["STANDBY"]
NORMAL = ["RUN"]
FAULT = ["ERROR"]

[request]
message = "HOST_Request"
mode = "Mode"
[request.modes]
STANDBY = "STANDBY"
DISCHARGE = "RUN"

[e2e]
ECU_State = {{ profile = "P01", data_id = 0x0301 }}
ECU_Limits = {{ profile = "P05", data_id = 0x0302 }}
ECU_Soc = {{ profile = "P02", data_id_list = {P02_IDS} }}
ECU_Temps = {{ profile = "P11", data_id = 0x0A04, data_id_mode = "nibble", crc = "Checksum", counter = "Alive" }}
HOST_Request = {{ profile = "P01", data_id = 0x0310 }}
"""
ECU_MESSAGES = ("ECU_State", "ECU_Limits", "ECU_Soc", "ECU_Temps")


@pytest.fixture(scope="module")
def ecu_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ecu") / "ecu.dbc"
    path.write_text(ECU_DBC)
    return load_dbcs([path])


def _map(tmp_path, db, text: str = ECU_MAP):
    path = tmp_path / "ecu-map.toml"
    path.write_text(text)
    return load_dut_map(path, db)


def _crc8(data: bytes, crc: int) -> int:
    """CRC-8 with SAE J1850's polynomial (0x1D) from `crc`, no final XOR."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16_ccitt_false(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def test_p01_seals_crc8_over_the_data_id_and_the_payload(tmp_path, ecu_db):
    protection = _map(tmp_path, ecu_db).protections["ECU_State"]
    frame = bytearray(ecu_db.get_message_by_name("ECU_State").encode(
        {"ECU_State_CRC": 0, "ECU_State_Counter": 5, "State": 2, "Contactors": 1, "Current": -12.5}))
    protection.seal(frame)
    assert frame[0] == _crc8(bytes([0x01, 0x03]) + bytes(frame[1:]), 0x00)   # data ID 0x0301, low byte first
    assert frame[1] & 0x0F == 5 and protection.ok(bytes(frame))
    frame[4] ^= 0x01
    assert not protection.ok(bytes(frame)), "a flipped bit of the current passed P01"


def test_p05_seals_crc16_over_the_payload_and_the_data_id(tmp_path, ecu_db):
    protection = _map(tmp_path, ecu_db).protections["ECU_Limits"]
    frame = bytearray(ecu_db.get_message_by_name("ECU_Limits").encode(
        {"ECU_Limits_CRC": 0, "ECU_Limits_Counter": 200, "DischargeLimit": 150.0}))
    protection.seal(frame)
    assert frame[0] | frame[1] << 8 == _crc16_ccitt_false(bytes(frame[2:]) + bytes([0x02, 0x03]))
    assert protection.ok(bytes(frame)) and protection.counter_modulo == 256


class _Link:
    """The BMS's sender and the harness's Monitor on one python-can virtual channel, ticked by a 1 ms loop
    on a virtual clock."""

    def __init__(self, db, sent_with: dict, checked_with: dict):
        channel = fresh_channel()
        self.device_bus = can.Bus(interface="virtual", channel=channel)
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.clock = VirtualClock()
        self.device = PeriodicSender(self.device_bus, db, protections=sent_with)
        self.monitor = Monitor(db, self.clock.now_s, checked_with)
        self.frames: list[can.Message] = []
        self.loop = Loop(self.clock, 0.001, self._tick)

    def _tick(self, t_s: float) -> None:
        self.device.tick(t_s)
        while (msg := self.bus.recv(timeout=0)) is not None:
            self.monitor.on_message_received(msg)
            self.frames.append(msg)

    def close(self) -> None:
        self.bus.shutdown()
        self.device_bus.shutdown()


def _run(db, sent_with: dict, checked_with: dict, cycles: int = 40) -> _Link:
    link = _Link(db, sent_with, checked_with)
    try:
        for name in ECU_MESSAGES:
            link.device.add(name)
        link.loop.run_for(cycles * 0.010 - 0.0005)
    finally:
        link.close()
    return link


def test_frames_sealed_with_the_maps_profiles_pass_its_checks_and_count_as_each_profile_counts(tmp_path, ecu_db):
    protections = _map(tmp_path, ecu_db).protections
    link = _run(ecu_db, protections, protections)
    for name in ECU_MESSAGES:
        stats = link.monitor.stats[name]
        assert (stats.count, stats.bad_crc, stats.bad_counter) == (40, 0, 0), name
    counters = {}
    for name in ECU_MESSAGES:
        message = ecu_db.get_message_by_name(name)
        counters[name] = [message.decode(msg.data)[protections[name].counter_signal] for msg in link.frames
                          if msg.arbitration_id == message.frame_id]
    # 4-bit counters of P01, P02 and P11 run 0..14 and wrap (15 is invalid); P05's 8-bit one runs on.
    assert counters["ECU_State"][:17] == [*range(15), 0, 1] and 15 not in counters["ECU_Temps"]
    assert counters["ECU_Limits"] == list(range(40))
    assert all(msg.data[1] >> 4 == 0x0A for msg in link.frames if msg.arbitration_id == 0x504), \
        "P11 in nibble mode sends the data ID's high nibble (0x0A04) in the counter's byte"


def test_a_bms_sealing_with_another_data_id_fails_every_frame(tmp_path, ecu_db):
    sent = _map(tmp_path, ecu_db).protections
    checked = _map(tmp_path, ecu_db, ECU_MAP.replace("data_id = 0x0301", "data_id = 0x0300")).protections
    link = _run(ecu_db, sent, checked)
    assert link.monitor.stats["ECU_State"].bad_crc == 40 and link.monitor.stats["ECU_Limits"].bad_crc == 0


def test_p02_takes_its_data_id_from_the_list_by_the_counter(tmp_path, ecu_db):
    """The receiver's list differs in one place (counter value 3): exactly the frames sent with counter 3 fail."""
    sent = _map(tmp_path, ecu_db).protections
    wrong = P02_IDS.copy()
    wrong[3] ^= 0xFF
    checked = _map(tmp_path, ecu_db, ECU_MAP.replace(str(P02_IDS), str(wrong))).protections
    link = _run(ecu_db, sent, checked)
    soc_id = ecu_db.get_message_by_name("ECU_Soc").frame_id
    with_counter_3 = sum(msg.data[1] & 0x0F == 3 for msg in link.frames if msg.arbitration_id == soc_id)
    assert with_counter_3 == 3 and link.monitor.stats["ECU_Soc"].bad_crc == with_counter_3


def test_the_reference_scheme_is_kept_for_messages_the_map_does_not_name(tmp_path, ecu_db):
    """Without `[e2e]` the ECU's `<Message>_CRC` is taken for the reference CRC in byte 7: every P01 frame fails
    it, which is how a BMS whose map forgot its profile shows (the communication tests' CRC check fails)."""
    sent = _map(tmp_path, ecu_db).protections
    link = _run(ecu_db, sent, {})
    assert link.monitor.stats["ECU_State"].bad_crc >= 39   # a frame may pass the wrong check by chance (1 in 256)


def test_the_host_requests_go_out_sealed_with_the_maps_profile(tmp_path, ecu_db):
    dut_map = _map(tmp_path, ecu_db)
    sent = []
    sender = PeriodicSender(type("Bus", (), {"send": lambda self, msg: sent.append(msg)})(), ecu_db,
                            protections=dut_map.protections)
    sender.add(dut_map.request_message, {"Mode": 1})
    for k in range(20):
        sender.tick(k * 0.010)
    assert len(sent) == 20 and all(dut_map.protections["HOST_Request"].ok(bytes(msg.data)) for msg in sent)
    assert [msg.data[1] & 0x0F for msg in sent] == [*range(15), *range(5)]
    sender.send_once("HOST_Request", {"Mode": 0, "HOST_Request_Counter": 7})   # a request outside the schedule
    assert sent[-1].data[1] == 7 and dut_map.protections["HOST_Request"].ok(bytes(sent[-1].data))
    sender.inject("HOST_Request", "bad_crc")        # the suite's corruption test: the profile's own CRC fails
    sender.tick(0.200)
    assert not dut_map.protections["HOST_Request"].ok(bytes(sent[-1].data))
    sender.inject("HOST_Request", "frozen_counter")   # and its repetition test: P02's counter repeats, CRC sound
    for k in (21, 22):
        sender.tick(k * 0.010)
    assert [msg.data[1] & 0x0F for msg in sent[-3:]] == [5, 5, 5] and dut_map.protections["HOST_Request"].ok(
        bytes(sent[-1].data))


BAD_E2E = [
    # (the [e2e] entry, what the error must say)
    ('ECU_State = { profile = "P1", data_id = 1 }',
     r"\[e2e\] ECU_State: profile = 'P1', expected one of P01, P02, P05, P11 \(AUTOSAR E2E profiles\) "
     r"\(did you mean 'P11' or 'P01'\?\)"),
    ('ECU_State = { profile = "P01" }',
     r"\[e2e\] ECU_State: data_id = None, expected P01's 16-bit data ID \(0..0xFFFF\)"),
    ('ECU_State = { profile = "P01", data_id = 70000 }', r"\[e2e\] ECU_State: data_id = 70000, expected P01's"),
    ('ECU_State = { profile = "P01", dataid = 1 }',
     r"\[e2e\] ECU_State: unknown key 'dataid' \(did you mean 'data_id' or"),
    ('ECU_State = { profile = "P01", data_id = 1, data_id_mode = "high" }',
     r"\[e2e\] ECU_State: data_id_mode = 'high', expected one of both, alt, low, nibble for P01"),
    ('ECU_Limits = { profile = "P05", data_id = 1, data_id_mode = "nibble" }',
     r"\[e2e\] ECU_Limits: data_id_mode = 'nibble', expected one of both for P05"),
    ('ECU_Soc = { profile = "P02", data_id_list = [1, 2, 3] }',
     r"\[e2e\] ECU_Soc: data_id_list = \[1, 2, 3\], expected P02's 16 data IDs, one per counter value"),
    ('ECU_Soc = { profile = "P02", data_id = 1, data_id_list = ' + str(P02_IDS) + " }",
     r"\[e2e\] ECU_Soc: data_id is not a key of P02"),
    ('ECU_Temps = { profile = "P11", data_id = 1 }',
     r"\[e2e\] ECU_Temps crc = 'ECU_Temps_CRC', expected a signal of message 'ECU_Temps'"),
    ('ECU_Stat = { profile = "P01", data_id = 1 }',
     r"\[e2e\]: message 'ECU_Stat' is not in the rig's DBC files \(did you mean 'ECU_State'"),
    ('ECU_State = "P01"', r"\[e2e\] ECU_State = 'P01', expected a table \{ profile = \"P01\", data_id = 0x123 \}"),
    ('ECU_Limits = { profile = "P01", data_id = 1 }',
     r"\[e2e\] ECU_Limits: P01 does not fit message 'ECU_Limits': expected an 8-bit CRC on a byte boundary; "
     r"'ECU_Limits_CRC' is 16 bits at start bit 0"),
    ('ECU_State = { profile = "P05", data_id = 1 }',
     r"\[e2e\] ECU_State: P05 does not fit message 'ECU_State': expected a 16-bit CRC, low byte first"),
]


@pytest.mark.parametrize(("entry", "error"), BAD_E2E, ids=[error[:40] for _, error in BAD_E2E])
def test_a_bad_e2e_entry_is_refused_naming_the_file_and_key(tmp_path, ecu_db, entry, error):
    with pytest.raises(ConfigError, match=f"ecu-map.toml: {error}"):
        _map(tmp_path, ecu_db, ECU_MAP.split("[e2e]")[0] + "[e2e]\n" + entry + "\n")


def test_the_reference_dbcs_layout_does_not_fit_p01_and_the_error_says_where_it_expected_the_counter(tmp_path):
    """The reference BMS keeps its counter before its CRC (bytes 6 and 7): P01 puts it after."""
    reference = (PROJECT_ROOT / "fixtures" / "duts" / "reference-bms.toml").read_text()
    path = tmp_path / "bad-map.toml"
    path.write_text(reference + '\n[e2e]\nBMS_Status = { profile = "P01", data_id = 0x100 }\n')
    db = load_dbcs([PROJECT_ROOT / "dbc" / name for name in ("bms.dbc", "vcu.dbc", "cell_emulator.dbc")])
    with pytest.raises(ConfigError, match=r"bad-map.toml: \[e2e\] BMS_Status: P01 does not fit message 'BMS_Status': "
                                          r"expected a 4-bit counter in the low nibble of the byte after the CRC "
                                          r"\(byte 8\); 'BMS_Status_Counter' is 4 bits at start bit 48"):
        load_dut_map(path, db)


# A cell emulator of another maker, 16 channels: its setpoint, command and status frames protected with P01.
LAB_CE_DBC = """VERSION ""

NS_ :
\tBA_DEF_
\tBA_
\tBA_DEF_DEF_

BS_:

BU_: LAB HOST

BO_ 1536 LAB_Cells: 8 HOST
 SG_ LAB_Cells_CRC : 0|8@1+ (1,0) [0|255] "" LAB
 SG_ LAB_Cells_Counter : 8|4@1+ (1,0) [0|15] "" LAB
 SG_ LAB_Cells_Mux M : 16|8@1+ (1,0) [0|7] "" LAB
""" + "".join(f' SG_ LAB_Cell{cell + 1:02d} m{cell // 2} : {24 + 16 * (cell % 2)}|16@1+ (0.001,0) [0|6.5] "V" LAB\n'
              for cell in range(16)) + """
BO_ 1552 LAB_Control: 8 HOST
 SG_ LAB_Control_CRC : 0|8@1+ (1,0) [0|255] "" LAB
 SG_ LAB_Control_Counter : 8|4@1+ (1,0) [0|15] "" LAB
 SG_ Enable : 16|1@1+ (1,0) [0|1] "" LAB

BO_ 1553 LAB_Status: 8 LAB
 SG_ LAB_Status_CRC : 0|8@1+ (1,0) [0|255] "" HOST
 SG_ LAB_Status_Counter : 8|4@1+ (1,0) [0|15] "" HOST
 SG_ OutputsOn : 16|1@1+ (1,0) [0|1] "" HOST

BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_ "GenMsgCycleTime" BO_ 1552 100;
BA_ "GenMsgCycleTime" BO_ 1553 100;
"""
LAB_CE_MAP = """
[cells]
series = [{ signals = "LAB_Cells.LAB_Cell{index:02d}", first = 1 }]

[outputs]
signal = "LAB_Control.Enable"
readback = "LAB_Status.OutputsOn"

[e2e]
LAB_Cells = { profile = "P01", data_id = 0x0600 }
LAB_Control = { profile = "P01", data_id = 0x0610 }
LAB_Status = { profile = "P01", data_id = 0x0611 }
"""


def test_a_bench_seals_and_checks_with_the_profiles_of_both_maps(tmp_path, ecu_db):
    """The whole harness, on the wire: a rig names the BMS's and the cell emulator's DBCs and maps, and stand-ins
    for both on the same (virtual) bus send their frames sealed with P01 and read what the bench sends."""
    dbc, ce_dbc, ce_map = tmp_path / "ecu.dbc", tmp_path / "lab-ce.dbc", tmp_path / "lab-ce.toml"
    dbc.write_text(ECU_DBC)
    ce_dbc.write_text(LAB_CE_DBC)
    ce_map.write_text(LAB_CE_MAP)
    dut_map, channel = _map(tmp_path, ecu_db), fresh_channel()
    rig = load_rig(PROJECT_ROOT / "rigs" / "sim.toml", [
        f'can.main.dbc=["{dbc}", "{ce_dbc}"]', f'can.main.channel="{channel}"', "rig.capabilities=[]",
        'dut.kind="external"', f'dut.map="{dut_map.path}"', 'power_supply.kind="none"',
        'cell_emulator.kind="can"', f'cell_emulator.map="{ce_map}"'])
    with Bench(rig) as bench, can.Bus(interface="virtual", channel=channel) as stand_in:
        db = bench.db
        ce_protections = load_ce_map(ce_map, db, 16).protections
        bms = PeriodicSender(stand_in, db, protections={**dut_map.protections, **ce_protections})
        bms.add("ECU_State", {"State": 1, "Contactors": 0, "Current": 0.0})
        bms.add("LAB_Status", {"OutputsOn": 0})
        for k in range(30):
            bms.tick(k * 0.010)
            bench.loop.run_for(0.010)
        for name, frames in (("ECU_State", 30), ("LAB_Status", 3)):
            stats = bench.monitor.stats[name]
            assert (stats.count, stats.bad_crc, stats.bad_counter) == (frames, 0, 0), name
        assert bench.bms.state == BmsState.STANDBY
        sent = list(iter(lambda: stand_in.recv(timeout=0), None))
    checks = {name: ({**dut_map.protections, **ce_protections})[name] for name in ("HOST_Request", "LAB_Cells",
                                                                                  "LAB_Control")}
    for name, protection in checks.items():
        frames = [msg for msg in sent if msg.arbitration_id == db.get_message_by_name(name).frame_id]
        assert len(frames) >= 3 and all(protection.ok(bytes(msg.data)) for msg in frames), name
        counters = [msg.data[1] & 0x0F for msg in frames]
        assert counters == [k % 15 for k in range(counters[0], counters[0] + len(counters))], (name, counters)
    cells = [msg for msg in sent if msg.arbitration_id == 0x600]
    assert {msg.data[2] for msg in cells} == set(range(8)), "every multiplexed setpoint frame went out, sealed"


def test_hil_dbc_map_lists_the_protected_messages_of_either_map(tmp_path, capsys):
    dbc, path, ce_dbc, ce_path = (tmp_path / name for name in ("ecu.dbc", "ecu-map.toml", "lab.dbc", "lab.toml"))
    for file, text in ((dbc, ECU_DBC), (path, ECU_MAP), (ce_dbc, LAB_CE_DBC), (ce_path, LAB_CE_MAP)):
        file.write_text(text)
    assert main(["dbc", "map", str(path), "--dbc", str(dbc), "--channels", "16"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        "; E2E: ECU_State P01, ECU_Limits P05, ECU_Soc P02, ECU_Temps P11, HOST_Request P01")
    assert main(["dbc", "map", str(ce_path), "--dbc", str(ce_dbc), "--channels", "16"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("; E2E: LAB_Cells P01, LAB_Control P01, LAB_Status P01")
    ce_path.write_text(LAB_CE_MAP.replace('LAB_Cells = { profile = "P01"', 'LAB_Cells = { profile = "P1"'))
    assert main(["dbc", "map", str(ce_path), "--dbc", str(ce_dbc), "--channels", "16"]) == 1
    assert "lab.toml: [e2e] LAB_Cells: profile = 'P1', expected one of P01" in capsys.readouterr().err
