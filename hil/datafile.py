"""Reading the project's data files (rigs, specs, cells): TOML only, parsed, never executed."""
from __future__ import annotations

import tomllib
from pathlib import Path

from hil.errors import ConfigError


def read_toml(path: str | Path, kind: str) -> dict:
    """Parse `path`; a missing file or a syntax error raises `ConfigError` naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {kind} file not found")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {kind} file: {exc}") from None
