"""Receive side of the harness: decode every frame and keep the latest value of every signal.

`Monitor` is a python-can `Listener`. On a real clock it hangs off a `can.Notifier` thread, so no frame
waits for the loop; on a virtual clock the loop feeds it synchronously, so traces stay deterministic.
Timestamps come from the bench clock (`clock()`), never from the wall clock, so both modes read alike.

Bad input is counted, never raised (`counters`, `stats[name]`, `problems()`): unknown IDs, frames shorter
than their DBC length, error frames, bus-off, exceptions the bus reports (`on_error`), frames cantools
cannot decode, alive-counter steps and CRCs that are wrong.

Limits, stated plainly:
- Bus-off is counted from error frames carrying SocketCAN's CAN_ERR_BUSOFF class bit (linux/can/error.h),
  which is how socketcan reports it. python-can has no bus-off message for other adapters: what their
  drivers raise reaches `on_error` and is counted as `bus_errors`, not `bus_off`.
- The alive counter and CRC are checked for signals named `<Message>_Counter` and `<Message>_CRC`, this
  project's convention, and for the messages `protections` gives an AUTOSAR E2E profile (a DUT map's `[e2e]`;
  see `hil.can.e2e`). Other schemes (a maker's own checksum) are not checked.
- The database must be complete when the Monitor is made: frame lookup is a dict built once.
- AUTOSAR container frames are not unpacked (they count as `decode_errors`).
"""
from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import can
from cantools.database import Database

from hil.can import e2e
from hil.can.dbc import decode
from hil.errors import ConfigError, HilTimeout, did_you_mean

_EXTENDED = 1 << 31  # marks a 29-bit ID in our lookup key, as DBC files do
CAN_ERR_BUSOFF = 0x40  # linux/can/error.h: error-class bit in an error frame's ID
ABSENT_AFTER_CYCLES = 3.0  # a message is stopped once no frame came for this many cycle times
_MAX_UNKNOWN_IDS = 64  # distinct unknown IDs remembered by value; beyond that they are only counted
_SHOWN_SIGNALS = 12  # signals shown in a timeout message, the awaited ones first


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
    bad_dlc: int = 0
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


@dataclass
class Sample:
    """What `wait_for` returns: the message's signals as they stood after the matching frame."""
    message: str
    time_s: float
    signals: dict


class _Rx:
    """Everything about one DBC message the receive path needs, looked up once."""
    __slots__ = ("message", "name", "length", "stats", "signals", "counter", "counter_modulo", "crc_ok", "latest",
                 "taps", "event")

    def __init__(self, message, stats: CycleStats, protection: e2e.Protection | None):
        self.message = message
        self.name = message.name
        self.length = message.length
        self.stats = stats
        self.signals = {s.name: s for s in message.signals}
        self.counter = protection.counter_signal if protection else None
        self.counter_modulo = protection.counter_modulo if protection else 1
        self.crc_ok = protection.ok if protection else None
        self.latest: dict | None = None  # this message's own latest values, once someone asks (`latest`)
        self.taps: tuple[Callable[[can.Message], None], ...] = ()   # raw-frame listeners (`Monitor.tap`)
        # Sent on an event, not on a cycle (a diagnostic response): its silence is no absence.
        self.event = not message.cycle_time and str(message.send_type or "cyclic").lower() != "cyclic"


@dataclass
class _Waiter:
    predicate: Callable[[dict], bool]
    event: threading.Event = field(default_factory=threading.Event)
    frames: int = 0
    sample: Sample | None = None
    error: BaseException | None = None


class Monitor(can.Listener):
    """Decode every frame of `db`'s messages; `clock()` stamps them in bench seconds.

    `values[signal]` and `value_time_s[signal]` hold the latest decoded value (raw numbers, value tables not
    applied) and when it came; `stats[message]` the cycle statistics and E2E errors of every message of the
    database (count 0 until one arrives); `counters` the bus-wide tallies; `unknown_ids` which unknown IDs
    came how often (the first 64 distinct ones).
    """

    def __init__(self, db: Database, clock: Callable[[], float],
                 protections: Mapping[str, e2e.Protection] | None = None):
        self.db = db
        self.clock = clock
        self.values: dict[str, float | int | str] = {}
        # Frames that have updated `values` so far: what a reader derives from `values` stays right while
        # this count stands (it goes up after the values it counts are in place).
        self.value_updates = 0
        self.value_time_s: dict[str, float] = {}
        self.stats: dict[str, CycleStats] = {}
        self.counters = {"frames": 0, "unknown_id": 0, "bad_dlc": 0, "error_frames": 0, "bus_off": 0,
                         "bus_errors": 0, "decode_errors": 0, "remote_frames": 0}
        self.unknown_ids: dict[int, int] = {}  # ID (bit 31 set for 29-bit) -> frames
        self.last_bus_error: str | None = None
        self._lock = threading.Lock()
        self._signal_names = {s.name for m in db.messages for s in m.signals}
        uses = collections.Counter(name for m in db.messages for name in {s.name for s in m.signals})
        self._shared_names = {name for name, count in uses.items() if count > 1}
        self._rx: dict[int, _Rx] = {}
        self._by_name: dict[str, _Rx] = {}
        protections = protections or {}   # a DUT map's AUTOSAR profiles; the reference scheme elsewhere
        for message in db.messages:
            rx = _Rx(message, self.stats.setdefault(message.name, CycleStats()),
                     e2e.protection_of(message, protections))
            self._rx[message.frame_id | _EXTENDED if message.is_extended_frame else message.frame_id] = rx
            self._by_name[message.name] = rx
        self._waiters: dict[str, list[_Waiter]] = {}

    # python-can Listener interface -------------------------------------------------------------------
    def on_message_received(self, msg: can.Message) -> None:
        now_s = self.clock()
        with self._lock:
            counters = self.counters
            counters["frames"] += 1
            if msg.is_error_frame:
                counters["error_frames"] += 1
                if msg.arbitration_id & CAN_ERR_BUSOFF:
                    counters["bus_off"] += 1
                return
            rx = self._rx.get(msg.arbitration_id | _EXTENDED if msg.is_extended_id else msg.arbitration_id)
            if rx is None:
                self._count_unknown(msg)
                return
            if msg.is_remote_frame:
                counters["remote_frames"] += 1
                return
            stats = rx.stats
            data = msg.data
            if len(data) < rx.length:
                counters["bad_dlc"] += 1
                stats.bad_dlc += 1
                return
            for tap in rx.taps:
                tap(msg)
            try:
                decoded = decode(rx.message, data)
            except Exception:  # a frame the DBC cannot decode is counted, never allowed to stop the bench
                counters["decode_errors"] += 1
                return
            if stats.last_s is None:
                stats.first_s = now_s
            else:
                gap_s = now_s - stats.last_s
                stats.sum_gap_s += gap_s
                stats.sum_gap2_s2 += gap_s * gap_s
                if gap_s > stats.max_gap_s:
                    stats.max_gap_s = gap_s
            stats.last_s = now_s
            stats.count += 1
            if rx.counter is not None:
                counter = decoded.get(rx.counter)  # absent when it sits in another multiplexer group
                if counter is not None:
                    counter = int(counter)
                    if stats.last_counter is not None and counter != (stats.last_counter + 1) % rx.counter_modulo:
                        stats.bad_counter += 1
                    stats.last_counter = counter
            if rx.crc_ok is not None and not rx.crc_ok(bytes(data)):
                stats.bad_crc += 1
            self.values.update(decoded)
            if rx.latest is not None:
                rx.latest.update(decoded)
            self.value_updates += 1
            self.value_time_s.update(dict.fromkeys(decoded, now_s))
            if self._waiters and rx.name in self._waiters:
                self._offer(rx, now_s)

    def on_error(self, exc: Exception) -> None:
        """python-can's Notifier calls this when the bus raises in `recv`; the Notifier then carries on."""
        with self._lock:
            self.counters["bus_errors"] += 1
            self.last_bus_error = f"{type(exc).__name__}: {exc}"

    def _count_unknown(self, msg: can.Message) -> None:
        self.counters["unknown_id"] += 1
        key = msg.arbitration_id | _EXTENDED if msg.is_extended_id else msg.arbitration_id
        if key in self.unknown_ids or len(self.unknown_ids) < _MAX_UNKNOWN_IDS:
            self.unknown_ids[key] = self.unknown_ids.get(key, 0) + 1

    # Names ---------------------------------------------------------------------------------------------
    def reset_stats(self) -> None:
        """Start every message's cycle statistics afresh from the next frame (a measurement window that
        leaves start-up out). The alive-counter sequence carries on, so a jump across the reset still counts."""
        with self._lock:
            for stats in self.stats.values():
                last_counter = stats.last_counter
                stats.__init__(last_counter=last_counter)

    def tap(self, message: str, listener: Callable[[can.Message], None]) -> None:
        """Hand every frame of `message` to `listener` as it comes, before it is decoded: a transport protocol's
        frames (ISO-TP), whose meaning is in their sequence, not in one frame's signals. On a real clock the
        listener runs on the Notifier's thread."""
        rx = self._by_name[self.check_message(message)]
        with self._lock:
            rx.taps = (*rx.taps, listener)

    def check_signal(self, name: str) -> str:
        """Return `name` if the DBC has it; otherwise raise with the closest matches."""
        if name not in self._signal_names:
            hint = did_you_mean(name, self._signal_names)
            raise ConfigError(f"signal '{name}' is not in the loaded DBC files{hint}")
        return name

    def check_message(self, name: str) -> str:
        """Return `name` if the DBC has that message; otherwise raise with the closest matches."""
        if name not in self._by_name:
            hint = did_you_mean(name, self._by_name)
            raise ConfigError(f"message '{name}' is not in the loaded DBC files{hint}")
        return name

    # Latest values -------------------------------------------------------------------------------------
    def get(self, name: str, default=None):
        self.check_signal(name)
        return self.values.get(name, default)

    def latest(self, message: str) -> dict:
        """The latest value of each signal of `message`, from the frames received after the first call on
        (a live dict, updated as frames come). `values` holds one value per signal name across all
        messages: a third-party DBC can use one name in several messages (foxBMS 2 has
        InsulationResistance in two), and this is the one message's own."""
        rx = self._by_name[self.check_message(message)]
        with self._lock:
            return self._latest(rx)

    def _latest(self, rx: _Rx) -> dict:
        if rx.latest is None:
            # What `values` already holds of it is its own where no other message has the name.
            rx.latest = {name: self.values[name] for name in rx.signals
                         if name in self.values and name not in self._shared_names}
        return rx.latest

    def snapshot(self, names=None, *, message: str | None = None) -> dict:
        """The latest values of `names` (all signals if None); of `message`'s own values if given."""
        rx = self._by_name[self.check_message(message)] if message is not None else None
        with self._lock:
            values = self.values if rx is None else self._latest(rx)
            if names is None:
                return dict(values)
            return {n: values.get(n) for n in names}

    # Waits ---------------------------------------------------------------------------------------------
    def wait_for(self, message: str, expected: Mapping[str, float | int | str] | Callable[[dict], bool],
                 timeout_s: float, run: Callable | None = None) -> Sample:
        """Wait until the latest values of `message` match `expected` (at once if they already do); return
        them with the time of the frame that made them match.

        `expected` is either {signal: value}, where a number matches within half the signal's resolution
        and a string names a value-table entry ("NORMAL"), or a predicate called with the message's latest
        signal values (a multiplexed frame updates only its own group's signals). The predicate sees every
        frame, so a state that lasts one frame is not missed between two polls of the loop.

        `run(condition, timeout_s, describe)` advances time while waiting: on a virtual clock time moves
        only when the loop runs, so pass `bench.loop.run_until`. Without `run` this waits on a real
        monotonic deadline for frames another thread feeds in (a `can.Notifier`).

        Raises `HilTimeout` showing the message's last values and how many frames came meanwhile; a
        predicate's own exception is re-raised. Never returns None.
        """
        rx = self._by_name[self.check_message(message)]
        predicate, wanted = self._predicate(rx, expected)
        waiter = _Waiter(predicate)
        with self._lock:  # check and register in one step, so no frame slips between them
            if rx.stats.count:
                self._try(waiter, rx, self._view(rx), rx.stats.last_s)
                waiter.frames = 0  # frames counts what came while waiting
            self._waiters.setdefault(rx.name, []).append(waiter)
        try:
            if run is None:
                waiter.event.wait(timeout_s)
            else:
                run(waiter.event.is_set, timeout_s, lambda: self._describe_wait(rx, wanted, waiter))
        finally:
            with self._lock:
                waiters = self._waiters[rx.name]
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[rx.name]
        if waiter.error is not None:
            raise waiter.error
        if waiter.sample is None:
            raise HilTimeout(f"not within {timeout_s:g} s: {self._describe_wait(rx, wanted, waiter)}")
        return waiter.sample

    def _view(self, rx: _Rx) -> dict:
        values = self.values
        return {name: values[name] for name in rx.signals if name in values}

    def _offer(self, rx: _Rx, now_s: float) -> None:
        view = self._view(rx)
        for waiter in self._waiters[rx.name]:
            if not waiter.event.is_set():
                self._try(waiter, rx, view, now_s)

    @staticmethod
    def _try(waiter: _Waiter, rx: _Rx, view: dict, time_s: float) -> None:
        waiter.frames += 1
        try:
            matched = waiter.predicate(view)
        except Exception as exc:  # raised again in the waiting thread, where the test can see it
            waiter.error, matched = exc, True
        if matched:
            waiter.sample = Sample(rx.name, time_s, view)
            waiter.event.set()

    def _predicate(self, rx: _Rx, expected) -> tuple[Callable[[dict], bool], dict | None]:
        if callable(expected):
            return expected, None
        if not isinstance(expected, Mapping) or not expected:
            raise ConfigError(f"wait_for('{rx.name}', {expected!r}): expected a {{signal: value}} dict or a "
                              "predicate of the signal values")
        targets = {}
        for name, value in expected.items():
            signal = rx.signals.get(name)
            if signal is None:
                self.check_signal(name)
                owner = next(m.name for m in self.db.messages if any(s.name == name for s in m.signals))
                raise ConfigError(f"signal '{name}' is in message '{owner}', not in '{rx.name}'")
            if isinstance(value, str):
                value = _choice_value(rx.name, signal, value)
            tolerance = 1e-9 * max(1.0, abs(value)) if signal.is_float else abs(signal.scale) / 2 * (1 + 1e-9)
            targets[name] = (value, tolerance)

        def matches(values: dict) -> bool:
            for name, (value, tolerance) in targets.items():
                seen = values.get(name)
                if seen is None or abs(seen - value) > tolerance:
                    return False
            return True
        return matches, dict(expected)

    def _describe_wait(self, rx: _Rx, wanted: dict | None, waiter: _Waiter) -> str:
        goal = " ".join(f"{k}={v}" for k, v in wanted.items()) if wanted else "the predicate"
        head = f"waiting for {rx.name} with {goal}"
        if waiter.frames == 0:
            return f"{head}: no {rx.name} frame came while waiting; {self.absence(rx.name, 0) or ''}".rstrip("; ")
        stats = rx.stats
        with self._lock:
            view = self._view(rx)
        first = [k for k in (wanted or {}) if k in view]
        shown = first + [k for k in view if k not in first][:max(0, _SHOWN_SIGNALS - len(first))]
        more = f" (+{len(view) - len(shown)} more)" if len(view) > len(shown) else ""
        values = " ".join(f"{k}={_fmt(view[k], rx.signals.get(k))}" for k in shown)
        return (f"{head}: {waiter.frames} frame(s) came, none matched; last at t={stats.last_s:.3f} s: "
                f"{values}{more}")

    # Timing and absence -----------------------------------------------------------------------------
    def age_s(self, message: str) -> float | None:
        """Seconds since `message` was last received, or None if it never was."""
        stats = self.stats.get(self.check_message(message))
        return None if stats.last_s is None else self.clock() - stats.last_s

    def cycle_s(self, message: str) -> float | None:
        """The message's cycle time: the DBC's GenMsgCycleTime, else the measured mean, else None."""
        cycle_ms = self._by_name[self.check_message(message)].message.cycle_time
        return cycle_ms / 1000.0 if cycle_ms else self.stats[message].mean_cycle_s

    def absence(self, message: str, k_cycles: float = ABSENT_AFTER_CYCLES) -> str | None:
        """Why `message` counts as stopped, or None while it is alive.

        Stopped means never received, or no frame for more than `k_cycles` cycle times, e.g.
        "BMS_Status stopped: last frame 230 ms ago (cycle 20 ms)". A message with no known cycle time
        (none in the DBC, fewer than two frames), or one its DBC sends on an event (a GenMsgSendType other than
        cyclic, and no cycle time: a diagnostic response), is alive once received.
        """
        age_s = self.age_s(message)
        if age_s is None:
            return f"{message} never received"
        if self._by_name[message].event:
            return None
        cycle_s = self.cycle_s(message)
        if cycle_s is None or age_s <= k_cycles * cycle_s:
            return None
        return f"{message} stopped: last frame {age_s * 1000:.0f} ms ago (cycle {cycle_s * 1000:.0f} ms)"

    def is_absent(self, message: str, k_cycles: float = ABSENT_AFTER_CYCLES) -> bool:
        """True once no `message` has come for `k_cycles` of its cycle time (or it never came)."""
        return self.absence(message, k_cycles) is not None

    def stopped(self, k_cycles: float = ABSENT_AFTER_CYCLES) -> list[str]:
        """`absence()` of every message that was received at least once and has stopped since."""
        return [reason for name, stats in self.stats.items()
                if stats.count and (reason := self.absence(name, k_cycles)) is not None]

    # Reports -----------------------------------------------------------------------------------------
    def problems(self, k_cycles: float = ABSENT_AFTER_CYCLES, *, unknown_ids: bool = True) -> list[str]:
        """Everything that went wrong on the bus so far, one line each; [] for a clean run. `unknown_ids=False`
        leaves out frames the DBC does not know (other nodes' traffic on a shared bus)."""
        c = self.counters
        unknown = self.unknown_frames() if unknown_ids else None
        lines = [unknown] if unknown else []
        if c["error_frames"]:
            lines.append(f"{c['error_frames']} error frame(s), {c['bus_off']} of them bus-off")
        if c["bus_errors"]:
            lines.append(f"{c['bus_errors']} error(s) raised by the bus; last: {self.last_bus_error}")
        if c["decode_errors"]:
            lines.append(f"{c['decode_errors']} frame(s) the DBC could not decode")
        for name, stats in self.stats.items():
            length = self._by_name[name].length
            for count, what in ((stats.bad_dlc, f"frame(s) shorter than its DBC length of {length} bytes"),
                                (stats.bad_counter, "alive-counter error(s)"), (stats.bad_crc, "CRC error(s)")):
                if count:
                    lines.append(f"{name}: {count} {what}")
        return lines + self.stopped(k_cycles)

    def unknown_frames(self) -> str | None:
        """The frames whose ID no DBC of this bus knows, as one line ("3 frame(s) with an ID not in the DBC:
        0x7FF x3"); None while there are none."""
        if not self.counters["unknown_id"]:
            return None
        ids = ", ".join(f"{_fmt_id(key)} x{n}" for key, n in sorted(self.unknown_ids.items()))
        return f"{self.counters['unknown_id']} frame(s) with an ID not in the DBC: {ids}"

    def summary(self) -> dict:
        """Counters and per-message statistics (ms) of every message received, for a JSON report."""
        def ms(value_s):
            return None if value_s is None else round(value_s * 1000.0, 3)
        return {"counters": dict(self.counters),
                "messages": {name: {"frames": s.count, "cycle_ms": ms(self.cycle_s(name)),
                                    "mean_cycle_ms": ms(s.mean_cycle_s), "jitter_ms": ms(s.jitter_s),
                                    "max_gap_ms": ms(s.max_gap_s), "bad_counter": s.bad_counter,
                                    "bad_crc": s.bad_crc, "bad_dlc": s.bad_dlc}
                             for name, s in self.stats.items() if s.count or s.bad_dlc},
                "problems": self.problems()}


def _choice_value(message: str, signal, text: str) -> int:
    for value, name in (signal.choices or {}).items():
        if str(name) == text:
            return int(value)
    names = [str(n) for n in (signal.choices or {}).values()]
    raise ConfigError(f"{message}.{signal.name}: {text!r} is not in its value table{did_you_mean(text, names)}; "
                      f"expected a number or one of {names}")


def _fmt(value, signal=None) -> str:
    """A value as a wait's error shows it: a value-table entry by its name too ("INIT (0)"), as it was asked."""
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    choices = signal.choices if signal is not None else None
    if choices and isinstance(value, (int, float)) and value == int(value) and int(value) in choices:
        return f"{choices[int(value)]} ({text})"
    return text


def _fmt_id(key: int) -> str:
    return f"0x{key & ~_EXTENDED:08X} (29-bit)" if key & _EXTENDED else f"0x{key:03X}"
