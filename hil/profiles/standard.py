"""Standard test profiles: HPPC pulses, CC-CV charge, constant power, constant current and rest.

Defaults fit the 16S1P 5 Ah bench pack (about 58 V nominal, 1 C = 5 A = 290 W) and stay within 2-3 C.
Charge is negative (current > 0 discharges). These profiles have no randomness: `seed` is accepted for
the common interface and ignored.
"""
from __future__ import annotations

import math

import numpy as np

from hil.profiles.base import BENCH_PACK, Profile, ensure, n_samples, piecewise


def hppc(duration_s: float = 4020.0, dt_s: float = 0.1, *, seed: int = 0, capacity_ah: float = BENCH_PACK.capacity_ah,
         pulse_current_a: float = 10.0, regen_ratio: float = 0.75, pulse_s: float = 10.0,
         pulse_rest_s: float = 40.0, soc_step: float = 0.1, step_c: float = 1.0,
         rest_s: float = 3600.0, charge_steps: int = 0) -> Profile:
    """Hybrid pulse power characterisation (HPPC), repeated until `duration_s`. Current in A.

    Each SOC step: a `pulse_s` 10 s discharge at `pulse_current_a`, `pulse_rest_s` 40 s rest, a 10 s
    regenerative (charge) pulse at `regen_ratio` 75 % of the discharge current, then a constant-current
    discharge of `soc_step` 10 % of capacity at `step_c` (C1/1) and a `rest_s` 1 h rest.
    Source: FreedomCAR Battery Test Manual for Power-Assist Hybrid Electric Vehicles, DOE/ID-11069 (2003),
    HPPC test. `pulse_current_a` 10 A (2 C of the bench pack) is a bench choice; the manual derives it
    from the device's rated maximum. The default duration is one SOC step; nine steps cover 90 % to 10 %.
    `charge_steps` > 0 makes the last that many steps charge steps back up (`soc_step` at `step_c`, then the
    rest, no pulses): their rests lie on the OCV's charge branch, from which `hil model fit` reads the
    hysteresis. Nine discharge and eight charge steps: `--duration 67860 --set charge_steps=8`.
    Limit: open loop, so nothing stops a pulse at the voltage limit; the closed loop and BMS do that.
    """
    name = "hppc"
    ensure(min(capacity_ah, pulse_current_a, step_c) > 0, name,
           "capacity_ah, pulse_current_a and step_c must be > 0")
    ensure(min(pulse_s, pulse_rest_s, rest_s, regen_ratio) >= 0 and 0 < soc_step <= 1, name,
           "times and regen_ratio must be >= 0, and soc_step between 0 and 1")
    n = n_samples(duration_s, dt_s)
    step_current_a = step_c * capacity_ah
    step_s = soc_step * capacity_ah * 3600.0 / step_current_a
    levels_a = [pulse_current_a, 0.0, -regen_ratio * pulse_current_a, step_current_a, 0.0]
    durations_s = [pulse_s, pulse_rest_s, pulse_s, step_s, rest_s]
    ensure(charge_steps >= 0, name, "charge_steps must be >= 0")
    steps = math.ceil(duration_s / sum(durations_s))
    discharge_steps = max(0, steps - charge_steps)
    levels = [*np.tile(levels_a, discharge_steps), *np.tile([-step_current_a, 0.0], charge_steps)]
    durations = [*np.tile(durations_s, discharge_steps), *np.tile([step_s, rest_s], charge_steps)]
    demand_a = piecewise(np.array(levels), np.array(durations), dt_s, n)
    return Profile(name, "current", dt_s, demand_a,
                   f"HPPC: {pulse_s:g} s pulses of {pulse_current_a:g} A / -{regen_ratio * pulse_current_a:g} A, "
                   f"{soc_step:.0%} SOC steps at {step_c:g} C, {rest_s:g} s rests")


def cccv(duration_s: float = 9000.0, dt_s: float = 1.0, *, seed: int = 0, capacity_ah: float = BENCH_PACK.capacity_ah,
         charge_c: float = 0.5, start_soc: float = 0.1, cv_start_soc: float = 0.8,
         cutoff_c: float = 0.05) -> Profile:
    """Constant-current, constant-voltage charge, open loop. Current in A, negative (charging).

    CC at `charge_c` from `start_soc` until `cv_start_soc`, then the CV phase approximated by an
    exponential taper from the CC current to `cutoff_c`, with the time constant that returns exactly the
    remaining charge to 100 % SOC; then 0 (charger off).
    Limits, plainly: a true CV phase holds the pack at its end-of-charge voltage and lets the current fall
    as the cells fill, which needs the closed loop (the harness regulating voltage, not this profile).
    Where CV starts depends on rate, resistance and temperature; `cv_start_soc` 0.8 is an estimate for
    NMC at 0.5 C. `cutoff_c` 0.05 C is the CV termination of IEC 61960-3 capacity tests (which charge CC at
    0.2 C; 0.5 C here is a bench choice to finish in under 3 h). CC then takes 5040 s and the taper 3680 s.
    """
    name = "cccv"
    ensure(capacity_ah > 0 and charge_c > cutoff_c > 0, name,
           f"need capacity_ah > 0 and charge_c ({charge_c}) > cutoff_c ({cutoff_c}) > 0")
    ensure(0 <= start_soc < 1 and 0 < cv_start_soc < 1, name, "start_soc and cv_start_soc must be in 0-1")
    n = n_samples(duration_s, dt_s)
    cc_a, cutoff_a = charge_c * capacity_ah, cutoff_c * capacity_ah
    cc_s = max(0.0, cv_start_soc - start_soc) * capacity_ah * 3600.0 / cc_a
    remaining_as = (1.0 - max(start_soc, cv_start_soc)) * capacity_ah * 3600.0
    # The integral of cc_a * exp(-t / tau) until it reaches cutoff_a is tau * (cc_a - cutoff_a).
    tau_s = remaining_as / (cc_a - cutoff_a)
    cv_s = tau_s * math.log(cc_a / cutoff_a)
    t_s = np.arange(n) * dt_s
    demand_a = np.where(t_s < cc_s, -cc_a, -cc_a * np.exp(-(t_s - cc_s) / tau_s))
    demand_a[t_s >= cc_s + cv_s] = 0.0
    return Profile(name, "current", dt_s, demand_a,
                   f"CC-CV charge: {cc_a:g} A to SOC {cv_start_soc:g}, exponential taper to {cutoff_a:g} A")


def constant_power(duration_s: float = 600.0, dt_s: float = 0.1, *, seed: int = 0,
                   power_w: float = 500.0) -> Profile:
    """`power_w` for the whole duration (W; negative charges). 500 W is about 1.7 C of the bench pack."""
    return Profile("constant-power", "power", dt_s, np.full(n_samples(duration_s, dt_s), float(power_w)),
                   f"Constant power {power_w:g} W")


def constant_current(duration_s: float = 600.0, dt_s: float = 0.1, *, seed: int = 0,
                     current_a: float = 5.0) -> Profile:
    """`current_a` for the whole duration (A; negative charges). 5 A is 1 C of the bench pack."""
    return Profile("constant-current", "current", dt_s, np.full(n_samples(duration_s, dt_s), float(current_a)),
                   f"Constant current {current_a:g} A")


def rest(duration_s: float = 600.0, dt_s: float = 0.1, *, seed: int = 0) -> Profile:
    """No load: 0 A, for relaxation and open-circuit-voltage checks."""
    return Profile("rest", "current", dt_s, np.zeros(n_samples(duration_s, dt_s)), "Rest, 0 A")
