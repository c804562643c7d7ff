"""Plot a profile: the whole demand, and a zoom on its fastest edge. Needs matplotlib (extra `plot`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from hil.profiles.base import Profile

# The zoom looks for the largest change within this window (the 10 ms of a job-start edge), and shows
# this many windows either side of it.
_EDGE_WINDOW_S = 0.01
_ZOOM_WINDOWS = 5


def plot_profile(profile: Profile, path: str | Path) -> None:
    """Write a PNG: demand over time (steps, as the loop holds each sample), then the fastest edge."""
    times_s = profile.times_s()
    demand = profile.demand
    label = f"{profile.kind} ({profile.unit})"
    # The Figure API, not pyplot, so plotting never touches a GUI backend or global state.
    figure = Figure(figsize=(10, 6), layout="constrained")
    whole, zoom = figure.subplots(2, 1)
    whole.plot(times_s, demand, drawstyle="steps-post", linewidth=0.8)
    whole.set(title=f"{profile.name}: {profile.description}", xlabel="time (s)", ylabel=label)
    width = min(demand.size - 1, max(1, int(round(_EDGE_WINDOW_S / profile.dt_s))))
    if width > 0:
        changes = demand[width:] - demand[:-width]
        edge = int(np.argmax(np.abs(changes)))
        margin = _ZOOM_WINDOWS * width
        window = slice(max(0, edge - margin), min(demand.size, edge + width + margin + 1))
        zoom.plot(times_s[window], demand[window], drawstyle="steps-post", marker=".")
        zoom.set(title=f"fastest edge: {changes[edge]:+.4g} {profile.unit} within {width * profile.dt_s * 1e3:g} ms "
                       f"from {times_s[edge]:.6g} s",
                 xlabel="time (s)", ylabel=label)
    figure.savefig(path, dpi=100)
