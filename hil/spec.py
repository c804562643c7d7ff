"""BMS specs: what the BMS must do (`fixtures/specs/*.toml`). The suite checks the DUT against them.

A spec is written by the team that owns the BMS and pack; it holds numbers only. Every protection has a
threshold, a tolerance band the trip must fall in, and a maximum reaction time from crossing the limit to
the contactors reporting open.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hil.datafile import read_toml
from hil.errors import ConfigError

PROTECTIONS = ("cell_ov", "cell_uv", "discharge_oc", "charge_oc", "cell_ot", "cell_ut")
_PROTECTION_KEYS = {"threshold", "tolerance", "max_reaction_ms", "unit"}


@dataclass(frozen=True)
class Protection:
    name: str
    threshold: float
    tolerance: float
    max_reaction_ms: float
    unit: str

    @property
    def low(self) -> float:
        return self.threshold - self.tolerance

    @property
    def high(self) -> float:
        return self.threshold + self.tolerance


@dataclass(frozen=True)
class Spec:
    path: Path
    data: dict
    protections: dict

    def section(self, name: str) -> dict:
        if name not in self.data:
            raise ConfigError(f"{self.path}: missing table [{name}]")
        return self.data[name]

    def value(self, dotted: str) -> float:
        table = self.data
        for key in dotted.split("."):
            if not isinstance(table, dict) or key not in table:
                raise ConfigError(f"{self.path}: missing key '{dotted}'")
            table = table[key]
        return table


def _num(table: dict, key: str, where: str) -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: key '{key}' = {value!r}, expected a number")
    return float(value)


def load_spec(path: str | Path) -> Spec:
    path = Path(path)
    data = read_toml(path, "spec")
    tables = data.get("protections")
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: missing table [protections.<name>] for {list(PROTECTIONS)}")
    protections = {}
    for name, table in tables.items():
        where = f"{path} [protections.{name}]"
        if name not in PROTECTIONS:
            raise ConfigError(f"{path}: unknown protection '{name}'; expected one of {list(PROTECTIONS)}")
        unknown = set(table) - _PROTECTION_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(_PROTECTION_KEYS)}")
        tolerance = _num(table, "tolerance", where)
        if tolerance < 0:
            raise ConfigError(f"{where}: key 'tolerance' = {tolerance}, expected >= 0")
        protections[name] = Protection(name, _num(table, "threshold", where), tolerance,
                                       _num(table, "max_reaction_ms", where), str(table.get("unit", "")))
    return Spec(path.resolve(), data, protections)
