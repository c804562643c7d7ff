"""What cantools loads without a word but a bench cannot use is refused naming the file and line: a file cut
short, two messages with one ID or name in one file, and the minor faults (a frame over 64 bytes, scale 0,
two signals with one name, `m<n>` signals without an `M` multiplexer). The project's and the real-world files
still load (tests/can/test_realworld_dbc.py loads every real-world one)."""
from __future__ import annotations

import re

import pytest

from .conftest import DBC_FILES, REALWORLD_FILES, realworld

from hil.can.dbc import load_dbc, load_dbcs, message_lines
from hil.cli import main
from hil.errors import ConfigError

HEADER = 'VERSION ""\nNS_ :\nBS_:\nBU_: A B\n'  # 4 lines: the first BO_ is line 5
STATUS = 'BO_ 256 Status: 8 A\n SG_ State : 0|8@1+ (1,0) [0|255] "" B\n'
BMS = DBC_FILES[0].read_bytes()


def _write(tmp_path, body: str | bytes, name: str = "bad.dbc"):
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else (HEADER + body).encode())
    return path


@pytest.mark.parametrize("body, problem", [
    (STATUS + 'BO_ 256 Other: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n',
     r"7: message 'Other' \(ID 0x100\) has the same ID as message 'Status' \(ID 0x100\) at line 5"),
    (STATUS + 'BO_ 257 Status: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n',
     r"7: message 'Status' \(ID 0x101\) has the same name as message 'Status' \(ID 0x100\) at line 5"),
    (STATUS + 'BO_ 2147483904 Ext: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n' + STATUS.replace("256", "258"),
     r"9: message 'Status' \(ID 0x102\) has the same name as message 'Status' \(ID 0x100\) at line 5"),
])
def test_two_messages_with_one_id_or_name_in_one_file_are_refused(tmp_path, body, problem):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:{problem}; cantools keeps only one"):
        load_dbc(path)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:{problem}"):
        load_dbcs([path])


def test_a_29_bit_and_an_11_bit_message_may_share_a_number(tmp_path):
    path = _write(tmp_path, STATUS + 'BO_ 2147483904 Ext: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n')
    assert [m.is_extended_frame for m in load_dbc(path).messages] == [False, True]


def test_check_reports_a_duplicate_id_in_one_line_and_fails(tmp_path, capsys):
    path = _write(tmp_path, STATUS + 'BO_ 256 Other: 8 A\n SG_ X : 0|8@1+ (1,0) [0|255] "" B\n')
    assert main(["dbc", "check", str(path)]) == 1
    # One line: cantools' own "Overwriting message" log does not repeat it.
    assert capsys.readouterr().err == (
        f"{path}:7: message 'Other' (ID 0x100) has the same ID as message 'Status' (ID 0x100) at line 5; cantools "
        "keeps only one of the two, so the other is never decoded: expected unique message IDs and names in a file\n")


def _last_line(data: bytes) -> int:
    return data.rstrip().count(b"\n") + 1


# Cut points in dbc/bms.dbc: in the BO_/SG_ section (mid-number, mid-unit, inside a receiver list with no line
# break after it, inside a BO_ line), in the BA_ section, and inside a quoted attribute name.
CUTS = [400, 821, 1500, BMS.index(b" HOST,VCU\n") + 5, BMS.index(b"BO_ 272") + 6, 3000, 9000, 14000, 16300,
        BMS.index(b'BA_ "GenMsgCycleTime"') + 12]


@pytest.mark.parametrize("cut", CUTS)
def test_a_file_cut_short_names_its_last_line(tmp_path, cut):
    path = _write(tmp_path, BMS[:cut], "cut.dbc")
    where = f"{re.escape(str(path))}:{_last_line(BMS[:cut])}"
    with pytest.raises(ConfigError, match=rf"^{where}: not a valid DBC file: the file ends in the middle of this "
                                          r"(statement|line)"):
        load_dbc(path)


def test_no_cut_of_a_project_file_loads_unless_it_falls_at_a_line_end(tmp_path):
    path = tmp_path / "cut.dbc"
    for cut in range(120, len(BMS), 157):
        path.write_bytes(BMS[:cut])
        try:
            load_dbc(path)
        except ConfigError:
            continue
        assert BMS[len(BMS[:cut].rstrip()):][:1] in (b"\n", b"\r"), f"cut at byte {cut} loaded silently"


def test_check_reports_a_cut_file_and_fails(tmp_path, capsys):
    path = _write(tmp_path, BMS[:821], "t.dbc")
    assert main(["dbc", "check", str(path)]) == 1
    assert capsys.readouterr().err == (f"{path}:28: not a valid DBC file: the file ends in the middle of this "
                                       "statement; is it cut short?\n")


def test_a_complete_last_signal_needs_only_a_line_break(tmp_path):
    path = _write(tmp_path, STATUS.rstrip("\n"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}:6: .*If the line is complete, end it with a line"):
        load_dbc(path)
    assert len(load_dbc(_write(tmp_path, STATUS)).messages) == 1


@pytest.mark.parametrize("body, problem", [
    ('BO_ 256 Big: 65 A\n SG_ S : 0|8@1+ (1,0) [0|255] "" B\n',
     "5: message 'Big' is 65 bytes long; expected at most 64"),
    ('BO_ 256 M1: 8 A\n SG_ S : 0|8@1+ (0,0) [0|255] "" B\n',
     "6: signal 'S' of message 'M1' has scale 0"),
    ('BO_ 256 M1: 8 A\n SG_ S : 0|8@1+ (1,0) [0|255] "" B\n SG_ S : 8|8@1+ (1,0) [0|255] "" B\n',
     "7: signal 'S' of message 'M1' has the same name as the signal at line 6"),
    ('BO_ 256 M1: 8 A\n SG_ S0 : 0|8@1+ (1,0) [0|255] "" B\n SG_ S1 m1 : 8|8@1+ (1,0) [0|255] "" B\n',
     r"7: signal 'S1' of message 'M1' is multiplexed \(m1\) but the message has no multiplexer signal \(M\)"),
])
def test_minor_faults_cantools_accepts_are_refused_naming_line_message_and_signal(tmp_path, body, problem):
    path = _write(tmp_path, body)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}:{problem}"):
        load_dbc(path)


def test_comments_and_a_signal_over_two_lines_are_not_taken_for_missing_signals(tmp_path):
    path = _write(tmp_path, 'BO_ 256 M1: 8 A\n SG_ S0 : 0|8@1+ (1,0)\n   [0|255] "" B\n// between signals\n'
                            ' SG_ S1 : 8|8@1+ (1,0) [0|255] "" B\r\n\nCM_ "a comment\n SG_ not_a_signal";\n')
    assert [signal.name for signal in load_dbc(path).messages[0].signals] == ["S0", "S1"]


def test_a_signal_range_with_min_above_max_still_loads(tmp_path):
    """Refusing it would refuse a real file: opendbc_tesla_can.dbc writes [1|0] for two signals."""
    path = _write(tmp_path, 'BO_ 256 M1: 8 A\n SG_ S : 0|8@1+ (1,0) [10|5] "" B\n')
    assert load_dbc(path).messages[0].signals[0].minimum == 10


def test_a_signal_loaded_under_its_long_name_is_not_taken_for_a_missing_one(loaded):
    """opendbc writes 32-character names and the full name in SystemSignalLongSymbol: signals are compared
    by count, and message lines looked up by ID, not by the name cantools gives them."""
    name = "opendbc_tesla_model3_vehicle.dbc"
    seats = loaded(name).get_message_by_frame_id(738)
    assert "VCLEFT_rearCenterOccupancyVoltage" in {signal.name for signal in seats.signals}
    lines = message_lines(realworld(name))
    assert len(lines) == REALWORLD_FILES[name][0] and lines[(738, False)] == 229
