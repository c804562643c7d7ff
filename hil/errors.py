"""Errors the harness raises on purpose. Each message says what to fix: file, key, device, value."""

import difflib


class HilError(Exception):
    """Base for every error the harness reports to a user without a traceback."""


class ConfigError(HilError):
    """A rig, spec, cell or profile file is wrong. The message names the file and key."""


class HilTimeout(HilError):
    """A wait ran out of time. The message shows what was seen while waiting."""


class DeviceLost(HilError):
    """A device (serial port, CAN adapter, emulated board) disappeared mid-run."""


def did_you_mean(name: str, choices, *, n: int = 3, cutoff: float = 0.6) -> str:
    """" (did you mean 'A' or 'B'?)" for the (at most `n`) choices closest to a misspelt `name`, or "" when
    none is as close as `cutoff` (difflib's ratio): one way every error of this project suggests a fix."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=cutoff)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
