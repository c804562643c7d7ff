"""`hil emulate`: serve a rig's emulated boards in this process, over the rig's real transport.

Buses (the DUT's, and the cell emulator's when the rig gives it its own): 'slcan' on a fresh pty,
'socketcand' on the rig's TCP port on 127.0.0.1 (`hil.sim.socketcand`), or 'socketcan'. Once ready it
prints `endpoint <bus> <interface> <channel>` per bus, and for the boards' serial ports `endpoint debug
serial <pty>` (the BMS's debug UART, `hil.sim.debug_uart`), `endpoint ce-serial serial <pty>` (the cell
emulator's control port, `hil.sim.ce_serial`) and, with `[power_supply] kind = "emulated"`, `endpoint psu
serial <pty>` (the lab supply on the BMS's low-voltage input, SCPI: `hil.sim.lab_supply`); then `ready`,
and it flushes. It runs until SIGINT or SIGTERM, until its host hangs up (pty or TCP connection closed:
DeviceLost), or until its parent process dies; in every case the boards go safe (contactors open, outputs off)
before it exits.

Timing when the harness dies (SIGKILL included): the kernel closes its end of the pty, the next tick
(1 ms) sees the hang-up and the boards go safe; if the harness was not holding the pty, the parent check
(every `PARENT_CHECK_S`) notices the new parent. Either way the process exits well within 5 s. The cell
emulator's own watchdog (500 ms without `CE_Control`) covers a harness that hangs without dying.

`--events FILE` (or `$HIL_EMULATE_EVENTS`) appends what happened as JSON lines (`hil.sim.events`).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import can

from hil.can.dbc import load_dbcs
from hil.clock import RealClock
from hil.errors import ConfigError, DeviceLost
from hil.loop import Loop
from hil.rig import Rig
from hil.serial.protocols import bms_debug, cell_emulator
from hil.serial.slcan import open_pty
from hil.sim.boards import BoardHost
from hil.sim.ce_serial import CellEmulatorSerial
from hil.sim.debug_uart import DebugUart
from hil.sim.events import ENV_VAR, EventLog
from hil.sim.serial_device import SerialDevice

TICK_S = 0.001
PARENT_CHECK_S = 0.2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hil emulate` besides the rig options."""
    parser.add_argument("--events", metavar="FILE", default=None,
                        help=f"append board events (outputs, contactors, state, power, exit) to FILE as JSON lines; "
                             f"default: ${ENV_VAR} if set")


def open_device_bus(rig: Rig, name: str) -> tuple[can.BusABC, str]:
    """Open the board side of bus `name`; return it and the channel the harness must use."""
    kwargs = rig.can_kwargs(name)
    interface = kwargs["interface"]
    if interface == "slcan":
        from hil.serial.slcan import SlcanDeviceBus
        master_fd, slave_path = open_pty()
        return SlcanDeviceBus(master_fd, channel=slave_path), slave_path
    if interface == "socketcand":
        from hil.sim.socketcand import SocketcandDeviceBus
        port, channel = kwargs.get("port"), str(kwargs.get("channel", "can0"))
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"{rig.path}: key 'can.{name}.port' = {port!r}: `hil emulate` serves socketcand on "
                              "the TCP port the rig names, so give a free port number (1-65535)")
        try:
            return SocketcandDeviceBus(port, channel, host=str(kwargs.get("host", "127.0.0.1"))), channel
        except OSError as exc:
            raise ConfigError(f"{rig.path}: cannot serve socketcand on 127.0.0.1:{port} ({exc.strerror}); "
                              f"choose another can.{name}.port") from None
    if interface == "socketcan":
        channel = str(kwargs.get("channel", "vcan0"))
        try:
            return can.Bus(interface="socketcan", channel=channel), channel
        except (OSError, can.CanError) as exc:
            raise DeviceLost(f"{rig.path}: cannot open SocketCAN interface '{channel}': {exc}") from None
    raise ConfigError(f"{rig.path}: key 'can.{name}.interface' = {interface!r}: `hil emulate` serves boards "
                      "over 'slcan' (a pty), 'socketcand' (TCP on 127.0.0.1) or 'socketcan'; the 'virtual' bus "
                      "only works inside one process")


def open_serial_ports(host: BoardHost) -> dict[str, SerialDevice]:
    """The boards' serial ports, each on a fresh pty, by endpoint name."""
    ports = {}
    for name, protocol, answer in (("debug", bms_debug.PROTOCOL, DebugUart(host.firmware).answer),
                                   ("ce-serial", cell_emulator.PROTOCOL, CellEmulatorSerial(host.cell_emulator).answer)):
        master_fd, slave_path = open_pty()
        ports[name] = SerialDevice(master_fd, slave_path, protocol, answer)
    if host.supply is not None:   # SCPI: text lines, no framed protocol
        master_fd, slave_path = open_pty()
        ports["psu"] = SerialDevice(master_fd, slave_path, None, host.supply.answer)
    return ports


def _say(text: str) -> None:
    """A diagnostic on stderr. Once the harness is gone its pipe is too: going safe must not fail on that."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def _detach_output() -> None:
    """Point stdout and stderr at /dev/null so the interpreter's exit flush cannot fail on a dead pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass  # not a real file (e.g. captured in a test): nothing at exit to fail
    os.close(devnull)


def serve(rig: Rig, out=sys.stdout, events_path: str | os.PathLike | None = None) -> int:
    events_path = events_path or os.environ.get(ENV_VAR) or None
    events = EventLog(events_path) if events_path else None
    bus_name, ce_bus_name = rig.data["dut"]["bus"], rig.data["cell_emulator"]["bus"]
    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent_pid = os.getppid()
    host = None
    buses: dict[str, can.BusABC] = {}
    ports: dict[str, SerialDevice] = {}
    cause = "shutdown"
    code = 0
    try:
        channels = {}
        for name in dict.fromkeys((bus_name, ce_bus_name)):  # the cell emulator's bus, if it has its own
            buses[name], channels[name] = open_device_bus(rig, name)
        ce_bus = buses[ce_bus_name] if ce_bus_name != bus_name else None
        host = BoardHost(rig, buses[bus_name], load_dbcs(rig.dbc_paths(bus_name)), ce_bus=ce_bus,
                         ce_db=load_dbcs(rig.dbc_paths(ce_bus_name)) if ce_bus is not None else None, events=events)
        ports = open_serial_ports(host)
        for name, channel in channels.items():
            print(f"endpoint {name} {rig.can_kwargs(name)['interface']} {channel}", file=out)
        for name, port in ports.items():
            print(f"endpoint {name} serial {port.path}", file=out)
        print("ready", file=out, flush=True)
        if events is not None:
            endpoints = {**channels, **{name: port.path for name, port in ports.items()}}
            events.emit("emulate", "ready", endpoints=endpoints, parent_pid=parent_pid)

        def tick(now_s: float) -> None:
            host.tick(now_s)
            for port in ports.values():
                port.poll(now_s)

        # The rig's priority, but always the sleeping wait: these boards share the machine with the harness,
        # and two busy loops would leave the harness's CAN thread and pty I/O no core on a 2-core machine.
        clock = RealClock(spin_s=0.0, priority=rig.realtime_priority, where=f"{rig.path} [rig]")
        loop = Loop(clock, TICK_S, tick, overrun_policy="skip")
        clock.restart()  # setup's garbage collected, the rest frozen out of the run's collections (hil.clock)
        next_parent_check_s = time.monotonic() + PARENT_CHECK_S
        while stop["signal"] is None:
            loop.step()
            # By wall time, not tick count: the "skip" policy jumps over ticks after a stall.
            if time.monotonic() >= next_parent_check_s:
                next_parent_check_s = time.monotonic() + PARENT_CHECK_S
                if os.getppid() != parent_pid:
                    cause = "parent_gone"
                    _say("emulate: parent process gone; going safe")
                    break
        if stop["signal"] is not None:
            cause = "signal"
            if events is not None:
                events.emit("emulate", "signal", signum=stop["signal"])
        elif events is not None:
            events.emit("emulate", "parent_gone", parent_pid=parent_pid)
    except DeviceLost as exc:
        if host is None:  # its own bus never opened: a failure to start, not a harness gone mid-run
            code, cause = 2, "startup_failed"
            raise
        cause = "host_lost"
        if events is not None:
            events.emit("emulate", "host_lost", detail=str(exc))
        _say(f"emulate: {exc}; going safe")
    except BaseException as exc:
        code = 2 if isinstance(exc, Exception) else 130
        cause = type(exc).__name__
        raise
    finally:
        if host is not None:
            host.go_safe(cause)
        for bus in buses.values():
            bus.shutdown()
        for port in ports.values():
            port.close()
        if events is not None:
            events.emit("emulate", "exit", code=code, cause=cause)
            events.close()
        if cause in ("host_lost", "parent_gone"):
            _detach_output()
    return code
