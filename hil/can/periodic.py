"""Periodic transmission of DBC messages at their `GenMsgCycleTime`, driven by an explicit clock tick.

One mechanism serves both sides of the bench: the harness's rest-bus simulation (VCU heartbeat and mode
request) and the emulated boards' own cyclic messages. It is ticked by the loop rather than run on its own
thread, so that under a virtual clock every frame goes out at a deterministic simulated time.

Due times are absolute (`next_s += cycle_s`), so no drift accumulates; when a tick comes late the frame is
sent once and the schedule skips ahead rather than bursting.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import can
from cantools.database import Database

from hil.can import e2e
from hil.can.dbc import encode, signal_defaults
from hil.errors import ConfigError


@dataclass
class _Periodic:
    message: object  # cantools Message
    cycle_s: float
    signals: dict
    provider: Callable[[], dict] | None
    next_s: float = 0.0
    counter: int = 0
    running: bool = True
    sent: int = 0
    last_sent_s: float | None = None
    counter_signal: str | None = None
    crc_signal: str | None = None
    defaults: dict = field(default_factory=dict)
    crc_source: Callable[[bytes], int] | None = None


class PeriodicSender:
    """Send DBC messages on `bus` at their cycle times. Call `tick(now_s)` from the loop."""

    def __init__(self, bus: can.BusABC, db: Database, on_send: Callable[[can.Message], None] | None = None):
        self.bus = bus
        self.db = db
        self.on_send = on_send
        self._jobs: dict[str, _Periodic] = {}

    def add(self, name: str, signals: dict | None = None, *, provider: Callable[[], dict] | None = None,
            cycle_s: float | None = None, start_s: float = 0.0) -> None:
        """Schedule message `name`. `provider()` (if given) returns fresh signal values each cycle.

        For a multiplexed message, `provider()` returns a list of signal dicts, one frame each, all sent
        in the same cycle.
        """
        try:
            message = self.db.get_message_by_name(name)
        except KeyError:
            raise ConfigError(f"message '{name}' is not in the loaded DBC files") from None
        if cycle_s is None:
            if not message.cycle_time:
                raise ConfigError(f"message '{name}' has no GenMsgCycleTime in its DBC; give cycle_s")
            cycle_s = message.cycle_time / 1000.0
        names = {s.name for s in message.signals}
        counter = f"{name}_Counter" if f"{name}_Counter" in names else None
        crc = f"{name}_CRC" if f"{name}_CRC" in names else None
        self._jobs[name] = _Periodic(message, cycle_s, dict(signals or {}), provider, next_s=start_s,
                                     counter_signal=counter, crc_signal=crc, defaults=signal_defaults(message))

    def set(self, name: str, **signals) -> None:
        """Change signal values of a running message; they go out from its next cycle on."""
        job = self._job(name)
        unknown = set(signals) - {s.name for s in job.message.signals}
        if unknown:
            raise ConfigError(f"message '{name}' has no signal(s) {sorted(unknown)}")
        job.signals.update(signals)

    def pulse(self, name: str, timeout_s: float, loop, **signals) -> None:
        """Send `signals` in exactly one frame of `name` (e.g. a clear-faults request), then restore them."""
        job = self._job(name)
        before = {key: job.signals.get(key, 0) for key in signals}
        self.set(name, **signals)
        sent = job.sent
        try:
            loop.run_until(lambda: job.sent > sent, timeout_s, f"message '{name}' not sent (is it stopped?)")
        finally:
            job.signals.update(before)

    def stop(self, name: str) -> None:
        self._job(name).running = False

    def start(self, name: str, now_s: float | None = None) -> None:
        job = self._job(name)
        job.running = True
        if now_s is not None:
            job.next_s = now_s

    def set_crc_source(self, name: str, crc_source: Callable[[bytes], int]) -> None:
        """Replace how `name`'s CRC byte is computed from its payload (emulated firmware defects use this)."""
        self._job(name).crc_source = crc_source

    def reset_counter(self, name: str) -> None:
        self._job(name).counter = 0

    def last_sent_s(self, name: str) -> float | None:
        return self._job(name).last_sent_s

    def is_running(self, name: str) -> bool:
        return self._job(name).running

    def _job(self, name: str) -> _Periodic:
        if name not in self._jobs:
            raise ConfigError(f"message '{name}' is not scheduled; scheduled: {sorted(self._jobs)}")
        return self._jobs[name]

    def tick(self, now_s: float) -> None:
        for job in self._jobs.values():
            if not job.running or now_s + 1e-9 < job.next_s:
                continue
            self._send(job)
            job.last_sent_s = now_s
            job.next_s += job.cycle_s
            if job.next_s <= now_s:  # we were late by more than a cycle: skip ahead, don't burst
                job.next_s = now_s + job.cycle_s

    def _send(self, job: _Periodic) -> None:
        frames = job.provider() if job.provider is not None else job.signals
        for signals in frames if isinstance(frames, list) else (frames,):
            if job.counter_signal:
                signals[job.counter_signal] = job.counter
            if job.crc_signal:
                signals[job.crc_signal] = 0
            data = bytearray(encode(job.message, signals, job.defaults))
            if job.crc_source is not None:
                data[7] = job.crc_source(bytes(data))
            elif job.crc_signal:
                e2e.seal(data)
            msg = can.Message(arbitration_id=job.message.frame_id, data=data,
                              is_extended_id=job.message.is_extended_frame)
            self.bus.send(msg)
            if self.on_send is not None:
                self.on_send(msg)
            job.sent += 1
        job.counter = (job.counter + 1) & 0xF
