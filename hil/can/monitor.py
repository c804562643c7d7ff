"""Receive side of the harness: decode every frame and keep the latest value of every signal.

`Monitor` is a python-can `Listener`. On a real clock it hangs off a `can.Notifier` thread, so no frame
waits for the loop; on a virtual clock the loop feeds it synchronously, so traces stay deterministic.
Timestamps come from the bench clock (`clock()`), never from the wall clock, so both modes read alike.
"""
from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import can
from cantools.database import Database

from hil.can import e2e
from hil.errors import ConfigError


@dataclass
class CycleStats:
    """Per-message reception statistics, all in seconds of bench time."""
    count: int = 0
    first_s: float | None = None
    last_s: float | None = None
    max_gap_s: float = 0.0
    sum_gap_s: float = 0.0
    sum_gap2_s2: float = 0.0
    bad_counter: int = 0
    bad_crc: int = 0
    last_counter: int | None = None

    @property
    def mean_cycle_s(self) -> float | None:
        return self.sum_gap_s / (self.count - 1) if self.count > 1 else None

    @property
    def jitter_s(self) -> float | None:
        """Standard deviation of the gap between frames."""
        if self.count < 3:
            return None
        mean = self.mean_cycle_s
        return max(0.0, self.sum_gap2_s2 / (self.count - 1) - mean * mean) ** 0.5


class Monitor(can.Listener):
    def __init__(self, db: Database, clock: Callable[[], float]):
        self.db = db
        self.clock = clock
        self.values: dict[str, float | int | str] = {}
        self.value_time_s: dict[str, float] = {}
        self.stats: dict[str, CycleStats] = {}
        self.counters = {"frames": 0, "unknown_id": 0, "bad_dlc": 0, "error_frames": 0, "decode_errors": 0,
                         "bus_errors": 0}
        self._lock = threading.Lock()
        self._signal_names = {s.name for m in db.messages for s in m.signals}

    # python-can Listener interface -------------------------------------------------------------------
    def on_message_received(self, msg: can.Message) -> None:
        now_s = self.clock()
        with self._lock:
            self.counters["frames"] += 1
            if msg.is_error_frame:
                self.counters["error_frames"] += 1
                return
            try:
                message = self.db.get_message_by_frame_id(msg.arbitration_id)
            except KeyError:
                self.counters["unknown_id"] += 1
                return
            if msg.dlc < message.length:
                self.counters["bad_dlc"] += 1
                return
            try:
                decoded = message.decode(msg.data, decode_choices=False, allow_truncated=False)
            except Exception:  # a frame the DBC cannot decode is counted, never allowed to stop the bench
                self.counters["decode_errors"] += 1
                return
            self._update_stats(message.name, msg.data, decoded, now_s)
            for name, value in decoded.items():
                self.values[name] = value
                self.value_time_s[name] = now_s

    def on_error(self, exc: Exception) -> None:
        with self._lock:
            self.counters["bus_errors"] += 1

    # ---------------------------------------------------------------------------------------------------
    def _update_stats(self, name: str, data: bytes, decoded: dict, now_s: float) -> None:
        stats = self.stats.setdefault(name, CycleStats())
        if stats.last_s is not None:
            gap_s = now_s - stats.last_s
            stats.sum_gap_s += gap_s
            stats.sum_gap2_s2 += gap_s * gap_s
            stats.max_gap_s = max(stats.max_gap_s, gap_s)
        else:
            stats.first_s = now_s
        stats.last_s = now_s
        stats.count += 1
        counter = decoded.get(f"{name}_Counter")
        if counter is not None:
            if stats.last_counter is not None and counter != (stats.last_counter + 1) & 0xF:
                stats.bad_counter += 1
            stats.last_counter = counter
        if f"{name}_CRC" in decoded and not e2e.crc_ok(bytes(data)):
            stats.bad_crc += 1

    def check_signal(self, name: str) -> str:
        """Return `name` if the DBC has it; otherwise raise with the closest matches."""
        if name not in self._signal_names:
            close = difflib.get_close_matches(name, self._signal_names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"signal '{name}' is not in the loaded DBC files{hint}")
        return name

    def get(self, name: str, default=None):
        self.check_signal(name)
        return self.values.get(name, default)

    def age_s(self, message: str) -> float | None:
        """Seconds since `message` was last received, or None if it never was."""
        stats = self.stats.get(message)
        return None if stats is None or stats.last_s is None else self.clock() - stats.last_s

    def is_absent(self, message: str, k_cycles: float = 3.0) -> bool:
        """True once no `message` has come for `k_cycles` of its DBC cycle time."""
        cycle_ms = self.db.get_message_by_name(message).cycle_time
        age_s = self.age_s(message)
        return age_s is None or (cycle_ms is not None and age_s > k_cycles * cycle_ms / 1000.0)

    def snapshot(self, names=None) -> dict:
        with self._lock:
            if names is None:
                return dict(self.values)
            return {n: self.values.get(n) for n in names}
