"""Reading the project's data files (rigs, specs, cells): TOML only, parsed, never executed."""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from hil.errors import ConfigError


@dataclass(frozen=True)
class Between:
    """A number's allowed range in a data file: finite, from `low` (excluded when `low_open`: a step of 0 s)
    to `high`; `str()` says it as an error's "expected ..."."""
    low: float
    high: float = math.inf
    low_open: bool = False

    def __contains__(self, value) -> bool:
        return (math.isfinite(value) and (self.low < value if self.low_open else self.low <= value)
                and value <= self.high)

    def __str__(self) -> str:
        bound = f"a number {'>' if self.low_open else '>='} {self.low:g}"
        return bound if self.high == math.inf else f"{bound} and <= {self.high:g}"


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
