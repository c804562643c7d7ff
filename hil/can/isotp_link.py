"""ISO-TP (ISO 15765-2) on one pair of CAN IDs, processed on its owner's ticks: the tester's side (hil.devices.uds)
and the emulated BMS's diagnostic server (hil.sim.uds_server) alike.

can-isotp's `TransportLayerLogic` segments and reassembles; it runs here without a thread of its own, fed the
frames its owner receives (`feed`, from any thread) and processed when its owner says (`process`): on the
bench loop's ticks, or in the firmware's task, so both clocks read alike. Frames are padded to 8 bytes, the DBC
length of a diagnostic message, and received without a separation time or block limit.
"""
from __future__ import annotations

import collections
from collections.abc import Callable

import isotp

PADDING = 0xCC   # what most ECUs pad with
PARAMS = {"tx_padding": PADDING, "tx_data_min_length": 8, "stmin": 0, "blocksize": 0}


class IsoTpLink:
    """Messages out on `txid` through `send(frame bytes)`, in on `rxid` as `feed` gives their frames."""

    def __init__(self, txid: int, rxid: int, send: Callable[[bytes], None]):
        self._rx: collections.deque = collections.deque()
        self.frames_in = 0   # frames fed so far: what a timeout reports
        address = isotp.Address(isotp.AddressingMode.Normal_11bits, txid=txid, rxid=rxid)
        self._stack = isotp.TransportLayerLogic(rxfn=self._next_frame, txfn=lambda msg: send(bytes(msg.data)),
                                                address=address, params=PARAMS)

    def feed(self, msg) -> None:
        """One received frame (python-can's) of the link's receive ID."""
        self.frames_in += 1
        self._rx.append(isotp.CanMessage(arbitration_id=msg.arbitration_id, data=bytes(msg.data)))

    def _next_frame(self, _timeout_s: float):
        return self._rx.popleft() if self._rx else None

    def reset(self) -> None:
        """Whatever was half received or half sent is dropped."""
        self._rx.clear()
        self._stack.reset()

    def send(self, payload: bytes) -> None:
        """Queue one message; its first (or only) frame goes out at once."""
        self._stack.send(payload)
        self._stack.process()

    def process(self) -> None:
        self._stack.process()

    def recv(self) -> bytes | None:
        """The next whole message received, or None."""
        payload = self._stack.recv()
        return None if payload is None else bytes(payload)
