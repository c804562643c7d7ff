"""The spread of a test's measurements over its repetitions (`--hil-repeat N`): one row per measurement.

Under `--hil-repeat N` each bench test runs N times, the k-th on the rig's seed + k: other sensor noise, other
profile randomness and, where the rig's `[pack]` gives a production spread (`capacity_spread`,
`resistance_spread`, `soc_spread`), another pack drawn from it. One pass proves a margin on one pack; the worst
of N shows how much of it noise and spread eat. Each repetition's
JUnit properties carry its seed (`hil:seed`) and the node id it repeats (`hil:repeat_of`), so the spread is
rebuilt from the records, across pytest-xdist workers too, and any row names the seed to reproduce
(`--set rig.seed=S`).
"""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from hil.report.measurements import Measurement
from hil.report.results import Results, TestResult

SEED_PROPERTY = "hil:seed"
REPEAT_OF_PROPERTY = "hil:repeat_of"
CSV_NAME = "spread.csv"
# low and high are the worst sample's limits (a test may work a limit out from its pack, so they can differ).
CSV_COLUMNS = ("test", "measurement", "unit", "low", "high", "runs", "min", "median", "max", "worst_margin",
               "worst_seed", "failed_seeds")


@dataclass(frozen=True)
class Repeated:
    """One test run under several seeds: its outcome at each."""
    test: str
    outcomes: tuple[tuple[int, str], ...]   # (seed, outcome), in seed order

    @property
    def failed_seeds(self) -> list[int]:
        return [seed for seed, outcome in self.outcomes if outcome not in ("passed", "skipped", "xfailed")]


@dataclass(frozen=True)
class Spread:
    """One measurement of a repeated test over the seeds that recorded it."""
    test: str
    samples: tuple[tuple[int, Measurement], ...]   # (seed, measurement), in seed order

    @property
    def values(self) -> list[float]:
        """The finite values (a NaN, which fails its limits, is counted in `failed_seeds`, not here)."""
        return [m.value for _, m in self.samples if math.isfinite(m.value)]

    def summary(self) -> tuple[float, float, float] | None:
        """(min, median, max) of the values; None if none is finite."""
        values = self.values
        return (min(values), statistics.median(values), max(values)) if values else None

    @property
    def worst(self) -> tuple[int, Measurement]:
        """The sample nearest to (or furthest past) its limits; the first if none has limits."""
        with_margin = [s for s in self.samples if s[1].margin is not None]
        return min(with_margin, key=lambda s: s[1].margin) if with_margin else self.samples[0]

    @property
    def failed_seeds(self) -> list[int]:
        return [seed for seed, m in self.samples if not m.passed]


def _groups(results: Results) -> dict[str, list[tuple[int, TestResult]]]:
    groups: dict[str, list[tuple[int, TestResult]]] = {}
    for result in results.tests.values():
        repeat_of, seed = result.value_of(REPEAT_OF_PROPERTY), result.value_of(SEED_PROPERTY)
        if repeat_of is not None and seed is not None:
            groups.setdefault(str(repeat_of), []).append((int(seed), result))
    return {test: sorted(runs, key=lambda run: run[0]) for test, runs in sorted(groups.items())}


def repeated(results: Results) -> list[Repeated]:
    return [Repeated(test, tuple((seed, r.outcome) for seed, r in runs)) for test, runs in _groups(results).items()]


def spreads(results: Results) -> list[Spread]:
    """Every measurement of every repeated test, in test order, then in the order first recorded."""
    rows = []
    for test, runs in _groups(results).items():
        by_name: dict[str, list[tuple[int, Measurement]]] = {}
        for seed, result in runs:
            for m in result.measurements:
                by_name.setdefault(m.name, []).append((seed, m))
        rows += [Spread(test, tuple(samples)) for samples in by_name.values()]
    return rows


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def write_csv(report_dir: str | Path, rows: list[Spread]) -> Path:
    """`<report_dir>/spread.csv`: a row per measurement of each repeated test (CSV_COLUMNS)."""
    path = Path(report_dir) / CSV_NAME
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            worst_seed, worst = row.worst
            low_median_high = row.summary() or (None, None, None)
            writer.writerow([row.test, worst.name, worst.unit, _number(worst.low), _number(worst.high),
                             len(row.samples), *map(_number, low_median_high), _number(worst.margin), worst_seed,
                             " ".join(map(str, row.failed_seeds))])
    return path
