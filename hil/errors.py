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


def did_you_mean(name: str, choices) -> str:
    """"; did you mean A, B?" for the choices closest to a misspelt `name`, or "" when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""
