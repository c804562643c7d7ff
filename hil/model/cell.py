"""Cell parameter sets, loaded from TOML data files in `fixtures/cells/`.

The smallest valid file holds `capacity_ah`, `r0_ohm`, an `[ocv]` table (`soc`, `volts`) and one or more
`[[rc]]` entries with `r_ohm` and `c_f`. Values are data, never code.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.errors import ConfigError


@dataclass(frozen=True)
class CellParams:
    name: str
    capacity_ah: float
    r0_ohm: float
    rc_r_ohm: tuple[float, ...]
    rc_c_f: tuple[float, ...]
    ocv_soc: np.ndarray
    ocv_v: np.ndarray
    v_min_v: float
    v_max_v: float
    # Lumped thermal: heat capacity and conductance to ambient. Defaults fit a 21700 in still air.
    heat_capacity_j_per_k: float = 65.0
    h_ambient_w_per_k: float = 0.05

    def ocv(self, soc):
        """Open-circuit voltage at `soc` (0..1), linear interpolation, clamped at the table ends."""
        return np.interp(soc, self.ocv_soc, self.ocv_v)


def _number(doc: dict, key: str, where: str, *, positive: bool = True) -> float:
    if key not in doc:
        raise ConfigError(f"{where}: missing key '{key}' (expected a number)")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a number")
    if positive and not value > 0:
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a number > 0")
    return float(value)


def load_cell(path: str | Path) -> CellParams:
    """Load and validate a cell file. Errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: cell file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}") from None
    where = str(path)
    ocv = doc.get("ocv")
    if not isinstance(ocv, dict):
        raise ConfigError(f"{where}: missing table '[ocv]' with 'soc' and 'volts' lists")
    soc = np.asarray(ocv.get("soc", []), dtype=float)
    volts = np.asarray(ocv.get("volts", []), dtype=float)
    if soc.size < 2 or soc.size != volts.size:
        raise ConfigError(f"{where}: key 'ocv.soc' has {soc.size} points and 'ocv.volts' {volts.size};"
                          " expected two lists of equal length >= 2")
    if soc.min() < 0 or soc.max() > 1:
        raise ConfigError(f"{where}: key 'ocv.soc' has values outside 0..1")
    if np.any(np.diff(soc) <= 0):
        raise ConfigError(f"{where}: key 'ocv.soc' must increase strictly")
    if np.any(np.diff(volts) < 0):
        raise ConfigError(f"{where}: key 'ocv.volts' must not decrease with SOC")
    rcs = doc.get("rc", [])
    if not isinstance(rcs, list) or not 1 <= len(rcs) <= 3:
        raise ConfigError(f"{where}: key 'rc' expected 1 to 3 [[rc]] entries with r_ohm and c_f")
    rc_r = tuple(_number(rc, "r_ohm", f"{where} [[rc]] #{i + 1}") for i, rc in enumerate(rcs))
    rc_c = tuple(_number(rc, "c_f", f"{where} [[rc]] #{i + 1}") for i, rc in enumerate(rcs))
    return CellParams(
        name=str(doc.get("name", path.stem)),
        capacity_ah=_number(doc, "capacity_ah", where),
        r0_ohm=_number(doc, "r0_ohm", where),
        rc_r_ohm=rc_r,
        rc_c_f=rc_c,
        ocv_soc=soc,
        ocv_v=volts,
        v_min_v=float(doc.get("v_min_v", volts[0])),
        v_max_v=float(doc.get("v_max_v", volts[-1])),
    )
