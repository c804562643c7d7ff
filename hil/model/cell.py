"""Cell parameter sets, loaded from TOML data files in `fixtures/cells/`. Values are data, never code.

The smallest valid file::

    capacity_ah = 5.0               # Ah, > 0
    r0_ohm = 0.015                  # series (ohmic) resistance, > 0
    [ocv]
    soc   = [0.0, 0.5, 1.0]         # strictly increasing, within 0..1
    volts = [3.0, 3.7, 4.2]         # open-circuit voltage, non-decreasing; linear interpolation
    [[rc]]                          # 1 to 3 RC branches
    r_ohm = 0.01
    c_f = 2000.0

Optional keys (absent means "no such effect"):

- top level: `name`, `chemistry` (text); `v_min_v`, `v_max_v` (voltage window, defaults to the OCV table
  ends; the model reports it, the BMS spec enforces it).
- `[ocv]`: `dv_dt_v_per_k` (entropic coefficient dU/dT at each `soc` point, V/K) and `reference_c`
  (the temperature `volts` were measured at, default 25). OCV(SOC, T) = volts(SOC) + dU/dT(SOC) (T - T_ref).
- `[resistance]`: `soc` and `factor` (a table that multiplies `r0_ohm` and every RC `r_ohm`),
  `activation_energy_j_per_mol` and `reference_c` for an Arrhenius temperature dependence
  R(T) = R(T_ref) exp(Ea / R_gas (1/T - 1/T_ref)), so a cold cell has a higher resistance. Capacitances stay
  constant, so RC time constants scale with the resistance.
- `[hysteresis]`: `volts` (M, half the gap between the charge and the discharge OCV, V) and `rate`
  (gamma, dimensionless). One-state hysteresis after Plett (J. Power Sources 134, 262, 2004): the
  hysteresis voltage h moves towards -M while discharging and +M while charging,
  dh/dt = -gamma |I| / (3600 Q) (h + M sign(I)), and the OCV seen at the terminals is OCV(SOC) + h.
- `[thermal]`: `heat_capacity_j_per_k` (cell), `h_ambient_w_per_k` (cell to the coolant or ambient node),
  `h_neighbour_w_per_k` (cell to each adjacent cell in the pack).

Every error names the file and the key. Unknown keys are errors too, so a typo never silently falls back to a
default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hil.datafile import read_toml
from hil.errors import ConfigError

GAS_CONSTANT_J_PER_MOL_K = 8.314462618
KELVIN_OFFSET = 273.15


def _constant_table() -> np.ndarray:
    return np.array([0.0, 1.0])


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
    h_neighbour_w_per_k: float = 0.0
    ocv_dv_dt_v_per_k: np.ndarray | None = None
    ocv_reference_c: float = 25.0
    r_factor_soc: np.ndarray = field(default_factory=_constant_table)
    r_factor: np.ndarray = field(default_factory=lambda: np.ones(2))
    activation_energy_j_per_mol: float = 0.0
    resistance_reference_c: float = 25.0
    hysteresis_v: float = 0.0
    hysteresis_rate: float = 0.0

    def ocv(self, soc, temperature_c=None):
        """Open-circuit voltage without hysteresis at `soc` (0..1): linear interpolation, clamped at the
        table ends, plus the entropic term when a temperature is given."""
        volts = np.interp(soc, self.ocv_soc, self.ocv_v)
        if temperature_c is not None:
            volts = volts + self.entropic_shift_v(soc, temperature_c)
        return volts

    def entropic_shift_v(self, soc, temperature_c):
        """dU/dT (T - T_ref): how far the OCV at `temperature_c` lies from the table; 0 without `dv_dt_v_per_k`."""
        if self.ocv_dv_dt_v_per_k is None:
            return np.zeros(np.shape(soc))
        return np.interp(soc, self.ocv_soc, self.ocv_dv_dt_v_per_k) * (np.asarray(temperature_c) - self.ocv_reference_c)

    def resistance_factor(self, soc, temperature_c):
        """What `r0_ohm` and the RC resistances are multiplied by at `soc` and `temperature_c`."""
        arrhenius = np.exp(self.activation_energy_j_per_mol / GAS_CONSTANT_J_PER_MOL_K * (
            1.0 / (np.asarray(temperature_c) + KELVIN_OFFSET)
            - 1.0 / (self.resistance_reference_c + KELVIN_OFFSET)))
        return np.interp(soc, self.r_factor_soc, self.r_factor) * arrhenius


_TOP_KEYS = {"name", "chemistry", "capacity_ah", "r0_ohm", "v_min_v", "v_max_v",
             "ocv", "rc", "resistance", "hysteresis", "thermal"}
_TABLE_KEYS = {
    "ocv": {"soc", "volts", "dv_dt_v_per_k", "reference_c"},
    "resistance": {"soc", "factor", "activation_energy_j_per_mol", "reference_c"},
    "hysteresis": {"volts", "rate"},
    "thermal": {"heat_capacity_j_per_k", "h_ambient_w_per_k", "h_neighbour_w_per_k"},
}


def _number(doc: dict, key: str, where: str, *, minimum: float | None = 0.0, strict: bool = True,
            default: float | None = None) -> float:
    """A finite number under `key`; `minimum` with `strict` means "> minimum", else ">= minimum"."""
    if key not in doc:
        if default is not None:
            return default
        raise ConfigError(f"{where}: missing key '{key}' (expected a number)")
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a finite number")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a number {'>' if strict else '>='} {minimum}")
    return float(value)


def _numbers(doc: dict, key: str, where: str) -> np.ndarray:
    if key not in doc:
        raise ConfigError(f"{where}: missing key '{key}' (expected a list of numbers)")
    value = doc[key]
    if not isinstance(value, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a list of finite numbers")
    return np.asarray(value, dtype=float)


def _soc_table(doc: dict, table: str, value_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """A `soc` column (strictly increasing, in 0..1) and a value column of the same length."""
    soc = _numbers(doc, "soc", where)
    values = _numbers(doc, value_key, where)
    if soc.size < 2 or soc.size != values.size:
        raise ConfigError(f"{where}: key '{table}.soc' has {soc.size} points and '{table}.{value_key}' "
                          f"{values.size}; expected two lists of equal length >= 2")
    if soc.min() < 0 or soc.max() > 1:
        raise ConfigError(f"{where}: key '{table}.soc' has values outside 0..1 "
                          f"(min {soc.min():g}, max {soc.max():g})")
    if np.any(np.diff(soc) <= 0):
        raise ConfigError(f"{where}: key '{table}.soc' must increase strictly")
    return soc, values


def _check_keys(doc: dict, allowed: set[str], where: str, prefix: str = "") -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{prefix}{unknown[0]}'; expected one of {sorted(allowed)}")


def _table(doc: dict, name: str, where: str) -> dict | None:
    table = doc.get(name)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: key '{name}' must be a table [{name}]")
    _check_keys(table, _TABLE_KEYS[name], where, f"{name}.")
    return table


def load_cell(path: str | Path) -> CellParams:
    """Load and validate a cell file. Errors name the file and the key."""
    path = Path(path)
    doc = read_toml(path, "cell")
    where = str(path)
    _check_keys(doc, _TOP_KEYS, where)

    ocv = _table(doc, "ocv", where)
    if ocv is None:
        raise ConfigError(f"{where}: missing table '[ocv]' with 'soc' and 'volts' lists")
    soc, volts = _soc_table(ocv, "ocv", "volts", where)
    if np.any(np.diff(volts) < 0):
        raise ConfigError(f"{where}: key 'ocv.volts' must not decrease with SOC")
    dv_dt = None
    if "dv_dt_v_per_k" in ocv:
        dv_dt = _numbers(ocv, "dv_dt_v_per_k", where)
        if dv_dt.size != soc.size:
            raise ConfigError(f"{where}: key 'ocv.dv_dt_v_per_k' has {dv_dt.size} points, "
                              f"'ocv.soc' {soc.size}; expected equal lengths")

    rcs = doc.get("rc", [])
    if not isinstance(rcs, list) or not 1 <= len(rcs) <= 3 or not all(isinstance(rc, dict) for rc in rcs):
        raise ConfigError(f"{where}: key 'rc' expected 1 to 3 [[rc]] entries with r_ohm and c_f")
    for i, rc in enumerate(rcs):
        _check_keys(rc, {"r_ohm", "c_f"}, f"{where} [[rc]] #{i + 1}", "rc.")
    rc_r = tuple(_number(rc, "r_ohm", f"{where} [[rc]] #{i + 1}") for i, rc in enumerate(rcs))
    rc_c = tuple(_number(rc, "c_f", f"{where} [[rc]] #{i + 1}") for i, rc in enumerate(rcs))

    extra: dict = {}
    resistance = _table(doc, "resistance", where)
    if resistance is not None:
        if "soc" in resistance or "factor" in resistance:
            r_soc, r_factor = _soc_table(resistance, "resistance", "factor", where)
            if np.any(r_factor <= 0):
                raise ConfigError(f"{where}: key 'resistance.factor' must be > 0 everywhere")
            extra.update(r_factor_soc=r_soc, r_factor=r_factor)
        extra.update(
            activation_energy_j_per_mol=_number(resistance, "activation_energy_j_per_mol", where,
                                                strict=False, default=0.0),
            resistance_reference_c=_number(resistance, "reference_c", where, minimum=-KELVIN_OFFSET,
                                           default=25.0))
    hysteresis = _table(doc, "hysteresis", where)
    if hysteresis is not None:
        extra.update(hysteresis_v=_number(hysteresis, "volts", where, strict=False),
                     hysteresis_rate=_number(hysteresis, "rate", where, strict=False))
    thermal = _table(doc, "thermal", where)
    if thermal is not None:
        extra.update(heat_capacity_j_per_k=_number(thermal, "heat_capacity_j_per_k", where),
                     h_ambient_w_per_k=_number(thermal, "h_ambient_w_per_k", where, strict=False),
                     h_neighbour_w_per_k=_number(thermal, "h_neighbour_w_per_k", where, strict=False,
                                                 default=0.0))
    v_min_v = _number(doc, "v_min_v", where, default=float(volts[0]))
    v_max_v = _number(doc, "v_max_v", where, default=float(volts[-1]))
    if not v_min_v < v_max_v:
        raise ConfigError(f"{where}: key 'v_min_v' = {v_min_v} must be below 'v_max_v' = {v_max_v}")
    return CellParams(
        name=str(doc.get("name", path.stem)),
        capacity_ah=_number(doc, "capacity_ah", where),
        r0_ohm=_number(doc, "r0_ohm", where),
        rc_r_ohm=rc_r,
        rc_c_f=rc_c,
        ocv_soc=soc,
        ocv_v=volts,
        v_min_v=v_min_v,
        v_max_v=v_max_v,
        ocv_dv_dt_v_per_k=dv_dt,
        ocv_reference_c=_number(ocv, "reference_c", where, minimum=-KELVIN_OFFSET, default=25.0),
        **extra,
    )
