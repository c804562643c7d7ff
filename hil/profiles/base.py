"""The profile interface: demand (current in A, or power in W) at any time, deterministic for a seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Profile:
    """A load demand sampled on a fixed time grid. `kind` is "current" (A) or "power" (W); > 0 discharges.

    Profiles are precomputed for their whole duration, so a real-time loop only indexes an array.
    """
    name: str
    kind: str
    dt_s: float
    demand: np.ndarray
    description: str = ""

    @property
    def duration_s(self) -> float:
        return self.demand.size * self.dt_s

    def at(self, t_s: float) -> float:
        """Demand at `t_s`, held from the sample at or before it; 0 past the end (the load is done)."""
        index = int(t_s / self.dt_s + 1e-9)
        return float(self.demand[index]) if 0 <= index < self.demand.size else 0.0

    def times_s(self) -> np.ndarray:
        return np.arange(self.demand.size) * self.dt_s
