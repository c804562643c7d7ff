"""A measurement with limits, as OpenHTF and HardPy keep them: value, unit, limits and the margin to them.

A measurement travels as JUnit properties (`measure:<name>`, `unit:<name>`, `low:<name>`, `high:<name>`,
`margin:<name>`), so JUnit readers see it, and the report rebuilds it from the same properties, including
across pytest-xdist workers.
"""
from __future__ import annotations

from dataclasses import dataclass

# A margin below this share of the allowed span (or of the limit, with one limit) passes but is news.
TIGHT_FRACTION = 0.05
_FIELDS = ("measure", "unit", "low", "high", "margin")


@dataclass(frozen=True)
class Measurement:
    name: str
    value: float
    low: float | None = None
    high: float | None = None
    unit: str = ""

    @property
    def margin(self) -> float | None:
        """Distance to the nearest limit, in the measurement's unit; negative when outside."""
        margins = [m for m in ((self.value - self.low) if self.low is not None else None,
                               (self.high - self.value) if self.high is not None else None) if m is not None]
        return min(margins) if margins else None

    @property
    def passed(self) -> bool:
        """Inside its limits (a NaN value never is)."""
        margin = self.margin
        return margin is None or margin >= 0

    @property
    def margin_fraction(self) -> float | None:
        """The margin as a share of the allowed span (both limits) or of the one limit's size; None if no scale."""
        margin = self.margin
        if margin is None:
            return None
        if self.low is not None and self.high is not None:
            scale = self.high - self.low
        else:
            scale = abs(self.low if self.low is not None else self.high)
        return margin / scale if scale > 0 else None

    @property
    def tight(self) -> bool:
        """Inside the limits, but by less than TIGHT_FRACTION of the span (or of the one limit's size)."""
        fraction = self.margin_fraction
        return fraction is not None and 0 <= fraction < TIGHT_FRACTION

    def limits_text(self) -> str:
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high}] {self.unit}".strip()

    def describe(self) -> str:
        text = f"{self.name} = {self.value:.6g} {self.unit}".strip() + f" in {self.limits_text()}"
        return text if self.margin is None else f"{text} (margin {self.margin:.6g} {self.unit})".rstrip()

    def properties(self) -> list[tuple[str, float | str]]:
        """The JUnit properties that carry this measurement (numbers stay numbers)."""
        props = [(f"measure:{self.name}", self.value)]
        if self.unit:
            props.append((f"unit:{self.name}", self.unit))
        if self.low is not None:
            props.append((f"low:{self.name}", self.low))
        if self.high is not None:
            props.append((f"high:{self.name}", self.high))
        if self.margin is not None:
            props.append((f"margin:{self.name}", self.margin))
        return props


def from_properties(properties) -> list[Measurement]:
    """The measurements among `(name, value)` properties, in the order they were first recorded."""
    fields: dict[str, dict] = {}
    for key, value in properties:
        kind, _, name = str(key).partition(":")
        if kind in _FIELDS and name:
            fields.setdefault(name, {})[kind] = value
    return [Measurement(name, _number(f["measure"]), _number(f.get("low")), _number(f.get("high")),
                        str(f.get("unit", "")))
            for name, f in fields.items() if "measure" in f]


def _number(value) -> float | None:
    return None if value is None else float(value)
