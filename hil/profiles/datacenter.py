"""Data-center battery backup unit (BBU) ride-through on an Open Rack V3 48 V bus (power demand in W).

On grid loss the power supplies hold the bus; once it has sat at 48.5 V for 2 ms the BBU is triggered and
starts within 2 ms more (4 ms in all). It then carries the rack, with repetitive GPU pulse loads of up to
160 % of rated power, for up to 240 s. When the grid returns the supplies take the load back and the BBU
recharges (negative power).
Sources: OCP "Requirements/Considerations of Next Generation ORv3 PSU and Power Shelves" (Aydin, Delta;
Soin, Advanced Energy): BBU trigger at 48.5 V for 2 ms, start within 2 ms, 240 s run time, pulse load limit
raised from 155 % to 160 %, high-power shelves up to 33 kW; ORv3 shelves of 15 kW (DESIGN.md,
"Reference numbers").
"""
from __future__ import annotations

import numpy as np

from hil.profiles.base import Profile, ensure, n_samples


def bbu_ride_through(duration_s: float = 300.0, dt_s: float = 0.001, *, seed: int = 0,
                     rack_power_w: float = 500.0, outage_at_s: float = 1.0, bus_hold_s: float = 0.002,
                     bbu_start_s: float = 0.002, ride_through_s: float = 240.0, load_level: float = 1.0,
                     peak_level: float = 1.6, pulse_s: float = 0.5, pulse_period_s: float = 2.0,
                     recharge_power_w: float = 150.0) -> Profile:
    """Grid lost at `outage_at_s`; the BBU carries the rack for `ride_through_s`, then recharges. Power in W.

    Positive while the BBU carries the rack, negative while it recharges, 0 on standby.
    - `bus_hold_s` 2 ms: the bus sits at 48.5 V before the BBU triggers; `bbu_start_s` 2 ms: a linear ramp
      up to the rack load (the 4 ms of the ORv3 reference).
    - The rack draws `load_level` x `rack_power_w`, with a pulse to `peak_level` (160 %, the ORv3 limit)
      for the last `pulse_s` of every `pulse_period_s`. Pulse width and period are illustrative choices
      (0.5 Hz, inside the AI-training band), not from the specification.
    - `ride_through_s` counts from the BBU start, including its ramp; 240 s is the ORv3 maximum.
    - The grid then returns, and the BBU recharges at `recharge_power_w` until it has taken back the energy
      it gave (losses ignored), then stands by. The recharge power is a bench choice (about 0.5 C).
    `seed` is accepted for the common interface and ignored: this profile has no randomness.

    Scale: the defaults (500 W rated, 800 W pulses) keep the 16S1P 5 Ah bench pack under about 3 C. For
    a whole ORv3 shelf set rack_power_w 15000 (33000 for a high-power rack); for one module of a BBU shelf
    whose k modules share the load, use the shelf power / k. The profile ends at `duration_s`, even
    mid-ride-through or mid-recharge.
    """
    name = "bbu-ride-through"
    ensure(rack_power_w > 0 and recharge_power_w > 0, name, "rack_power_w and recharge_power_w must be > 0 W")
    ensure(min(outage_at_s, bus_hold_s, bbu_start_s, ride_through_s, pulse_s) >= 0, name,
           "times (outage_at_s, bus_hold_s, bbu_start_s, ride_through_s, pulse_s) must be >= 0 s")
    ensure(0 < pulse_period_s and pulse_s <= pulse_period_s, name,
           f"pulse_s ({pulse_s}) must fit in pulse_period_s ({pulse_period_s}), which must be > 0")
    n = n_samples(duration_s, dt_s)
    demand_w = np.zeros(n)
    first = min(n, int(round((outage_at_s + bus_hold_s) / dt_s)))
    last = min(n, first + int(round(ride_through_s / dt_s)))
    period_n = max(1, int(round(pulse_period_s / dt_s)))
    in_pulse = np.arange(last - first) % period_n >= period_n - int(round(pulse_s / dt_s))
    carried = demand_w[first:last]
    carried[:] = np.where(in_pulse, peak_level, load_level) * rack_power_w
    n_start = min(carried.size, max(1, int(round(bbu_start_s / dt_s))))
    if n_start:  # nothing to ramp when the outage comes after the end, or ride_through_s is 0
        carried[:n_start] = np.linspace(0.0, carried[n_start - 1], n_start + 1)[1:]
    energy_j = carried.sum() * dt_s
    n_recharge = int(round(energy_j / recharge_power_w / dt_s))
    demand_w[last:last + n_recharge] = -recharge_power_w
    return Profile(name, "power", dt_s, demand_w,
                   f"BBU ride-through: grid lost at {outage_at_s:g} s, {rack_power_w:g} W rack "
                   f"(pulses {peak_level:.0%}) for {ride_through_s:g} s, then recharge at {recharge_power_w:g} W")
