"""`hil dbc check FILE...`: a summary per good file and exit 0; "file:line: reason" and exit 1 otherwise."""
from __future__ import annotations

import subprocess
import sys

from .conftest import DBC_FILES, ROOT, realworld

from hil.cli import main

SUBPROCESS_TIMEOUT_S = 120.0


def test_check_summarises_good_files(capsys):
    assert main(["dbc", "check", *map(str, DBC_FILES)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{DBC_FILES[0]}: 12 messages, 3 multiplexed, 0 with 29-bit IDs, 234 signals"
    assert out[1] == f"{DBC_FILES[1]}: 4 messages, 0 multiplexed, 0 with 29-bit IDs, 8 signals"


def test_check_reports_file_line_and_reason_for_a_broken_file(tmp_path, capsys):
    broken = tmp_path / "broken.dbc"
    broken.write_text('VERSION ""\n\nBU_: BMS\nBO_ 256 BMS_Status 8 BMS\n')
    missing = tmp_path / "missing.dbc"
    assert main(["dbc", "check", str(DBC_FILES[1]), str(broken), str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{DBC_FILES[1]}: 4 messages")
    assert captured.err.splitlines() == [
        f'{broken}:4: not a valid DBC file: Invalid syntax at line 4, column 20: "BO_ 256 BMS_Status >>!<<8 BMS"',
        f"{missing}: DBC file not found"]


def test_check_reports_a_message_whose_layout_does_not_round_trip(tmp_path, capsys):
    overlap = tmp_path / "overlap.dbc"
    overlap.write_text('VERSION ""\nBU_: X\n\nBO_ 16 Bad: 8 X\n SG_ A : 0|8@1+ (1,0) [0|255] "" X\n'
                       ' SG_ B : 4|8@1+ (1,0) [0|255] "" X\n')
    assert main(["dbc", "check", str(overlap)]) == 1
    assert capsys.readouterr().err.startswith(f"{overlap}:4: Bad (0x10): cannot encode and decode")


def test_check_runs_as_a_command_on_a_real_file():
    tesla = realworld("opendbc_tesla_can.dbc")
    result = subprocess.run([sys.executable, "-m", "hil", "dbc", "check", "dbc/bms.dbc", str(tesla), "no/such.dbc"],
                            cwd=ROOT, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 1  # one of the three files is missing
    assert result.stdout.splitlines() == [
        "dbc/bms.dbc: 12 messages, 3 multiplexed, 0 with 29-bit IDs, 234 signals",
        f"{tesla}: 44 messages, 2 multiplexed, 0 with 29-bit IDs, 572 signals"]
    assert result.stderr == "no/such.dbc: DBC file not found\n"


# `hil dbc map MAP --dbc FILE...`: a map checked against DBC files without a rig.
DUTS = ROOT / "fixtures" / "duts"
CE_MAP = ROOT / "fixtures" / "cell_emulators" / "reference-ce.toml"


def test_map_says_what_a_good_dut_map_maps(capsys):
    dbcs = [str(ROOT / "dbc" / name) for name in ("bms.dbc", "vcu.dbc")]
    assert main(["dbc", "map", str(DUTS / "reference-bms.toml"), "--dbc", *dbcs, "--channels", "96"]) == 0
    out = capsys.readouterr().out
    assert "DUT map of reference BMS (mapped): reads state, pack_current_a" in out
    assert "cell_voltages_v (96 cells from BMS_CellVoltages)" in out and "asks through VCU_Request, VCU_Heartbeat" in out


def test_map_checks_a_cell_emulator_map_and_the_pack_size(capsys):
    dbc = str(ROOT / "dbc" / "cell_emulator.dbc")
    assert main(["dbc", "map", str(CE_MAP), "--dbc", dbc]) == 0
    out = capsys.readouterr().out
    assert "cell-emulator map of reference cell emulator (mapped): cells in 4 frames, thermistors in 3 frames" in out
    assert ("current, relays, insulation, insulation at any tap, contactor weld, precharge weld, contactor stuck open, "
            "DC-link short, HVIL break, AFE link break; outputs by CE_Control.CE_OutputEnable") in out
    assert main(["dbc", "map", str(CE_MAP), "--dbc", dbc, "--channels", "97"]) == 1
    assert "channel 97 would be signal 'CE_Cell97_Setpoint'" in capsys.readouterr().err


def test_map_names_a_dbc_pair_that_cannot_share_a_bus(capsys):
    """foxBMS 2's DBC and the reference cell emulator's both use ID 0x300: the check says so."""
    assert main(["dbc", "map", str(DUTS / "foxbms2.toml"), "--dbc", str(realworld("foxbms2_foxbms.dbc")),
                 str(ROOT / "dbc" / "cell_emulator.dbc")]) == 1
    assert "message 'CE_CellSetpoint' (ID 0x300) collides with 'f_Debug' (ID 0x300)" in capsys.readouterr().err
