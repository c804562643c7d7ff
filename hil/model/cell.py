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
default. Every number must also be plausible for one cell (`_PLAUSIBLE` lists the ranges and why), so a value
in the wrong unit (mV, mAh, mOhm) fails at load, with the likely unit, instead of simulating a 3750 V cell; and
the OCV table must run from SOC 0 to 1, since beyond its ends the OCV would be held flat without notice.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hil.datafile import read_toml
from hil.errors import ConfigError

GAS_CONSTANT_J_PER_MOL_K = 8.314462618
KELVIN_OFFSET = 273.15
# No cell of any chemistry rests outside this: NiMH ends discharge near 1 V, LTO and sodium-ion near 1.5 V,
# the 5 V spinel and phosphate cathodes charge to about 5 V (shipped files: 2.0..4.2 V).
OCV_MIN_V, OCV_MAX_V = 0.5, 5.5
# Ambient and reference temperatures: the range a rig's `pack.ambient_c` allows (hil/rig.py), so a rig and
# `hil model simulate` agree; it spans every cell datasheet's operating range (about -40..60 degC) with margin.
TEMPERATURE_MIN_C, TEMPERATURE_MAX_C = -60.0, 100.0


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


@dataclass(frozen=True)
class _Plausible:
    """The values one cell can plausibly have, and units a value outside them was likely written in."""
    low: float
    high: float
    unit: str
    # (unit, converts a value in that unit to `unit`): named in the error when the converted value fits.
    wrong_units: tuple[tuple[str, Callable[[float], float]], ...] = ()


def _per_thousand(value: float) -> float:
    return value / 1000.0


# Ranges for a single cell, from the smallest a BMS meets (a 10 mAh pouch of about 0.5 g) to the largest
# (LFP storage prismatics of several hundred Ah, around 10 kg); every shipped file (fixtures/cells) sits well
# inside. A value outside is a wrong unit or a typo, never a cell.
_VOLTS = _Plausible(OCV_MIN_V, OCV_MAX_V, "V", (("mV", _per_thousand),))
_OHMS = _Plausible(1e-5, 1.0, "ohm", (("mOhm", _per_thousand),))  # 0.1 mOhm prismatic to a 10 mAh pouch
_CELSIUS = _Plausible(TEMPERATURE_MIN_C, TEMPERATURE_MAX_C, "degC", (("K", lambda kelvin: kelvin - KELVIN_OFFSET),))
_PLAUSIBLE = {
    "capacity_ah": _Plausible(0.01, 2000.0, "Ah", (("mAh", _per_thousand),)),  # shipped: 1.5..22.6 Ah
    "r0_ohm": _OHMS,                                                              # shipped: 3..23 mOhm
    "rc.r_ohm": _OHMS,                                                            # shipped: 0.6..13 mOhm
    "v_min_v": _VOLTS,
    "v_max_v": _VOLTS,
    "ocv.volts": _VOLTS,
    # Published entropic coefficients stay within about 1 mV/K (ORegan2022, LG M50: -0.43..+0.11 mV/K).
    "ocv.dv_dt_v_per_k": _Plausible(-0.005, 0.005, "V/K", (("mV/K", _per_thousand),)),
    "ocv.reference_c": _CELSIUS,
    "resistance.reference_c": _CELSIUS,
    # Published values for cell resistance are 10-80 kJ/mol (shipped: 20); 200 kJ/mol would make R grow
    # a million times from 25 to -20 degC.
    "resistance.activation_energy_j_per_mol": _Plausible(0.0, 200_000.0, "J/mol"),
    # Half the charge/discharge OCV gap: about 10 mV for LFP (shipped), under 100 mV for silicon-rich anodes.
    "hysteresis.volts": _Plausible(0.0, 0.5, "V", (("mV", _per_thousand),)),
    # Mass times about 1000 J/(kg K): 0.5 g to 100 kg (shipped: 42..355 J/K). The lower bound also keeps the
    # thermal network's sub-steps (thermal.py) at most 2000 per simulated second with the largest conductances.
    "thermal.heat_capacity_j_per_k": _Plausible(0.5, 100_000.0, "J/K", (("kJ/K", lambda kj: kj * 1000.0),)),
    # Still air on a 26650 is 0.065 W/K (shipped: 0.05..1 W/K); 1000 W/(m2 K) of liquid cooling on the
    # 0.1 m2 of the largest cells is 100 W/K.
    "thermal.h_ambient_w_per_k": _Plausible(0.0, 100.0, "W/K"),
    "thermal.h_neighbour_w_per_k": _Plausible(0.0, 100.0, "W/K"),
}
# The best cells store about 300 Wh/kg; a cell's heat capacity bounds its mass (specific heat of cells is
# 800-1100 J/(kg K), 700 leaves margin), so a capacity implying more than 1000 Wh/kg is in the wrong unit.
_MAX_SPECIFIC_ENERGY_WH_PER_KG = 1000.0
_MIN_SPECIFIC_HEAT_J_PER_KG_K = 700.0


def _check_plausible(values, key: str, where: str) -> None:
    """A ConfigError naming `key` when a value (or the first of a list) lies outside `_PLAUSIBLE[key]`."""
    plausible = _PLAUSIBLE[key]
    array = np.atleast_1d(np.asarray(values, dtype=float))
    outside = array[(array < plausible.low) | (array > plausible.high)]
    if outside.size == 0:
        return
    value = float(outside[0])
    hint = ""
    for unit, convert in plausible.wrong_units:
        if plausible.low <= convert(value) <= plausible.high:
            hint = f" (in {unit}? {value:g} {unit} is {convert(value):g} {plausible.unit})"
    shown = f"has {value:g}" if np.ndim(values) else f"= {value:g}"
    raise ConfigError(f"{where}: key '{key}' {shown}, outside {plausible.low:g}..{plausible.high:g} "
                      f"{plausible.unit}, the plausible range for one cell{hint}")


def _quantity(doc: dict, key: str, where: str, *, table: str = "", default: float | None = None) -> float:
    """A finite number under `key` of `doc` (the [`table`], if given) within its range in `_PLAUSIBLE`."""
    value = _number(doc, key, where, minimum=None, default=default)
    _check_plausible(value, f"{table}.{key}" if table else key, where)
    return value


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


def _load_ocv(doc: dict, where: str) -> dict:
    """The [ocv] table as CellParams fields: a table over SOC 0..1 of plausible, non-decreasing volts."""
    ocv = _table(doc, "ocv", where)
    if ocv is None:
        raise ConfigError(f"{where}: missing table '[ocv]' with 'soc' and 'volts' lists")
    soc, volts = _soc_table(ocv, "ocv", "volts", where)
    if soc[0] > 0 or soc[-1] < 1:
        # The model reads SOC 0..1; beyond the table's ends the OCV would be held flat without notice.
        raise ConfigError(f"{where}: key 'ocv.soc' covers SOC {soc[0]:g}..{soc[-1]:g}; expected a table "
                          "from 0 to 1 (a full discharge to a full charge)")
    _check_plausible(volts, "ocv.volts", where)
    if np.any(np.diff(volts) < 0):
        raise ConfigError(f"{where}: key 'ocv.volts' must not decrease with SOC")
    fields = {"ocv_soc": soc, "ocv_v": volts,
              "ocv_reference_c": _quantity(ocv, "reference_c", where, table="ocv", default=25.0)}
    if "dv_dt_v_per_k" in ocv:
        dv_dt = _numbers(ocv, "dv_dt_v_per_k", where)
        if dv_dt.size != soc.size:
            raise ConfigError(f"{where}: key 'ocv.dv_dt_v_per_k' has {dv_dt.size} points, "
                              f"'ocv.soc' {soc.size}; expected equal lengths")
        _check_plausible(dv_dt, "ocv.dv_dt_v_per_k", where)
        fields["ocv_dv_dt_v_per_k"] = dv_dt
    return fields


def _load_rc(doc: dict, where: str) -> dict:
    rcs = doc.get("rc", [])
    if not isinstance(rcs, list) or not 1 <= len(rcs) <= 3 or not all(isinstance(rc, dict) for rc in rcs):
        raise ConfigError(f"{where}: key 'rc' expected 1 to 3 [[rc]] entries with r_ohm and c_f")
    for i, rc in enumerate(rcs):
        _check_keys(rc, {"r_ohm", "c_f"}, f"{where} [[rc]] #{i + 1}", "rc.")
    return {"rc_r_ohm": tuple(_quantity(rc, "r_ohm", f"{where} [[rc]] #{i + 1}", table="rc")
                              for i, rc in enumerate(rcs)),
            "rc_c_f": tuple(_number(rc, "c_f", f"{where} [[rc]] #{i + 1}") for i, rc in enumerate(rcs))}


def _load_optional_tables(doc: dict, where: str) -> dict:
    """[resistance], [hysteresis] and [thermal] as CellParams fields; an absent table leaves the defaults."""
    fields: dict = {}
    resistance = _table(doc, "resistance", where)
    if resistance is not None:
        if "soc" in resistance or "factor" in resistance:
            r_soc, r_factor = _soc_table(resistance, "resistance", "factor", where)
            if np.any(r_factor <= 0):
                raise ConfigError(f"{where}: key 'resistance.factor' must be > 0 everywhere")
            fields.update(r_factor_soc=r_soc, r_factor=r_factor)
        fields.update(
            activation_energy_j_per_mol=_quantity(resistance, "activation_energy_j_per_mol", where,
                                                  table="resistance", default=0.0),
            resistance_reference_c=_quantity(resistance, "reference_c", where, table="resistance", default=25.0))
    hysteresis = _table(doc, "hysteresis", where)
    if hysteresis is not None:
        fields.update(hysteresis_v=_quantity(hysteresis, "volts", where, table="hysteresis"),
                      hysteresis_rate=_number(hysteresis, "rate", where, strict=False))
    thermal = _table(doc, "thermal", where)
    if thermal is not None:
        fields.update(
            heat_capacity_j_per_k=_quantity(thermal, "heat_capacity_j_per_k", where, table="thermal"),
            h_ambient_w_per_k=_quantity(thermal, "h_ambient_w_per_k", where, table="thermal"),
            h_neighbour_w_per_k=_quantity(thermal, "h_neighbour_w_per_k", where, table="thermal", default=0.0))
    return fields


def _check_specific_energy(cell: CellParams, where: str) -> None:
    """Capacity against the mass the heat capacity allows: catches a capacity in mAh that is still below
    the largest cells' Ah (1500 mAh read as 1500 Ah)."""
    mean_ocv_v = float(np.sum(np.diff(cell.ocv_soc) * (cell.ocv_v[1:] + cell.ocv_v[:-1]) / 2))
    max_mass_kg = cell.heat_capacity_j_per_k / _MIN_SPECIFIC_HEAT_J_PER_KG_K
    wh_per_kg = cell.capacity_ah * mean_ocv_v / max_mass_kg
    if wh_per_kg <= _MAX_SPECIFIC_ENERGY_WH_PER_KG:
        return
    hint = (f" (in mAh? {cell.capacity_ah:g} mAh is {cell.capacity_ah / 1000:g} Ah)"
            if wh_per_kg / 1000 <= _MAX_SPECIFIC_ENERGY_WH_PER_KG else "")
    raise ConfigError(
        f"{where}: key 'capacity_ah' = {cell.capacity_ah:g} at a mean OCV of {mean_ocv_v:.2f} V in a cell of "
        f"at most {max_mass_kg * 1000:.3g} g (from 'thermal.heat_capacity_j_per_k' = {cell.heat_capacity_j_per_k:g} "
        f"J/K) is {wh_per_kg:,.0f} Wh/kg; expected at most {_MAX_SPECIFIC_ENERGY_WH_PER_KG:g} Wh/kg, "
        f"about three times the best cells{hint}")


def load_cell(path: str | Path) -> CellParams:
    """Load and validate a cell file. Errors name the file and the key."""
    path = Path(path)
    doc = read_toml(path, "cell")
    where = str(path)
    _check_keys(doc, _TOP_KEYS, where)
    ocv = _load_ocv(doc, where)
    rc = _load_rc(doc, where)
    optional = _load_optional_tables(doc, where)
    v_min_v = _quantity(doc, "v_min_v", where, default=float(ocv["ocv_v"][0]))
    v_max_v = _quantity(doc, "v_max_v", where, default=float(ocv["ocv_v"][-1]))
    if not v_min_v < v_max_v:
        raise ConfigError(f"{where}: key 'v_min_v' = {v_min_v} must be below 'v_max_v' = {v_max_v}")
    cell = CellParams(
        name=str(doc.get("name", path.stem)),
        capacity_ah=_quantity(doc, "capacity_ah", where),
        r0_ohm=_quantity(doc, "r0_ohm", where),
        v_min_v=v_min_v,
        v_max_v=v_max_v,
        **ocv, **rc, **optional,
    )
    if optional.get("heat_capacity_j_per_k") is not None:
        _check_specific_energy(cell, where)
    return cell
