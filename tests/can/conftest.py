"""Shared pieces of the CAN layer's tests: the project's DBCs, a vendor-style DBC, a virtual-clock bench in
miniature, and the real-world DBC folder (read in place, skipped with the reason when absent)."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import can
import pytest

from hil.can.dbc import load_dbc, load_dbcs
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.clock import VirtualClock
from hil.loop import Loop

ROOT = Path(__file__).resolve().parents[2]
DBC_FILES = [ROOT / "dbc" / name for name in ("bms.dbc", "vcu.dbc", "cell_emulator.dbc")]
REALWORLD = ROOT / ".." / "shared" / "realworld" / "dbc"
# The real-world files: name -> (messages, multiplexed messages)
REALWORLD_FILES = {
    "foxbms2_foxbms.dbc": (41, 18),
    "foxbms2_ivt-s_current_sensor.dbc": (10, 2),
    "foxbms2_iso165_insulation_monitor.dbc": (5, 2),
    "opendbc_tesla_model3_vehicle.dbc": (403, 118),
    "opendbc_tesla_can.dbc": (44, 2),
}
_channels = itertools.count()

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


def realworld(name: str) -> Path:
    """A file of ../shared/realworld/dbc, or a skip saying why it is not there."""
    path = REALWORLD / name
    if not path.is_file():
        pytest.skip(f"real-world DBC {path} is absent (third-party files live outside the project, see "
                    "../shared/realworld/README.md)")
    return path


@pytest.fixture(scope="session")
def loaded():
    """`loaded(name)`: a real-world file, each loaded once per session (the Model 3 file takes seconds)."""
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = load_dbc(realworld(name))
        return cache[name]
    return load


def fresh_channel() -> str:
    """A virtual-bus channel no other test (or xdist worker) uses."""
    return f"hil-can-test-{os.getpid()}-{next(_channels)}"


@pytest.fixture(scope="session")
def db():
    return load_dbcs(DBC_FILES)


class MiniBench:
    """What the bench does for CAN on a virtual clock, and nothing else: one 1 ms loop whose tick runs the
    device-side sender (the "BMS"), drains the harness bus into the Monitor, then runs the rest-bus sender."""

    def __init__(self, db, dt_s: float = 0.001):
        channel = fresh_channel()
        self.device_bus = can.Bus(interface="virtual", channel=channel)
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.clock = VirtualClock()
        self.monitor = Monitor(db, self.clock.now_s)
        self.device = PeriodicSender(self.device_bus, db)  # plays the board under test
        self.sender = PeriodicSender(self.bus, db)          # the harness's rest-bus simulation
        self.device_monitor = Monitor(db, self.clock.now_s)  # what the board receives
        self.loop = Loop(self.clock, dt_s, self.tick)

    def tick(self, t_s: float) -> None:
        self.device.tick(t_s)
        while (msg := self.bus.recv(timeout=0)) is not None:
            self.monitor.on_message_received(msg)
        self.sender.tick(t_s)
        while (msg := self.device_bus.recv(timeout=0)) is not None:
            self.device_monitor.on_message_received(msg)

    def close(self) -> None:
        self.bus.shutdown()
        self.device_bus.shutdown()


@pytest.fixture
def vendor_dbc(tmp_path):
    path = tmp_path / "vendor.dbc"
    path.write_bytes(VENDOR_DBC.encode("cp1252"))
    return path


@pytest.fixture
def mini(db):
    bench = MiniBench(db)
    yield bench
    bench.close()
