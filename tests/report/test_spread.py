"""The spread over seeds, rebuilt from the records of repeated tests alone."""
import csv
import math

from hil.report.measurements import Measurement
from hil.report.results import Results
from hil.report.spread import REPEAT_OF_PROPERTY, SEED_PROPERTY, repeated, spreads, write_csv


def _run(results: Results, test: str, seed: int, outcome: str, *measurements: Measurement) -> None:
    props = [(SEED_PROPERTY, seed), (REPEAT_OF_PROPERTY, test)] + [p for m in measurements for p in m.properties()]
    results.add(f"{test}[seed={seed}]", "call", outcome, 1.0, properties=props)


def test_worst_margin_names_its_seed_and_a_nan_fails_without_skewing_the_statistics(tmp_path):
    results = Results()
    _run(results, "t.py::test_ov", 3, "passed", Measurement("reaction", 60.0, high=150.0, unit="ms"))
    _run(results, "t.py::test_ov", 1, "passed", Measurement("reaction", 90.0, high=150.0, unit="ms"))
    _run(results, "t.py::test_ov", 2, "failed", Measurement("reaction", math.nan, high=150.0, unit="ms"))
    _run(results, "t.py::test_ov", 4, "error")                      # failed before it measured
    results.add("t.py::test_once", "call", "passed", 1.0)           # not repeated: no spread
    [test] = repeated(results)
    assert test.test == "t.py::test_ov" and [seed for seed, _ in test.outcomes] == [1, 2, 3, 4]
    assert test.failed_seeds == [2, 4]
    [row] = spreads(results)
    assert row.summary() == (60.0, 75.0, 90.0) and row.failed_seeds == [2]
    worst_seed, worst = row.worst
    assert (worst_seed, worst.margin) == (1, 60.0)
    with write_csv(tmp_path, [row]).open(newline="") as f:
        [written] = list(csv.DictReader(f))
    assert written == {"test": "t.py::test_ov", "measurement": "reaction", "unit": "ms", "low": "", "high": "150",
                       "runs": "3", "min": "60", "median": "75", "max": "90", "worst_margin": "60",
                       "worst_seed": "1", "failed_seeds": "2"}


def test_a_measurement_without_limits_has_no_worst_margin(tmp_path):
    results = Results()
    for seed, value in ((5, 2.0), (6, 1.0)):
        _run(results, "t.py::test_soc", seed, "passed", Measurement("soc_error", value, unit="%"))
    [row] = spreads(results)
    assert row.worst[1].margin is None and row.summary() == (1.0, 1.5, 2.0)
    with write_csv(tmp_path, [row]).open(newline="") as f:
        [written] = list(csv.DictReader(f))
    assert (written["worst_margin"], written["failed_seeds"]) == ("", "")
