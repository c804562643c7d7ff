"""Open a python-can bus from a rig's bus table, with errors that name the rig key and the device."""
from __future__ import annotations

import can

from hil.errors import ConfigError, DeviceLost


def open_bus(kwargs: dict, where: str) -> can.BusABC:
    """`can.Bus(**kwargs)`; `where` names the rig table (e.g. "rigs/lab.toml [can.main]") for errors."""
    try:
        return can.Bus(**kwargs)
    except (TypeError, ValueError, can.exceptions.CanInterfaceNotImplementedError) as exc:
        raise ConfigError(f"{where}: python-can cannot open interface {kwargs.get('interface')!r} "
                          f"with {kwargs}: {exc}") from None
    except (OSError, can.CanError, Exception) as exc:  # adapters raise many types; all mean "not there"
        raise DeviceLost(f"{where}: cannot open CAN device {kwargs.get('interface')!r} channel "
                         f"{kwargs.get('channel')!r}: {exc}") from None
