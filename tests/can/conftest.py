"""Shared pieces of the CAN layer's tests: the project's DBCs, a virtual-clock bench in miniature, and the
real-world DBC folder (read in place, skipped with the reason when absent)."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import can
import pytest

from hil.can.dbc import load_dbcs
from hil.can.monitor import Monitor
from hil.can.periodic import PeriodicSender
from hil.clock import VirtualClock
from hil.loop import Loop

ROOT = Path(__file__).resolve().parents[2]
DBC_FILES = [ROOT / "dbc" / name for name in ("bms.dbc", "vcu.dbc", "cell_emulator.dbc")]
REALWORLD = ROOT / ".." / "shared" / "realworld" / "dbc"
_channels = itertools.count()


def realworld(name: str) -> Path:
    """A file of ../shared/realworld/dbc, or a skip saying why it is not there."""
    path = REALWORLD / name
    if not path.is_file():
        pytest.skip(f"real-world DBC {path} is absent (third-party files live outside the project, see "
                    "../shared/realworld/README.md)")
    return path


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
def mini(db):
    bench = MiniBench(db)
    yield bench
    bench.close()
