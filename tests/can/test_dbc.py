"""The project's DBCs carry what a BMS protocol needs, and the loader copes with what real files contain:
multiplexing, big-endian signals, 29-bit IDs, CAN FD lengths, cp1252 text and cantools' version quirks."""
from __future__ import annotations

import can
import cantools
import pytest
from .conftest import DBC_FILES

from hil.can.dbc import load_dbc, load_dbcs, mux_groups, round_trip_problems
from hil.can.monitor import Monitor
from hil.errors import ConfigError

# What the reference BMS protocol must carry, by message: (signals, cycle time in ms).
BMS_PROTOCOL = {
    "BMS_Status": ({"BMS_State", "BMS_ContactorPos", "BMS_ContactorNeg", "BMS_ContactorPre", "BMS_FaultBits",
                    "BMS_WarningBits", "BMS_Status_Counter", "BMS_Status_CRC"}, 20),
    "BMS_PackData": ({"BMS_PackVoltage", "BMS_PackCurrent", "BMS_PackData_Counter", "BMS_PackData_CRC"}, 20),
    "BMS_Limits": ({"BMS_DischargeCurrentLimit", "BMS_ChargeCurrentLimit"}, 100),
    "BMS_SOC": ({"BMS_SOC", "BMS_SOH", "BMS_SOC_Counter", "BMS_SOC_CRC"}, 100),
    "BMS_CellStats": ({"BMS_MinCellVoltage", "BMS_MaxCellVoltage", "BMS_MinCellTemp", "BMS_MaxCellTemp"}, 100),
    "BMS_CellVoltages": ({"BMS_CellVoltages_Mux", "BMS_Cell01_Voltage", "BMS_Cell96_Voltage"}, 100),
    "BMS_CellTemps": ({"BMS_CellTemps_Mux", "BMS_Temp01", "BMS_Temp96"}, 1000),
    "BMS_BalancingMask": ({"BMS_BalancingMask_Mux", "BMS_Balancing_Cells01to48", "BMS_Balancing_Cells49to96"}, 1000),
}

# A file in the style real vendors write: 29-bit IDs, Motorola (big-endian) signals, a multiplexer, an FD
# frame, a value table and a comment in cp1252 ("°C").
VENDOR_DBC = """VERSION ""
NS_ :
BS_:
BU_: PACK HOST
BO_ 2566869221 PACK_Cells: 8 PACK
 SG_ Mux M : 7|8@0+ (1,0) [0|3] "" HOST
 SG_ Cell_A m0 : 15|13@0+ (1,0) [0|8191] "mV" HOST
 SG_ Cell_B m0 : 18|13@0+ (1,0) [0|8191] "mV" HOST
 SG_ Cell_C m1 : 15|13@0+ (1,0) [0|8191] "mV" HOST
 SG_ Temp_C m1 : 39|8@0- (0.5,0) [-64|63.5] "\xb0C" HOST
BO_ 2566869222 PACK_Info: 64 PACK
 SG_ Mode : 0|3@1+ (1,0) [0|7] "" HOST
 SG_ Energy : 496|16@1+ (0.1,0) [0|6553.5] "kWh" HOST
CM_ SG_ 2566869221 Temp_C "Cell temperature in \xb0C";
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 65535;
BA_DEF_ BO_ "VFrameFormat" ENUM "StandardCAN","ExtendedCAN","reserved","J1939PG","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","reserved","StandardCAN_FD","ExtendedCAN_FD";
BA_DEF_DEF_ "GenMsgCycleTime" 0;
BA_DEF_DEF_ "VFrameFormat" "StandardCAN";
BA_ "GenMsgCycleTime" BO_ 2566869221 50;
BA_ "VFrameFormat" BO_ 2566869222 15;
VAL_ 2566869222 Mode 0 "Off" 1 "Drive" 2 "Charge" ;
VAL_ 2566869222 Ghost 0 "NotThere" ;
"""


@pytest.fixture
def vendor_dbc(tmp_path):
    path = tmp_path / "vendor.dbc"
    path.write_bytes(VENDOR_DBC.encode("cp1252"))
    return path


@pytest.mark.parametrize("name", BMS_PROTOCOL)
def test_the_bms_dbc_carries_the_protocol(db, name):
    signals, cycle_ms = BMS_PROTOCOL[name]
    message = db.get_message_by_name(name)
    assert signals <= {s.name for s in message.signals}
    assert message.cycle_time == cycle_ms


def test_the_project_dbcs_round_trip_every_message_and_mux_group(db):
    assert load_dbcs(DBC_FILES) is not db  # a fresh load per rig
    for message in db.messages:
        assert round_trip_problems(message) == [], message.name
    assert len(mux_groups(db.get_message_by_name("BMS_CellVoltages"))) == 24


def test_a_vendor_file_with_29_bit_big_endian_multiplexed_and_fd_messages(db, vendor_dbc):
    vendor = load_dbc(vendor_dbc)  # its VAL_ for a signal that does not exist is dropped, as 45.0 did
    cells = vendor.get_message_by_name("PACK_Cells")
    assert cells.is_extended_frame and cells.frame_id == 0x18FF50E5 and cells.cycle_time == 50
    assert vendor.get_message_by_name("PACK_Info").is_fd and vendor.get_message_by_name("PACK_Info").length == 64
    assert vendor.get_message_by_name("PACK_Cells").get_signal_by_name("Temp_C").unit == "°C"
    for message in vendor.messages:
        assert round_trip_problems(message) == []
    monitor = Monitor(vendor, lambda: 0.0)
    data = cells.encode({"Mux": 1, "Cell_C": 3712, "Temp_C": -12.5})
    monitor.on_message_received(can.Message(arbitration_id=0x18FF50E5, data=data, is_extended_id=True))
    info = vendor.get_message_by_name("PACK_Info")
    monitor.on_message_received(can.Message(arbitration_id=info.frame_id, is_extended_id=True, is_fd=True,
                                            data=info.encode({"Mode": 2, "Energy": 71.3})))
    assert monitor.snapshot(["Cell_C", "Temp_C", "Mode", "Energy"]) == {
        "Cell_C": 3712, "Temp_C": -12.5, "Mode": 2, "Energy": pytest.approx(71.3)}
    assert data[0] == 1 and data[1] == 3712 >> 5  # Motorola: the mux in byte 0, Cell_C's MSBs in byte 1


def test_cantools_45_1_refuses_unused_val_entries_that_we_tolerate(vendor_dbc):
    if tuple(int(part) for part in cantools.__version__.split(".")[:2]) < (45, 1):
        pytest.skip("only cantools >= 45.1 refuses unused VAL_ entries")
    with pytest.raises(Exception, match="unused VAL_"):
        cantools.database.load_file(str(vendor_dbc), strict=False)
    assert len(load_dbc(vendor_dbc).messages) == 2


def test_merging_refuses_a_second_message_with_the_same_id(tmp_path):
    clash = tmp_path / "clash.dbc"
    clash.write_text('VERSION ""\nBU_: X\nBO_ 256 Other_Status: 8 X\n SG_ A : 0|8@1+ (1,0) [0|255] "" X\n')
    with pytest.raises(ConfigError, match=r"clash\.dbc: message 'Other_Status' \(ID 0x100\) collides with "
                                          r"'BMS_Status' \(ID 0x100\)"):
        load_dbcs([DBC_FILES[0], clash])


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nothere\.dbc: DBC file not found"):
        load_dbc(tmp_path / "nothere.dbc")


def test_a_layout_that_does_not_round_trip_is_reported(tmp_path):
    overlap = tmp_path / "overlap.dbc"
    overlap.write_text('VERSION ""\nBU_: X\nBO_ 16 Bad: 8 X\n SG_ A : 0|8@1+ (1,0) [0|255] "" X\n'
                       ' SG_ B : 4|8@1+ (1,0) [0|255] "" X\n')
    problems = round_trip_problems(load_dbc(overlap).messages[0])
    assert problems and problems[0].startswith("Bad (0x10): ")
