"""Open a python-can bus from a rig's bus table, with errors that say what to fix.

A rig table such as `[can.main]` holds python-can's own keyword names (`interface`, `channel`, `bitrate`,
`fd`, `data_bitrate`, bit-timing keys, interface-specific options) and they pass to `can.Bus` unchanged,
so python-can's documentation is the reference for them. A rig may have several tables: one bus each.

Errors, in the order they are checked:
- an unknown interface name: `ConfigError` with the closest names;
- an interface whose driver or Python package is missing (e.g. `pcan` without PEAK's PCAN-Basic library):
  `ConfigError` naming what to install;
- a keyword that is a likely typo of one python-can knows (`bitrat`): `ConfigError`. python-can's
  backends take `**kwargs` and would ignore it silently, leaving the adapter at its default bitrate;
- a setting python-can rejects (`ValueError`/`TypeError`): `ConfigError`;
- a device that is absent, busy or not ours to open: `DeviceLost` naming the interface and channel.
"""
from __future__ import annotations

import errno
import importlib
import inspect
import os
import re

import can
import serial
from can.interfaces import BACKENDS, VALID_INTERFACES
from can.typechecking import BitTimingDict, BitTimingFdDict

from hil.errors import ConfigError, DeviceLost, did_you_mean
from hil.serial.slcan import write_within

# Keywords `can.Bus` itself or python-can's config handling understands, for every interface.
_COMMON_KEYS = {"interface", "channel", "config_context", "ignore_config", "bitrate", "data_bitrate", "fd",
                "timing", "can_filters", "receive_own_messages", "state", *BitTimingDict.__annotations__,
                *BitTimingFdDict.__annotations__}
_PARAM_DOC = re.compile(r":param\s+(?:[\w\[\]., ]+\s+)?(\w+)\s*:")
_TYPO_CUTOFF = 0.8  # difflib ratio: 'bitrat'/'bitrate' is 0.92, 'f_clock_mhz'/'f_clock' (both valid) 0.78

# What to install when an interface's driver is missing. python-can's own message says what failed.
_DRIVER_HINTS = {
    "pcan": "install PEAK's PCAN-Basic library (Linux: libpcanbasic from peak-system.com)",
    "kvaser": "install Kvaser CANlib (Linux: linuxcan from kvaser.com)",
    "vector": "install Vector's XL Driver Library (Windows only)",
    "ixxat": "install the IXXAT VCI driver",
    "gs_usb": "pip install pyusb, and add a udev rule for the adapter",
    "neovi": "pip install python-ics",
    "cantact": "pip install cantact",
    "canalystii": "pip install canalystii",
    "udp_multicast": "pip install msgpack",
    "socketcan": "this kernel has no SocketCAN (CONFIG_CAN): use `hil vcan-vm`, or interface 'slcan' or "
                 "'virtual'",
}
# Longest a frame's write to a serial CAN adapter (slcan) may wait for room. python-can opens the port with
# no write timeout, so once an adapter or emulated board stops reading (hung firmware, a SIGSTOP) and the
# port's buffer fills, pyserial's write waits forever, and the loop, the safe state and the run with it.
# Setting pyserial's own write_timeout on the port did not stop that hang (measured: the harness still hung
# with the boards stopped), so the port's writes go through `write_within`, which waits for room with a
# deadline.
SERIAL_WRITE_TIMEOUT_S = 2.0
_ABSENT = {errno.ENOENT, errno.ENODEV, errno.ENXIO, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ETIMEDOUT}
_DENIED = {errno.EACCES, errno.EPERM}


def open_bus(kwargs: dict, where: str, bus_class: type[can.BusABC] | None = None) -> can.BusABC:
    """`can.Bus(**kwargs)`; `where` names the rig table (e.g. "rigs/lab.toml [can.main]") for errors.

    `bus_class` opens that class instead, with the keywords checked as for the interface the rig names (the
    sim rig's `hil.can.simbus.SimBus` for interface "virtual")."""
    interface = kwargs.get("interface")
    if interface is not None:  # without one, python-can reads can.ini / CAN_INTERFACE
        _check_keywords(_bus_class(interface, where), kwargs, where)
    try:
        if bus_class is not None:
            return bus_class(**{key: value for key, value in kwargs.items() if key != "interface"})
        return _bound_writes(can.Bus(**kwargs))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: python-can rejected the settings {kwargs}: {exc}") from None
    except (can.CanInterfaceNotImplementedError, ImportError, NameError) as exc:
        raise _driver_missing(interface, exc, where) from None
    except Exception as exc:  # adapters raise many types (OSError, SerialException, CanError, ...)
        code = _errno(exc)
        # A bare OSError without errno is how backends report a missing shared library (pcan: "pcanbasic
        # library not found"); EAFNOSUPPORT is a kernel without SocketCAN.
        if (type(exc) is OSError and code is None) or code == errno.EAFNOSUPPORT:
            raise _driver_missing(interface, exc, where) from None
        raise DeviceLost(f"{where}: cannot open CAN device: interface {interface!r} channel "
                         f"{kwargs.get('channel')!r}: {_reason(exc)}. {_device_hint(code)}") from None


def _bound_writes(bus: can.BusABC) -> can.BusABC:
    """Give a serial adapter's port (python-can's slcan keeps it in `serialPortOrig`) writes that fail after
    `SERIAL_WRITE_TIMEOUT_S`: python-can then raises CanOperationError, as for an unplugged adapter, and the
    bench reports the device lost instead of hanging."""
    port = getattr(bus, "serialPortOrig", None)
    if not isinstance(port, serial.Serial) or not port.is_open:
        return bus
    fd = port.fileno()
    os.set_blocking(fd, False)

    def write(data) -> int:
        if write_within(fd, bytes(data), SERIAL_WRITE_TIMEOUT_S):
            raise serial.SerialTimeoutException(
                f"{port.name}: the device took no data for {SERIAL_WRITE_TIMEOUT_S:g} s (it stopped reading: "
                "hung, paused or its buffer full)")
        return len(data)
    port.write = write
    return bus


def _bus_class(interface: str, where: str) -> type:
    if interface not in VALID_INTERFACES:
        raise ConfigError(f"{where}: key 'interface' = {interface!r} is not a python-can interface"
                          f"{did_you_mean(interface, VALID_INTERFACES)}; "
                          f"expected one of {sorted(VALID_INTERFACES)}")
    if interface not in BACKENDS:  # a plugin interface: python-can loads it by entry point
        return can.BusABC
    module_name, class_name = BACKENDS[interface]
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except Exception as exc:  # noqa: BLE001 - a backend module fails to import in many ways
        raise _driver_missing(interface, exc, where) from None


def _known_keys(bus_class: type) -> set[str]:
    """Keywords the backend names in its signature, or documents as `:param x:` (its **kwargs)."""
    keys = set(_COMMON_KEYS)
    keys.update(inspect.signature(bus_class.__init__).parameters)
    for doc in (bus_class.__doc__, bus_class.__init__.__doc__):
        keys.update(_PARAM_DOC.findall(doc or ""))
    return keys


def _check_keywords(bus_class: type, kwargs: dict, where: str) -> None:
    known = _known_keys(bus_class)
    for key in kwargs:
        if key in known:
            continue
        hint = did_you_mean(key, known, n=2, cutoff=_TYPO_CUTOFF)
        if hint:
            raise ConfigError(f"{where}: key {key!r} is not a keyword of python-can's {kwargs['interface']!r} "
                              f"interface{hint}; python-can would ignore it silently")


def _driver_missing(interface: str | None, exc: Exception, where: str) -> ConfigError:
    if interface is None:
        return ConfigError(f"{where}: no key 'interface', and python-can found none in can.ini or "
                           f"CAN_INTERFACE: {exc}")
    hint = _DRIVER_HINTS.get(interface or "", "install the interface's driver; see python-can's page for it")
    return ConfigError(f"{where}: python-can's {interface!r} interface cannot load its driver: {_reason(exc)}. "
                       f"To fix: {hint}")


def _reason(exc: BaseException) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__


def _errno(exc: BaseException) -> int | None:
    """The errno behind `exc`, looking through python-can's wrapping (`raise ... from`)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _device_hint(code: int | None) -> str:
    if code in _DENIED:
        return "No permission: join the group that owns the device (e.g. 'dialout') or add a udev rule."
    if code == errno.EBUSY:
        return "The device is busy: another program has it open."
    if code in _ABSENT:
        return "Is the adapter plugged in and powered, and does 'channel' name it?"
    return "Check that the adapter is connected and that 'channel' names it."
