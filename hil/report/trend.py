"""`hil trend RUN RUN RUN...`: what a series of runs (a nightly job's, say) shows that two runs cannot.

`hil compare` judges one run against one baseline. A margin that loses a little each night never trips it, and
a test that fails one night in five looks fixed the next morning. Given a series of runs (report folders or JUnit
XML files), taken in the order they ran (their JUnit timestamps; as given with `--as-given`, or where a run says
no time), `hil trend` lists:

- DRIFT: a measurement whose margin to its limits fell steadily: the median margin over the last third of the
  runs is more than `--max-margin-loss` of the limits' scale below the median over the first third (with two or
  three runs, the last run against the first). Medians, so one noisy night neither raises it nor hides it. Only
  the runs since its limits last changed count (a spec edit makes the margins measure something else);
- EDGE: a measurement whose margin in the last run is below 5 % of its limits' scale, or that is outside them;
- FLAKY: a test that both passed and failed among runs of one build (the `hil:firmware` its BMS said it ran, or
  none said): the code did not change, so its outcome depends on the bench, the seed or the machine's load.

`--html DIR` writes DIR/index.html with each flagged measurement's values over the runs and its limits, plotted
(matplotlib), and a table of every measurement. Exit 0 when nothing is flagged, 1 when something is, 2 when a
file cannot be read as a JUnit report.
"""
from __future__ import annotations

import html
import json
import math
import statistics
from collections import Counter
from pathlib import Path

from hil.errors import HilError
from hil.report.compare import DEFAULT_MAX_MARGIN_LOSS, check_margin_loss, load_run, load_started, readable
from hil.report.junit import Case
from hil.report.measurements import Measurement
from hil.report.results import describe_firmware, firmware_counts

NO_BUILD = "(no build said)"


def label(path: str | Path) -> str:
    """A run's name as a person knows it: its report folder, or its JUnit file."""
    path = Path(path)
    return str(path.parent if path.name == "junit.xml" else path)


def trend(runs: list[tuple[str, dict[str, Case]]], max_margin_loss: float = DEFAULT_MAX_MARGIN_LOSS) -> dict:
    """The series of `runs` ((label, cases), oldest first), as plain data (the JSON `hil trend --json` prints)."""
    if len(runs) < 2:
        raise HilError(f"{len(runs)} run given; expected two or more, oldest first (e.g. reports/nightly-*)")
    series: dict[tuple[str, str], list[tuple[int, Measurement]]] = {}
    for index, (_, cases) in enumerate(runs):
        for test_id, case in cases.items():
            for name, measurement in case.measurements.items():
                series.setdefault((test_id, name), []).append((index, measurement))
    drift, edge, table = [], [], []
    for (test_id, name), points in series.items():
        last = points[-1][1]
        # The runs since the limits last changed: before that, the margins measured something else.
        since = [(i, m) for i, m in points if (m.low, m.high) == (last.low, last.high)]
        item = {"test": test_id, "name": name, "unit": last.unit, "limits": last.limits_text(),
                "low": last.low, "high": last.high, "runs": [i for i, _ in since],
                "values": [m.value for _, m in since], "margins": [m.margin_fraction for _, m in since],
                "passed_last": last.passed}
        table.append(item)
        in_last_run = points[-1][0] == len(runs) - 1   # a measurement the last run no longer has is history
        if in_last_run and last.margin_fraction is not None and (not last.passed or last.tight):
            edge.append(item)
        loss = _margin_loss([m for m in item["margins"] if m is not None and not math.isnan(m)])
        if loss is not None and loss > max_margin_loss:
            drift.append(item | {"margin_loss": loss})
    flaky = _flaky(runs)
    return {"runs": [{"label": name, "tests": len(cases),
                      "firmware": describe_firmware(firmware_counts(c.firmware for c in cases.values()))}
                     for name, cases in runs],
            "measurements": len(series), "max_margin_loss": max_margin_loss,
            "drift": drift, "edge": edge, "flaky": flaky, "table": table,
            "passed": not (drift or edge or flaky)}


def _margin_loss(margins: list[float]) -> float | None:
    """How much of the limits' scale the margin lost, from the first third of the runs to the last (medians);
    the last against the first for two or three runs; None for fewer than two."""
    if len(margins) < 2:
        return None
    third = max(1, len(margins) // 3)
    return statistics.median(margins[:third]) - statistics.median(margins[-third:])


def _flaky(runs: list[tuple[str, dict[str, Case]]]) -> list[dict]:
    """Tests that passed in some runs and failed in others of the same build."""
    outcomes: dict[tuple[str, str], list[tuple[int, Case]]] = {}
    for index, (_, cases) in enumerate(runs):
        for test_id, case in cases.items():
            if case.outcome != "skipped":
                outcomes.setdefault((test_id, case.firmware or NO_BUILD), []).append((index, case))
    flaky = []
    for (test_id, build), seen in outcomes.items():
        failed = [(i, case) for i, case in seen if case.failed]
        if failed and len(failed) < len(seen):
            flaky.append({"test": test_id, "firmware": build, "runs": len(seen), "failed_runs": [i for i, _ in failed],
                          "message": failed[-1][1].message})
    return flaky


def describe(result: dict) -> str:
    lines = [f"run {i + 1:<5} {run['label']} ({run['tests']} tests; firmware {run['firmware']})"
             for i, run in enumerate(result["runs"])]
    for item in result["drift"]:
        margins = [m for m in item["margins"] if m is not None and not math.isnan(m)]
        lines.append(f"DRIFT     {item['test']}: {item['name']} margin {_pct(margins[0])} -> {_pct(margins[-1])} of "
                     f"its limits' scale over {len(margins)} runs, lost {_pct(item['margin_loss'])} (allowed "
                     f"{_pct(result['max_margin_loss'])}); values {_values(item)}; limits {item['limits']}")
    for item in result["edge"]:
        margin = item["margins"][-1]
        where = f"margin {_pct(margin)} of its limits' scale" if item["passed_last"] else "outside its limits"
        value = f"{readable(item['values'][-1])} {item['unit']}".strip()
        lines.append(f"EDGE      {item['test']}: {item['name']} = {value} in {item['limits']} in the last run, {where}")
    for item in result["flaky"]:
        failed = ", ".join(str(i + 1) for i in item["failed_runs"])
        lines.append(f"FLAKY     {item['test']}: failed in run(s) {failed} of {item['runs']} runs of firmware "
                     f"{item['firmware']}, passed in the others: {item['message']}")
    counts = (f"{len(result['drift'])} drifting, {len(result['edge'])} at an edge, {len(result['flaky'])} flaky "
              f"test(s)")
    verdict = "nothing flagged" if result["passed"] else counts
    lines.append(f"trend     {len(result['runs'])} runs, {result['measurements']} measurements: {verdict}")
    return "\n".join(lines)


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.1f} %"


def _values(item: dict) -> str:
    unit = f" {item['unit']}" if item["unit"] else ""
    return ", ".join(readable(v) for v in item["values"]) + unit


def write_html(result: dict, out_dir: str | Path) -> Path:
    """DIR/index.html: each flagged measurement plotted over the runs against its limits, then every
    measurement's values in a table. Plots need matplotlib; without it the page has the tables only."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = [run["label"] for run in result["runs"]]
    flagged = {(item["test"], item["name"]): kind for kind in ("edge", "drift") for item in result[kind]}
    parts = [f"<h1>Trend over {len(labels)} runs</h1><ol>"
             + "".join(f"<li>{html.escape(run['label'])}: {run['tests']} tests, firmware "
                       f"{html.escape(run['firmware'])}</li>" for run in result["runs"]) + "</ol>",
             f"<pre>{html.escape(describe(result))}</pre>"]
    for n, item in enumerate(i for i in result["table"] if (i["test"], i["name"]) in flagged):
        png = f"trend-{n}.png"
        if _plot(item, labels, out / png):
            parts.append(f"<h3>{html.escape(flagged[(item['test'], item['name'])].upper())} "
                         f"{html.escape(item['name'])}</h3><p>{html.escape(item['test'])}</p><img src='{png}'>")
    header = "".join(f"<th>{i + 1}</th>" for i in range(len(labels)))
    rows = []
    for item in result["table"]:
        cells = dict(zip(item["runs"], item["values"]))
        rows.append(f"<tr><td>{html.escape(item['test'])}</td><td>{html.escape(item['name'])}</td>"
                    f"<td>{html.escape(item['limits'])}</td>"
                    + "".join(f"<td>{readable(cells[i]) if i in cells else ''}</td>" for i in range(len(labels)))
                    + "</tr>")
    parts.append(f"<h2>Every measurement</h2><table border=1 cellspacing=0><tr><th>test</th><th>measurement</th>"
                 f"<th>limits</th>{header}</tr>{''.join(rows)}</table>")
    index = out / "index.html"
    index.write_text("<!doctype html><meta charset='utf-8'><title>hil trend</title>" + "".join(parts))
    return index


def _plot(item: dict, labels: list[str], png: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([i + 1 for i in item["runs"]], item["values"], "o-", label=item["name"])
    for limit in (item["low"], item["high"]):
        if limit is not None:
            ax.axhline(limit, color="red", linestyle="--", linewidth=1)
    ax.set_xticks(range(1, len(labels) + 1))
    ax.set_xlabel("run")
    ax.set_ylabel(item["unit"])
    ax.set_title(f"{item['name']} (limits {item['limits']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)
    return True


def in_run_order(runs: list[str], as_given: bool = False) -> tuple[list[str], str | None]:
    """`runs` oldest first by when each started (its JUnit timestamp), and a note when that is not the order given;
    as given where `as_given`, or where any run does not say when it started (a glob's order is the names', and
    nightly-10 sorts before nightly-9)."""
    if as_given:
        return runs, None
    started = [load_started(run) for run in runs]
    if any(stamp is None for stamp in started) or len({stamp.tzinfo is None for stamp in started}) > 1:
        return runs, None
    ordered = [run for _, run in sorted(zip(started, runs), key=lambda pair: pair[0])]
    if ordered == runs:
        return runs, None
    return ordered, ("runs taken in the order they ran (their JUnit timestamps), not as given: "
                     + ", ".join(label(run) for run in ordered) + " (--as-given keeps the order given)")


def cmd_trend(args) -> int:
    check_margin_loss(args.max_margin_loss)
    duplicates = [run for run, count in Counter(args.runs).items() if count > 1]
    if duplicates:
        raise HilError(f"{duplicates[0]} given twice; expected each run once")
    runs, note = in_run_order(list(args.runs), args.as_given)
    if note:
        print(note)
    result = trend([(label(run), load_run(run)) for run in runs], args.max_margin_loss)
    print(describe(result))
    if args.html:
        print(f"trend     written to {write_html(result, args.html)}")
    if args.json:
        print(json.dumps({key: value for key, value in result.items() if key != "table"}))
    return 0 if result["passed"] else 1


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "trend", help="a series of runs: margins that drift, measurements at an edge, tests that flake",
        description="Read runs' JUnit XML (files, or report folders with junit.xml), in the order they ran, and list "
                    "measurements whose margin fell steadily (DRIFT) or is at its limit in the last run (EDGE), and "
                    "tests that both passed and failed on one build (FLAKY). Exit 0: nothing flagged; 1: something "
                    "was; 2: a file that is not a JUnit report.")
    parser.add_argument("runs", nargs="+", help="the runs, e.g. reports/nightly-* (taken in the order they ran)")
    parser.add_argument("--max-margin-loss", type=float, default=DEFAULT_MAX_MARGIN_LOSS, metavar="SHARE",
                        help=f"a margin may fall by this share of its limits' scale from the first third of the runs "
                             f"to the last (default {DEFAULT_MAX_MARGIN_LOSS:g})")
    parser.add_argument("--html", metavar="DIR", help="also write DIR/index.html, the flagged measurements plotted")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON, as the last line")
    parser.add_argument("--as-given", action="store_true",
                        help="take the runs in the order given, not by when they ran (their JUnit timestamps)")
    parser.set_defaults(func=cmd_trend)
