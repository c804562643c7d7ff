"""A PNG of one test's trace: current, cell voltages, temperature, SOC and BMS state, with markers.

Markers: red where the BMS enters FAULT, orange where the contactors open (a trip), grey dotted where the
test injected something (the trace's events). Long traces are drawn from min/max per bucket, so a 1 ms
current spike in an hour still shows.

Limits: needs matplotlib (the optional extra `plot`); without it `plot_trace` returns False and the report
says so. Draws off-screen (Agg backend), never opens a window.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hil.protocol import BmsState
from hil.trace import read_events, read_trace

MISSING_NOTE = "plots not drawn: matplotlib is not installed (pip install 'hil-bms[plot]')"
# Points per line before min/max decimation; a 1000 px wide plot cannot show more.
MAX_POINTS = 4000
# The cell emulator's output is drawn where it is at least this far from the model's cell (a forced channel, a
# sense fault): below it, the line would lie on the model's.
OUTPUT_DEPARTS_V = 0.001
# "NONE" is what the trace holds before the first BMS_Status frame.
STATE_ORDER = ("NONE",) + tuple(state.name for state in BmsState)


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def markers(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Times the BMS entered FAULT, and times its contactors opened, from a trace's columns."""
    t = data["time_s"]
    fault = data["bms_state"] == "FAULT"
    closed = data["contactors_closed"] > 0.5
    fault_s = t[1:][fault[1:] & ~fault[:-1]]
    trip_s = t[1:][closed[:-1] & ~closed[1:]]
    return fault_s, trip_s


def output_departures(data: dict[str, np.ndarray], side: str) -> np.ndarray | None:
    """The cell emulator's highest (`side` "max") or lowest output where it departs from the model's cell (a
    forced channel, a sense fault), NaN elsewhere; None if it never does. That is the voltage the BMS judged;
    where the two coincide, a second line would only hide the model's."""
    output = data[f"output_v_{side}"]
    departs = np.abs(output - data[f"cell_v_{side}"]) >= OUTPUT_DEPARTS_V
    return np.where(departs, output, np.nan) if departs.any() else None


# The bench marks each load it applies ("load 8 A", "profile bbu-ride-through (60 s) in W"): the unit of the
# trace's demand column, which holds amperes or watts.
_LOAD_EVENT = re.compile(r"^(?:load (?P<demand>\S+)|profile .+ in) (?P<unit>A|W)\b")


def demand_unit(events: list[tuple[float, str]]) -> str:
    """The unit of the demand column from the trace's load events: "A", "W", or "A, then W" for a trace that
    changed kind (in the order applied). A zero load (the safe state's) is either; with none other, "A"."""
    units: list[str] = []
    for _, text in events:
        match = _LOAD_EVENT.match(text)
        if match and match["demand"] != "0" and match["unit"] not in units:
            units.append(match["unit"])
    return ", then ".join(units) or "A"


def event_labels(events: list[tuple[float, str]], span_s: float, *, cluster_frac: float = 0.015,
                 max_chars: int = 40) -> list[tuple[float, str]]:
    """One short label per cluster of events closer than `cluster_frac` of the plot's time span.

    Labels are written vertically in a strip a few characters wide: the safe state's three confirmations
    within 0.2 s, or a long sentence, would print over each other. A label is the first event's text up to
    its " at t=" detail, cut at `max_chars`, plus how many more the cluster holds; the events file keeps
    every word.
    """
    labels: list[tuple[float, str]] = []
    first, count = "", 0  # the open cluster's first label and how many events joined it
    for x, text in events:
        if labels and x - labels[-1][0] <= cluster_frac * span_s:
            count += 1
            labels[-1] = (labels[-1][0], f"{first} (+{count} more)")
            continue
        first = text.split(" at t=")[0]
        first = first if len(first) <= max_chars else first[:max_chars - 1] + "…"
        labels.append((x, first))
        count = 0
    return labels


def _decimate(t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most about MAX_POINTS points that keep every bucket's minimum and maximum."""
    if t.size <= MAX_POINTS:
        return t, y
    per_bucket = int(np.ceil(t.size / (MAX_POINTS // 2)))
    n = (t.size // per_bucket) * per_bucket
    buckets = y[:n].reshape(-1, per_bucket)
    times = t[:n:per_bucket]
    lo, hi = np.fmin.reduce(buckets, axis=1), np.fmax.reduce(buckets, axis=1)  # NaN only where all are
    return np.repeat(times, 2), np.column_stack((lo, hi)).ravel()


def plot_trace(trace_path: str | Path, png_path: str | Path, title: str = "", verdict: str = "") -> bool:
    """Draw `trace_path` (a trace CSV) to `png_path`; False (and no file) when matplotlib is missing.
    `verdict` ("passed", or "FAILED: why") goes under the title, in red for a failure."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    data = read_trace(trace_path)
    events = read_events(trace_path)
    t = data["time_s"]
    fig, axes = plt.subplots(5, 1, sharex=True, figsize=(10, 8.5), dpi=90,
                             gridspec_kw={"height_ratios": [3, 3, 2, 2, 1.4]})
    try:
        ax_i, ax_v, ax_t, ax_soc, ax_state = axes
        ax_i.plot(*_decimate(t, data["pack_current_a"]), color="tab:blue", lw=0.8, label="pack current")
        ax_i.set_ylabel("current (A)")
        ax_demand = ax_i.twinx()
        ax_demand.plot(*_decimate(t, data["demand"]), color="0.55", lw=0.6, ls="--", label="demand")
        ax_demand.set_ylabel(f"demand ({demand_unit(events)})", color="0.45")
        for column, colour in (("cell_v_max", "tab:red"), ("cell_v_mean", "tab:gray"), ("cell_v_min", "tab:blue")):
            ax_v.plot(*_decimate(t, data[column]), color=colour, lw=0.8, label=column.replace("cell_v_", ""))
        for side, colour in (("max", "darkviolet"), ("min", "teal")):
            output = output_departures(data, side)
            if output is not None:
                ax_v.plot(*_decimate(t, output), color=colour, lw=1.0, ls="--", label=f"output {side}")
        ax_v.set_ylabel("cell (V)")
        ax_v.legend(loc="upper right", fontsize=7, ncol=3)
        ax_t.plot(*_decimate(t, data["temperature_max_c"]), color="tab:orange", lw=0.8)
        ax_t.set_ylabel("max temp (°C)")
        ax_soc.plot(*_decimate(t, 100 * data["soc_true"]), color="k", lw=0.8, label="true")
        ax_soc.plot(*_decimate(t, 100 * data["soc_bms"]), color="tab:green", lw=0.8, label="BMS")
        ax_soc.set_ylabel("SOC (%)")
        ax_soc.legend(loc="upper right", fontsize=7, ncol=2)
        _plot_state(ax_state, t, data)
        ax_state.set_xlabel("time (s)")
        fault_s, trip_s = markers(data)
        for ax in axes:
            ax.grid(True, lw=0.3, alpha=0.6)
            for x in fault_s:
                ax.axvline(x, color="red", lw=1.2)
            for x in trip_s:
                ax.axvline(x, color="darkorange", lw=1.0, ls="--")
            for x, _ in events:
                ax.axvline(x, color="0.35", lw=0.8, ls=":")
        span_s = float(t[-1] - t[0]) if t.size > 1 else 0.0
        for x, text in event_labels(events, span_s):
            ax_i.annotate(text, (x, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=6,
                          va="top", ha="right", color="0.25")
        handles = [plt.Line2D([], [], color="red", lw=1.2, label="BMS FAULT"),
                   plt.Line2D([], [], color="darkorange", lw=1.0, ls="--", label="contactors open"),
                   plt.Line2D([], [], color="0.35", lw=0.8, ls=":", label="injected event")]
        # Above the plot, where it cannot cover the event labels that hang from the top of this axis.
        ax_i.legend(handles=ax_i.get_lines()[:1] + ax_demand.get_lines()[:1] + handles, loc="lower left",
                    bbox_to_anchor=(0.0, 1.0), fontsize=7, ncol=5, frameon=False, borderaxespad=0.2)
        for ax in (ax_i, ax_demand, ax_v, ax_t, ax_soc):
            ax.ticklabel_format(axis="y", useOffset=False)  # 25.006 °C, not 0.006 with "+2.5e1" above
        fig.suptitle(title or Path(trace_path).stem, fontsize=10, y=0.995)
        if verdict:  # between the title and the legend row above the first axes
            fig.text(0.5, 0.968, verdict, ha="center", va="top", fontsize=8,
                     color="firebrick" if verdict.startswith("FAILED") else "darkgreen")
        # Fixed margins: tight_layout would cost more than drawing the plot.
        fig.subplots_adjust(left=0.08, right=0.92, top=0.925, bottom=0.06, hspace=0.12)
        fig.savefig(png_path)
    finally:
        plt.close(fig)
    return True


def _plot_state(ax, t: np.ndarray, data: dict[str, np.ndarray]) -> None:
    """BMS state as a step line over the states that occur, with closed contactors shaded."""
    states = data["bms_state"]
    seen = [s for s in STATE_ORDER if s in set(states)] + sorted(set(states) - set(STATE_ORDER))
    level = {s: i for i, s in enumerate(seen)}
    ax.step(t, [level[s] for s in states], where="post", color="k", lw=0.8)
    ax.set_yticks(range(len(seen)), seen, fontsize=7)
    ax.set_ylim(-0.5, max(len(seen) - 0.5, 0.5))
    ax.fill_between(t, -0.5, len(seen) - 0.5, where=data["contactors_closed"] > 0.5, step="post",
                    color="tab:green", alpha=0.12, lw=0, label="contactors closed")
    ax.legend(loc="upper right", fontsize=7)
