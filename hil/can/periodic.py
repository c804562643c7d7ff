"""Periodic transmission of DBC messages at their `GenMsgCycleTime`, driven by an explicit clock tick.

One mechanism serves both sides of the bench: the harness's rest-bus simulation (VCU heartbeat and mode
request) and the emulated boards' own cyclic messages. It is ticked by the loop rather than run on its own
thread, so that under a virtual clock every frame goes out at a deterministic simulated time.

Each cycle, a per-frame modifier writes the alive counter (`<Message>_Counter`, wrapping at its signal
width) and seals the CRC (`<Message>_CRC`, see `hil.can.e2e`), or the AUTOSAR E2E profile `protections` names
for the message. Signals can change while the bus runs
(`set`, or a `provider` called every cycle), and a message can be stopped and restarted.

A running message can be sent faulty on purpose (`inject`), to test a receiver's E2E checks: "frozen_counter"
repeats the last frame's alive counter from the next frame on (a hung host whose CAN controller keeps sending
its last buffer), "bad_crc" sends each frame with its CRC inverted (corruption the CAN CRC missed), and
"lost_frame" leaves out the next frame only (or the next `frames`, a burst: a gateway that reboots), its alive
counter spent (a gateway's full queue, a sender's task that overran), so the one after it arrives with its counter
two on (or `frames` + 1).

Due times are absolute (`start_s + k * cycle_s`, computed, never accumulated), so no drift builds up. When a
tick comes late by more than a cycle, the frame is sent once and the missed cycles are skipped rather than
sent in a burst; the schedule stays on its grid and `skipped_cycles(name)` counts them.

A multiplexed message (a provider returning a list) does not put its whole cycle on one tick: its frames
leave `frame_spacing_s` apart (1 ms by default, closer if the cycle is too short to hold them), all with the
values and alive counter of the cycle's one provider call, as a CAN stack's transmit queue sends them one
after another. Every group still goes out once per cycle, at the same offset each cycle. On a 1 ms loop a
96-cell pack's 24 BMS_CellVoltages frames, all on one tick, made it the loop's slowest (with the thermistor
setpoints on the same tick, 40 frames: ~1.3 ms of encoding, sending and decoding, more than the period);
spread, they add one frame to each of 24 ticks. `frame_spacing_s=0` sends a cycle's frames together.

Limits: frames go out at tick times, so a cycle that is not a multiple of the loop's step is rounded up to
the next tick (a 15 ms cycle on a 10 ms loop goes out at 20, 30, 50, 60, ... ms); so are the spaced frames
of a multiplexed message (at 1 ms spacing on a 10 ms loop, ten go out per tick).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import can
from cantools.database import Database

from hil.can import e2e
from hil.can.dbc import decode, encode, signal_defaults
from hil.errors import ConfigError, did_you_mean

FAULTS = ("frozen_counter", "bad_crc", "lost_frame")

# Due-time comparisons allow this much float error (a tick at 0.1 s against a due time of 5 * 0.02 s).
_EPS_S = 1e-9
# Frames of one multiplexed cycle leave this far apart: one per tick of a 1 ms loop.
FRAME_SPACING_S = 0.001


@dataclass
class _Periodic:
    message: object  # cantools Message
    cycle_s: float
    signals: dict
    provider: Callable[[], dict] | None
    origin_s: float = 0.0  # due times are origin_s + index * cycle_s
    index: int = 0
    counter: int = 0
    counter_modulo: int = 1
    running: bool = True
    resync: bool = False  # restarted without a time: the next tick sends and re-anchors the grid there
    sent: int = 0
    skipped: int = 0
    last_sent_s: float | None = None
    counter_signal: str | None = None
    crc_signal: str | None = None
    seal: Callable[[bytearray], object] | None = None   # writes the CRC in place (hil.can.e2e.Protection)
    defaults: dict = field(default_factory=dict)
    crc_source: Callable[[bytes], int] | None = None
    fault: str | None = None   # one of FAULTS, sent on purpose (`inject`)
    lost_left: int = 0         # frames "lost_frame" still leaves out
    # The current cycle's frames not sent yet (a multiplexed message): frame i of the cycle is due at
    # queue_origin_s + i * queue_spacing_s; queue_next is the index of queue[0] in the cycle.
    queue: list = field(default_factory=list)
    queue_origin_s: float = 0.0
    queue_spacing_s: float = 0.0
    queue_next: int = 0
    # When the job next has a frame to send (the earlier of next_s and queue_due_s): inf while stopped,
    # -inf while it waits to resync. Kept up to date by `update_due` whenever its schedule changes, so a
    # tick looks at one number per job.
    due_s: float = 0.0

    def __post_init__(self) -> None:
        self.update_due()

    @property
    def next_s(self) -> float:
        return self.origin_s + self.index * self.cycle_s

    @property
    def queue_due_s(self) -> float:
        return self.queue_origin_s + self.queue_next * self.queue_spacing_s if self.queue else math.inf

    def update_due(self) -> None:
        if not self.running:
            self.due_s = math.inf
        elif self.resync:
            self.due_s = -math.inf
        else:
            self.due_s = min(self.next_s, self.queue_due_s)


class PeriodicSender:
    """Send DBC messages on `bus` at their cycle times. Call `tick(now_s)` from the loop."""

    def __init__(self, bus: can.BusABC, db: Database, on_send: Callable[[can.Message], None] | None = None,
                 *, frame_spacing_s: float = FRAME_SPACING_S, protections: Mapping[str, e2e.Protection] | None = None):
        self.bus = bus
        self.db = db
        # By message name, the E2E protection a DUT map names; any other message gets the reference scheme.
        self.protections = dict(protections or {})
        self.on_send = on_send
        self.frame_spacing_s = frame_spacing_s
        self._jobs: dict[str, _Periodic] = {}
        # The earliest due time of any job: most ticks send nothing, and this lets them return at once.
        # Anything that reschedules a job resets it to -inf.
        self._next_due_s = -math.inf

    def add(self, name: str, signals: dict | None = None, *, provider: Callable[[], dict] | None = None,
            cycle_s: float | None = None, start_s: float = 0.0) -> None:
        """Schedule message `name`, first frame at `start_s`. `provider()` (if given) returns fresh signal
        values each cycle; otherwise `signals` (changed with `set`) go out.

        For a multiplexed message, `provider()` returns a list of signal dicts, one frame each, all sent
        in the same cycle, `frame_spacing_s` apart (see the module's description).
        """
        try:
            message = self.db.get_message_by_name(name)
        except KeyError:
            hint = did_you_mean(name, [m.name for m in self.db.messages])
            raise ConfigError(f"message '{name}' is not in the loaded DBC files{hint}") from None
        if cycle_s is None:
            if not message.cycle_time:
                raise ConfigError(f"message '{name}' has no GenMsgCycleTime in its DBC; give cycle_s")
            cycle_s = message.cycle_time / 1000.0
        if not cycle_s > 0:
            raise ConfigError(f"message '{name}': cycle_s = {cycle_s!r}, expected a positive number of seconds")
        protection = e2e.protection_of(message, self.protections)
        self._jobs[name] = _Periodic(message, cycle_s, {}, provider, origin_s=start_s,
                                     counter_signal=protection.counter_signal if protection else None,
                                     counter_modulo=protection.counter_modulo if protection else 1,
                                     crc_signal=protection.crc_signal if protection else None,
                                     seal=protection.seal if protection else None,
                                     defaults=signal_defaults(message))
        self._next_due_s = -math.inf
        if signals:
            self.set(name, **signals)

    def set(self, name: str, **signals) -> None:
        """Change signal values of a running message; they go out from its next cycle on."""
        job = self._job(name)
        names = [s.name for s in job.message.signals]
        for signal in signals:
            if signal not in names:
                hint = did_you_mean(signal, names)
                raise ConfigError(f"message '{name}' has no signal '{signal}'{hint}")
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
        """Stop sending `name` (e.g. to test a receiver's timeout); its signals and counter are kept, frames
        of its current cycle not yet sent are dropped."""
        job = self._job(name)
        job.running = False
        job.queue = []
        job.update_due()

    def start(self, name: str, now_s: float | None = None) -> None:
        """Restart a stopped `name`: first frame at `now_s` and every cycle from there; without `now_s`, at
        the next tick. The alive counter carries on from where it stopped, as a real sender's would.
        Starting a running message changes nothing."""
        job = self._job(name)
        if job.running:
            return
        job.running = True
        self._next_due_s = -math.inf
        if now_s is None:
            job.resync = True
        else:
            job.origin_s, job.index = now_s, 0
        job.update_due()

    def set_crc_source(self, name: str, crc_source: Callable[[bytes], int]) -> None:
        """Replace how `name`'s CRC byte is computed from its payload (emulated firmware defects use this)."""
        self._job(name).crc_source = crc_source

    def inject(self, name: str, fault: str | None, frames: int = 1) -> None:
        """From `name`'s next frame on, send it with `fault` (one of FAULTS; None: as it should be again).
        "lost_frame" is spent by the `frames` frames in a row it leaves out."""
        job = self._job(name)
        if fault == "lost_frame":
            if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
                raise ConfigError(f"lost_frame frames={frames!r}: expected a count of frames, at least 1")
            job.lost_left = frames
        if fault is not None:
            if fault not in FAULTS:
                raise ConfigError(f"fault {fault!r}: expected one of {', '.join(FAULTS)}")
            if not self.supports(name, fault):
                what = "alive counter" if fault == "frozen_counter" else "CRC"
                raise ConfigError(f"message '{name}' has no {what}: nothing for {fault} to break")
        if fault == "frozen_counter" and job.fault != fault:
            job.counter = (job.counter - 1) % job.counter_modulo   # the next frame repeats the last one's
        elif job.fault == "frozen_counter" and fault != job.fault:
            job.counter = (job.counter + 1) % job.counter_modulo
        job.fault = fault

    def supports(self, name: str, fault: str) -> bool:
        """Whether `name` has what `fault` breaks: an alive counter to freeze, a CRC to invert (any frame can be
        lost)."""
        job = self._job(name)
        if fault == "lost_frame":
            return True
        return (job.counter_signal if fault == "frozen_counter" else job.crc_signal) is not None

    def reset_counter(self, name: str) -> None:
        self._job(name).counter = 0

    def cycle_s(self, name: str) -> float:
        return self._job(name).cycle_s

    def last_sent_s(self, name: str) -> float | None:
        return self._job(name).last_sent_s

    def skipped_cycles(self, name: str) -> int:
        """Cycles of `name` not sent because a tick came more than a cycle late."""
        return self._job(name).skipped

    def is_running(self, name: str) -> bool:
        return self._job(name).running

    def _job(self, name: str) -> _Periodic:
        if name not in self._jobs:
            raise ConfigError(f"message '{name}' is not scheduled; scheduled: {sorted(self._jobs)}")
        return self._jobs[name]

    def tick(self, now_s: float) -> None:
        if now_s + _EPS_S < self._next_due_s:
            return
        earliest_s = math.inf
        for job in self._jobs.values():
            if now_s + _EPS_S >= job.due_s:
                self._run(job, now_s)
                job.update_due()
            earliest_s = min(earliest_s, job.due_s)
        self._next_due_s = earliest_s

    def _run(self, job: _Periodic, now_s: float) -> None:
        """A due job: its queued frames due by now, then its next cycle if that is due."""
        if job.queue:
            self._send_queued(job, now_s)
        if not job.resync and now_s + _EPS_S < job.next_s:
            return
        lost = job.fault == "lost_frame"
        self._start_cycle(job, now_s)
        if not lost:
            job.last_sent_s = now_s
        if job.resync:
            job.origin_s, job.index, job.resync = now_s, 1, False
            return
        due = int((now_s + _EPS_S - job.origin_s) / job.cycle_s)  # the latest cycle due by now
        job.skipped += due - job.index  # late by more than a cycle: those cycles are dropped, not burst
        job.index = due + 1

    def _start_cycle(self, job: _Periodic, now_s: float) -> None:
        """One provider call (or the set signals), the cycle's alive counter on every frame; the first frame
        goes now, the rest of a multiplexed message's are queued `frame_spacing_s` apart."""
        if job.queue:  # a late tick reached the next cycle before this one's frames were all out: send them
            self._send_queued(job, math.inf)
        frames = job.provider() if job.provider is not None else job.signals
        frames = frames if isinstance(frames, list) else [frames]
        for signals in frames:
            if job.counter_signal:
                signals[job.counter_signal] = job.counter
            if job.crc_signal:
                signals[job.crc_signal] = 0
        if job.fault != "frozen_counter":
            job.counter = (job.counter + 1) % job.counter_modulo
        if not frames:
            return
        job.queue = frames[1:]
        job.queue_origin_s, job.queue_next = now_s, 1
        job.queue_spacing_s = min(self.frame_spacing_s, job.cycle_s / len(frames))
        self._send_frame(job, frames[0])
        if job.queue:
            self._send_queued(job, now_s)

    def _send_queued(self, job: _Periodic, now_s: float) -> None:
        """The queued frames of the current cycle due by `now_s`, in order."""
        while job.queue and now_s + _EPS_S >= job.queue_due_s:
            job.queue_next += 1
            self._send_frame(job, job.queue.pop(0))

    def _send_frame(self, job: _Periodic, signals: dict) -> None:
        if job.fault == "lost_frame":   # never reaches the bus; its counter was spent all the same
            job.lost_left -= 1
            if job.lost_left <= 0:
                job.fault = None
            return
        data = bytearray(encode(job.message, signals, job.defaults))
        if job.crc_source is not None:
            data[7] = job.crc_source(bytes(data))
        elif job.seal is not None:
            job.seal(data)
        if job.fault == "bad_crc":
            data = _inverted_crc(job, data)
        self._put(job.message, data)
        job.sent += 1

    def send_once(self, name: str, signals: dict) -> None:
        """One frame of `name` now, outside any schedule (a request the DUT answers), with `signals` and the
        DBC's initial values for the rest, its CRC sealed (its counter as `signals` give it)."""
        message = self.db.get_message_by_name(name)
        data = bytearray(encode(message, signals, signal_defaults(message)))
        protection = e2e.protection_of(message, self.protections)
        if protection is not None and protection.seal is not None:
            protection.seal(data)
        self._put(message, data)

    def send_frame(self, name: str, data: bytes) -> None:
        """One frame of `name` now with `data` as it is: a transport protocol's frame (ISO-TP), whose bytes are
        not the DBC's signals."""
        self._put(self.db.get_message_by_name(name), data)

    def _put(self, message, data) -> None:
        msg = can.Message(arbitration_id=message.frame_id, data=data, is_extended_id=message.is_extended_frame,
                          is_fd=message.is_fd)
        self.bus.send(msg)
        if self.on_send is not None:
            self.on_send(msg)


def _inverted_crc(job: _Periodic, data: bytearray) -> bytes:
    """The frame with every bit of its CRC signal inverted, the rest as it was."""
    signals = decode(job.message, bytes(data))
    width = job.message.get_signal_by_name(job.crc_signal).length
    signals[job.crc_signal] = ~int(signals[job.crc_signal]) & ((1 << width) - 1)
    return encode(job.message, signals, job.defaults)
