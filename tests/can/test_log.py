"""CAN logs: BLF and ASC from python-can's writers, readable by `can.LogReader`, decodable by `cantools
decode`, and flushed as they go so a killed process keeps its log."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import can
import pytest
from .conftest import DBC_FILES, ROOT

from hil.can.dbc import encode
from hil.can.log import CanLog
from hil.errors import ConfigError

SUBPROCESS_TIMEOUT_S = 60.0
T0_S = 1_700_000_000.0  # log timestamps are epoch seconds


def run_frames(db) -> list[can.Message]:
    status = db.get_message_by_name("BMS_Status")
    cells = db.get_message_by_name("BMS_CellVoltages")
    frames = [can.Message(timestamp=T0_S + 0.02 * k, arbitration_id=0x100, is_extended_id=False,
                          data=encode(status, {"BMS_State": 3, "BMS_Status_Counter": k % 16}), is_rx=True)
              for k in range(20)]
    frames.append(can.Message(timestamp=T0_S + 0.5, arbitration_id=0x150, is_extended_id=False, is_rx=True,
                              data=encode(cells, {"BMS_CellVoltages_Mux": 2, "BMS_Cell10_Voltage": 3.789})))
    frames.append(can.Message(timestamp=T0_S + 0.6, arbitration_id=0x210, is_extended_id=False, is_rx=False,
                              data=bytes([1, 0, 0, 0, 0, 0, 0, 0])))          # sent by the harness
    frames.append(can.Message(timestamp=T0_S + 0.7, arbitration_id=0x18FF50E5, is_extended_id=True,
                              data=bytes(range(64)), is_fd=True, bitrate_switch=True, is_rx=True))
    return frames


@pytest.mark.parametrize("suffix", [".blf", ".asc"])
def test_every_frame_reads_back_with_python_can(db, tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    log = CanLog(path)
    frames = run_frames(db)
    for msg in frames:
        log.on_message_received(msg)
    log.stop()
    log.stop()  # idempotent, as Bench.close may call it twice
    back = list(can.LogReader(path))
    assert log.frames == len(back) == len(frames)
    for sent, read in zip(frames, back):
        assert (read.arbitration_id, read.is_extended_id, read.is_fd, bytes(read.data), read.is_rx) == \
               (sent.arbitration_id, sent.is_extended_id, sent.is_fd, bytes(sent.data), sent.is_rx)
        # ASC stores times from the start of the log, BLF absolute ones: compare from the first frame.
        assert read.timestamp - back[0].timestamp == pytest.approx(sent.timestamp - frames[0].timestamp, abs=1e-4)


def test_a_blf_log_decodes_with_the_cantools_command(db, tmp_path):
    blf = tmp_path / "run.blf"
    log = CanLog(blf)
    for msg in run_frames(db)[:21]:
        log.on_message_received(msg)
    log.stop()
    candump = tmp_path / "run.log"
    with can.Logger(candump) as writer:  # python-can's candump (-l) format, what `cantools decode` reads
        for msg in can.LogReader(blf):
            writer.on_message_received(msg)
    with candump.open() as stdin:
        result = subprocess.run([sys.executable, "-m", "cantools", "decode", str(DBC_FILES[0])], stdin=stdin,
                                capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("BMS_Status(") == 20
    assert "BMS_State: NORMAL" in result.stdout and "BMS_Status_Counter: 15" in result.stdout
    assert "BMS_Cell10_Voltage: 3.789 V" in result.stdout


CHILD = textwrap.dedent("""
    import sys, time
    import can
    from hil.can.log import CanLog
    log = CanLog(sys.argv[1], flush_interval_s=0.1)
    for k in range(500):
        log.on_message_received(can.Message(timestamp=1.7e9 + k / 1000, arbitration_id=0x100 + k % 7,
                                            data=k.to_bytes(2, "big") * 4, is_extended_id=False))
    time.sleep(0.5)  # five flush intervals: the background flush has run by now
    print("logged", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("suffix", [".blf", ".asc"])
def test_a_killed_process_keeps_its_log_up_to_the_last_flush(tmp_path, suffix):
    path = tmp_path / f"killed{suffix}"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "logged\n"
    finally:
        child.kill()  # SIGKILL: no stop(), no BLF header, no atexit
        child.wait(SUBPROCESS_TIMEOUT_S)
        child.stdout.close()
    back = list(can.LogReader(path))
    assert len(back) == 500
    assert bytes(back[-1].data) == (499).to_bytes(2, "big") * 4


def test_an_unknown_log_suffix_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.xyz: cannot log CAN frames to this file: .*expected a suffix"):
        CanLog(tmp_path / "run.xyz")
