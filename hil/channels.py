"""Stepping the cell emulator's channels, and reading back where the BMS put each one: the wiring check.

A sense harness wired one pin off, a thermistor on the wrong connector, a DUT map whose cell numbering starts at
1: each shows as a channel the BMS reports at another channel's level. Every channel gets a level of its own (a
staircase up the usable window, then down it), so an error of gain, of offset or of channel order shows, and
every channel is read near both ends of the window. `tests/bms/test_measurement.py` judges the BMS by it, and
`hil check` a bench's wiring.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hil.protocol import BmsState

# Distance kept from each trip band, so that no protection acts while the stimulus sits near its ends.
MARGIN_V = 0.05
MARGIN_C = 5.0
# The coldest thermistor stimulus when the spec states no under-temperature protection.
COLDEST_C = 0.0


def staircases(low: float, high: float, n: int) -> list[tuple[str, np.ndarray]]:
    """Channel k at its own level, rising across the channels and then falling: every channel near both ends."""
    rising = np.linspace(low, high, n) if n > 1 else np.array([low])
    return [("rising", rising), ("falling", rising[::-1].copy())]


def cell_window_v(spec) -> tuple[float, float]:
    """The cell voltages a staircase may span: inside the UV and OV bands, by MARGIN_V."""
    return spec.protections["cell_uv"].high + MARGIN_V, spec.protections["cell_ov"].low - MARGIN_V


def temperature_window_c(spec) -> tuple[float, float]:
    """The thermistor temperatures a staircase may span: inside the UT (if any) and OT bands, by MARGIN_C."""
    under = spec.protections.get("cell_ut")
    return (under.high + MARGIN_C if under is not None else COLDEST_C), spec.protections["cell_ot"].low - MARGIN_C


def worst_channel(applied: np.ndarray, reported: np.ndarray, pattern: str, unit: str,
                  tolerance: float) -> tuple[float, str]:
    """The largest |reported - applied| and what it was: the channel, and another channel whose level it
    matches within `tolerance` instead, if any (channels swapped or mis-mapped)."""
    if np.isnan(reported).any():
        channel = int(np.flatnonzero(np.isnan(reported))[0])
        return float("inf"), f"channel {channel + 1} not reported ({pattern} staircase)"
    errors = np.abs(reported - applied)
    channel = int(np.argmax(errors))
    detail = (f"channel {channel + 1} reported {reported[channel]:.4g} {unit} for {applied[channel]:.4g} {unit} "
              f"applied ({pattern} staircase)")
    others = np.abs(applied - reported[channel])
    others[channel] = np.inf
    if errors[channel] > tolerance >= others.min():
        detail += f"; that is channel {int(np.argmin(others)) + 1}'s level: channels swapped or mis-mapped?"
    return float(errors[channel]), detail


@dataclass
class Stepped:
    """One kind of channel stepped through both staircases: its worst error, and the pack voltage's."""
    worst: tuple[float, str]                 # (error, detail) of the worst channel, in the stimulus's unit
    worst_pack: tuple[float, str] | None     # (error in V, detail); None when the BMS reports no pack voltage
    left_standby: str | None                 # the BMS's state when a staircase took it out of STANDBY


def step_cells(bench, tolerance_v: float, settle_s: float) -> Stepped:
    """Force every cell channel through both staircases of the spec's window, `settle_s` each, and read back
    what the BMS reports, and its pack voltage against their sum. The channels stay forced:
    `bench.release_channels()` gives them back to the model."""
    worst_pack = []   # (error in V, detail) of each staircase

    def pack(pattern: str, applied_v: np.ndarray) -> None:
        pack_v, applied_pack_v = bench.bms.pack_voltage_v, float(applied_v.sum())
        if pack_v is not None:
            worst_pack.append((abs(pack_v - applied_pack_v),
                               f"reported {pack_v:.3f} V for {applied_pack_v:.3f} V applied ({pattern} staircase)"))

    n = bench.cell_emulator.n_channels
    worst = _step(bench, cell_window_v(bench.spec), bench.force_cell, lambda: bench.bms.cell_voltages_v(n), "V",
                  tolerance_v, settle_s, pack)
    return Stepped(worst, max(worst_pack, key=lambda w: w[0]) if worst_pack else None, _left_standby(bench))


def step_temperatures(bench, tolerance_c: float, settle_s: float) -> Stepped:
    """The same for the thermistor channels."""
    n = bench.cell_emulator.n_channels
    worst = _step(bench, temperature_window_c(bench.spec), bench.force_temperature,
                  lambda: bench.bms.cell_temperatures_c(n), "degC", tolerance_c, settle_s)
    return Stepped(worst, None, _left_standby(bench))


def _step(bench, window: tuple[float, float], force, reported, unit: str, tolerance: float, settle_s: float,
          after=None) -> tuple[float, str]:
    """Each staircase of `window` forced channel by channel (`force(channel, value)`), `settle_s` later what the
    BMS `reported()` compared with it (and `after(pattern, applied)` called); the worst channel of both."""
    worst = (0.0, "none")
    for pattern, applied in staircases(*window, bench.cell_emulator.n_channels):
        for channel, value in enumerate(applied):
            force(channel, float(value))
        bench.loop.run_for(settle_s)
        worst = max(worst, worst_channel(applied, reported(), pattern, unit, tolerance), key=lambda w: w[0])
        if after is not None:
            after(pattern, applied)
    return worst


def _left_standby(bench) -> str | None:
    return None if bench.bms.state == BmsState.STANDBY else bench.bms.describe()
