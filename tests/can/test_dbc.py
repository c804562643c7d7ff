"""The project's DBCs carry what a BMS protocol needs, and the loader copes with what real files contain:
multiplexing, big-endian signals, 29-bit IDs, CAN FD lengths, cp1252 text and cantools' version quirks."""
from __future__ import annotations

import random

import can
import cantools
import numpy as np
import pytest
from .conftest import DBC_FILES, realworld

from hil.can.dbc import _encoder, _raw_range, encode, load_dbc, load_dbcs, mux_groups, round_trip_problems, signal_defaults
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
    "BMS_Insulation": ({"BMS_InsulationResistance"}, 1000),
    "BMS_Diagnosis": ({"BMS_HighResistanceBlock", "BMS_BlockResistanceRatio"}, 1000),
    "BMS_Version": ({"BMS_SwMajor", "BMS_SwMinor", "BMS_SwPatch", "BMS_SwBuild"}, 1000),
}

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


# encode: byte-identical to cantools ----------------------------------------------------------------------
def _cantools(message, signals: dict, defaults: dict) -> bytes | type:
    """What cantools makes of `defaults | signals`: the bytes, or the type of the exception it raises."""
    try:
        return message.encode({**defaults, **signals}, strict=False)
    except Exception as exc:  # noqa: BLE001 - the exception's type is what encode must reproduce
        return type(exc)


def _ours(message, signals: dict, defaults: dict | None, fast_only: bool = False) -> bytes | type:
    """encode's bytes (or exception type); with `fast_only`, its fast path's, without handing over to cantools."""
    try:
        return _encoder(message).encode(signals, defaults) if fast_only else encode(message, signals, defaults)
    except Exception as exc:  # noqa: BLE001
        return type(exc)


def _value_sets(message, rng: random.Random, per_group: int) -> list[dict]:
    """Per multiplexer group: every signal at its raw minimum, at its raw maximum, and `per_group` random
    raw values, given as physical values (raw * scale + offset), as callers give them."""
    by_name = {s.name: s for s in message.signals}
    sets = []
    for group in mux_groups(message):
        for pick in ["low", "high"] + ["random"] * per_group:
            values = {}
            for name, mux in group.items():
                signal = by_name[name]
                if mux is not None:
                    values[name] = mux
                elif signal.is_float:
                    values[name] = {"low": -1.5, "high": 1e3}.get(pick, rng.uniform(-1e3, 1e3))
                else:
                    low, high = _raw_range(signal)
                    raw = {"low": low, "high": high}.get(pick, rng.randint(low, high))
                    values[name] = raw * signal.scale + signal.offset
            sets.append(values)
    return sets


def _mismatches(db, per_group: int = 6, fast_only: bool = False) -> list[str]:
    rng = random.Random(1)
    wrong = []
    for message in db.messages:
        defaults = signal_defaults(message)
        for values in _value_sets(message, rng, per_group):
            partial = dict(list(values.items())[::2])  # the rest from the defaults, as the senders do
            for signals in (values, partial):
                expected = _cantools(message, signals, defaults)
                got = _ours(message, signals, defaults, fast_only)
                if got != expected:
                    wrong.append(f"{message.name} {signals}: cantools {expected!r}, encode {got!r}")
    return wrong


def test_encode_is_byte_identical_to_cantools_for_every_message_of_the_project_dbcs(db):
    assert _mismatches(db) == []
    # ... and numbers in range are the fast path's own work, never handed over to cantools
    assert _mismatches(db, fast_only=True) == []


def test_encode_is_byte_identical_to_cantools_for_a_vendor_file(vendor_dbc):
    """29-bit IDs, Motorola signals, a multiplexer with a signed Motorola signal in a group, a 64-byte FD frame."""
    assert _mismatches(load_dbc(vendor_dbc), per_group=50) == []


@pytest.mark.parametrize("name", ["foxbms2_foxbms.dbc", "opendbc_tesla_model3_vehicle.dbc"])
def test_encode_is_byte_identical_to_cantools_for_real_files(name):
    assert _mismatches(load_dbc(realworld(name)), per_group=2) == []


def test_encode_matches_cantools_where_it_hands_over_to_it(db, tmp_path):
    """Value-table names, unknown multiplexer values, out-of-range and non-number values, overlapping
    signals: each gives cantools' bytes, or its exception."""
    status = db.get_message_by_name("BMS_Status")
    cells = db.get_message_by_name("BMS_CellVoltages")
    checks = [(status, {"BMS_State": 3, "BMS_FaultBits": 1 << 40}),   # out of range: bitstruct refuses
              (status, {"BMS_State": "NORMAL"} if status.get_signal_by_name("BMS_State").choices else {}),
              (status, {"BMS_State": True, "BMS_ContactorPos": np.float64(1.0)}),
              (status, {"BMS_State": np.int64(2)}),                      # not an int to cantools either
              (status, {"BMS_State": None}),
              (cells, {"BMS_CellVoltages_Mux": 99}),                     # no such group
              (cells, {"BMS_CellVoltages_Mux": 2.0, "BMS_Cell09_Voltage": 3.7}),
              (cells, {"BMS_CellVoltages_Mux": float("nan")}),
              (cells, {"BMS_Cell01_Voltage": -1.0})]
    for message, signals in checks:
        defaults = signal_defaults(message)
        assert _ours(message, signals, defaults) == _cantools(message, signals, defaults), (message.name, signals)
    overlap = tmp_path / "overlap.dbc"
    overlap.write_text('VERSION ""\nBU_: X\nBO_ 16 Bad: 8 X\n SG_ M M : 0|4@1+ (1,0) [0|15] "" X\n'
                       ' SG_ A m0 : 2|8@1+ (1,0) [0|255] "" X\n SG_ B : 8|8@1- (0.5,-3) [0|255] "" X\n')
    bad = load_dbc(overlap).messages[0]
    for values in ({"M": 0, "A": 255, "B": -60.5}, {"M": 0, "A": 0x5A, "B": 10}, {"M": 1, "A": 1, "B": 1}):
        assert _ours(bad, values, signal_defaults(bad)) == _cantools(bad, values, signal_defaults(bad)), values


def test_encode_without_defaults_fills_every_signal_in(db):
    limits = db.get_message_by_name("BMS_Limits")
    assert encode(limits, {"BMS_ChargeCurrentLimit": 5.0}) == limits.encode(
        {**signal_defaults(limits), "BMS_ChargeCurrentLimit": 5.0}, strict=False)
