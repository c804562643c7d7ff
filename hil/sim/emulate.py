"""`hil emulate`: serve a rig's emulated boards in this process, over the rig's real transport.

Once ready it prints `endpoint <bus> <interface> <channel>` per bus, then `ready`, and flushes. It runs
until SIGINT or SIGTERM, until its host hangs up (pty closed: DeviceLost), or until its parent process dies;
in every case the boards go safe (contactors open, outputs off) before it exits, within 5 s.
"""
from __future__ import annotations

import os
import signal
import sys

import can

from hil.can.dbc import load_dbcs
from hil.clock import RealClock
from hil.errors import ConfigError, DeviceLost
from hil.loop import Loop
from hil.rig import Rig
from hil.sim.boards import BoardHost

TICK_S = 0.001
PARENT_CHECK_S = 0.5


def open_device_bus(rig: Rig, name: str) -> tuple[can.BusABC, str]:
    """Open the board side of bus `name`; return it and the channel the harness must use."""
    kwargs = rig.can_kwargs(name)
    interface = kwargs["interface"]
    if interface == "slcan":
        from hil.serial.slcan import SlcanDeviceBus, open_pty
        master_fd, slave_path = open_pty()
        return SlcanDeviceBus(master_fd, channel=slave_path), slave_path
    if interface == "socketcan":
        channel = str(kwargs.get("channel", "vcan0"))
        try:
            return can.Bus(interface="socketcan", channel=channel), channel
        except (OSError, can.CanError) as exc:
            raise DeviceLost(f"{rig.path}: cannot open SocketCAN interface '{channel}': {exc}") from None
    raise ConfigError(f"{rig.path}: key 'can.{name}.interface' = {interface!r}: `hil emulate` serves boards "
                      "over 'slcan' (a pty) or 'socketcan'; the 'virtual' bus only works inside one process")


def serve(rig: Rig, out=sys.stdout) -> int:
    bus_name = rig.data["dut"]["bus"]
    bus, channel = open_device_bus(rig, bus_name)
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent_pid = os.getppid()
    host = None
    try:
        host = BoardHost(rig, bus, load_dbcs(rig.dbc_paths(bus_name)))
        print(f"endpoint {bus_name} {rig.can_kwargs(bus_name)['interface']} {channel}", file=out)
        print("ready", file=out, flush=True)
        loop = Loop(RealClock(spin_s=0.0), TICK_S, host.tick, overrun_policy="skip")
        check_every = int(PARENT_CHECK_S / TICK_S)
        while stop["signal"] is None:
            loop.step()
            if loop.ticks % check_every == 0 and os.getppid() != parent_pid:
                print("emulate: parent process gone; going safe", file=sys.stderr)
                break
        return 0
    except DeviceLost as exc:
        print(f"emulate: {exc}; going safe", file=sys.stderr)
        return 0
    finally:
        if host is not None:
            host.go_safe()
        bus.shutdown()
