"""SIGTERM or SIGINT to a harness mid-test: it commands the safe state itself, before any board watchdog
has to, reads it back, records that in the report, and exits as interrupted."""
import signal
import xml.etree.ElementTree as ET

import pytest
from .safety_harness import CONTACTORS, decoded_frames, only, run_pytest

from hil.protocol import FAULT_BITS
from hil.trace import read_events


@pytest.mark.slow
@pytest.mark.parametrize("rig", ["sim", "slcan"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_test_commands_the_safe_state_and_reads_it_back(tmp_path, db, rig, signum):
    harness = run_pytest(tmp_path, rig)
    harness.wait_for(lambda line: line.startswith("progress") and "closed=True" in line)
    harness.proc.send_signal(signum)
    assert harness.finish() == pytest.ExitCode.INTERRUPTED, harness.output()

    log = only((tmp_path / "report" / "tests").glob("*.blf"))
    frames = decoded_frames(log, db)
    last = {name: values for _, name, values in frames}
    assert last["VCU_Request"]["VCU_ModeRequest"] == 0          # STANDBY requested
    assert last["CE_Control"]["CE_OutputEnable"] == 0
    assert not any(last["BMS_Status"][name] for name in CONTACTORS)
    assert last["CE_Status"]["CE_OutputsOn"] == 0
    # Commanded by the harness, not left to the boards' watchdogs: neither ever tripped.
    assert not any(v["BMS_FaultBits"] >> FAULT_BITS["heartbeat"] & 1 for _, n, v in frames if n == "BMS_Status")
    assert not any(v["CE_WatchdogTripped"] for _, name, v in frames if name == "CE_Status")

    events = read_events(log.with_suffix(".csv"))   # the trace's events, beside it
    read_back = [text.split()[2:4] for _, text in events if text.startswith("safe state:")]
    assert read_back[:4] == [["supply", "confirmed"], ["load", "confirmed"], ["contactors", "confirmed"],
                             ["outputs", "confirmed"]]

    # The test is recorded as interrupted, with the read-back, not as passed.
    case = only(ET.parse(tmp_path / "junit.xml").getroot().iter("testcase"))
    assert f"interrupted ({signal.Signals(signum).name} received)" in case.find("failure").get("message")
    assert {p.get("name"): p.get("value") for p in case.iter("property")}["safe:confirmed"] == "True"
