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
    assert out[0] == f"{DBC_FILES[0]}: 8 messages, 3 multiplexed, 0 with 29-bit IDs, 226 signals"
    assert out[1] == f"{DBC_FILES[1]}: 2 messages, 0 multiplexed, 0 with 29-bit IDs, 6 signals"


def test_check_reports_file_line_and_reason_for_a_broken_file(tmp_path, capsys):
    broken = tmp_path / "broken.dbc"
    broken.write_text('VERSION ""\n\nBU_: BMS\nBO_ 256 BMS_Status 8 BMS\n')
    missing = tmp_path / "missing.dbc"
    assert main(["dbc", "check", str(DBC_FILES[1]), str(broken), str(missing)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{DBC_FILES[1]}: 2 messages")
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
        "dbc/bms.dbc: 8 messages, 3 multiplexed, 0 with 29-bit IDs, 226 signals",
        f"{tesla}: 44 messages, 2 multiplexed, 0 with 29-bit IDs, 572 signals"]
    assert result.stderr == "no/such.dbc: DBC file not found\n"
