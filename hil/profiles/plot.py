"""Plot a profile: the whole demand, and a zoom on its steepest load step. Needs matplotlib (extra `plot`)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hil.profiles.base import Profile

# The zoom looks for the largest rise of the load within this window (the 10 ms of a job-start edge), and
# shows this many windows either side of it.
_EDGE_WINDOW_S = 0.01
_ZOOM_WINDOWS = 5


def plot_profile(profile: Profile, path: str | Path) -> None:
    """Write a PNG: demand over time (steps, as the loop holds each sample), then its steepest load step."""
    times_s = profile.times_s()
    demand = profile.demand
    label = f"{profile.kind} ({profile.unit})"
    # The Figure API, not pyplot, so plotting never touches a GUI backend or global state.
    figure = Figure(figsize=(10, 6), layout="constrained")
    whole, zoom = figure.subplots(2, 1)
    whole.plot(times_s, demand, drawstyle="steps-post", linewidth=0.8)
    whole.set_title(textwrap.fill(f"{profile.name}: {profile.description}", 120), fontsize=9)
    whole.set(xlabel="time (s)", ylabel=label)
    width = min(demand.size - 1, max(1, int(round(_EDGE_WINDOW_S / profile.dt_s))))
    if width > 0:
        edge, change = steepest_step(demand, width)
        margin = _ZOOM_WINDOWS * width
        window = slice(max(0, edge - margin), min(demand.size, edge + width + margin + 1))
        zoom.plot(times_s[window], demand[window], drawstyle="steps-post", marker=".")
        kind = "load step" if change > 0 else "fastest edge"
        zoom.set_title(f"steepest {kind}: {change:+.4g} {profile.unit} within {width * profile.dt_s * 1e3:g} ms "
                       f"from {times_s[edge]:.6g} s", fontsize=9)
        zoom.set(xlabel="time (s)", ylabel=label)
    for axes in (whole, zoom):
        axes.ticklabel_format(useOffset=False)  # 240.95 s, not 0.05 with "+2.409e2" in the corner
    figure.savefig(path, dpi=100)


def steepest_step(demand: np.ndarray, width: int) -> tuple[int, float]:
    """Where demand rises most within `width` samples, and by how much: the step that loads the battery
    hardest (a grid loss, a job start, a punch-out), not the larger fall of the load ending. A profile that
    never rises (a charge) gives its largest change either way."""
    changes = demand[width:] - demand[:-width]
    edge = int(np.argmax(changes))
    if changes[edge] <= 0:
        edge = int(np.argmax(np.abs(changes)))
    return edge, float(changes[edge])
