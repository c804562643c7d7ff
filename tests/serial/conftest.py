"""A scripted serial device on a TCP socket, for SerialLink tests over ``socket://127.0.0.1:PORT``."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest

from hil.serial.framing import FrameScanner
from hil.serial.protocols import FramedProtocol

THREAD_STOP_TIMEOUT_S = 5.0
ACCEPT_TIMEOUT_S = 5.0


class ScriptedDevice:
    """Answers each request frame with ``respond(request, index)``: bytes to send, or None to hang up.

    The requests it has seen are in ``requests``. Runs in a thread; stop() joins it with a timeout.
    """

    def __init__(self, protocol: FramedProtocol, respond: Callable[[bytes, int], bytes | None]) -> None:
        self.requests: list[bytes] = []
        self._scanner = FrameScanner(protocol)
        self._respond = respond
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(ACCEPT_TIMEOUT_S)
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name=f"scripted device {self.url}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self._server.accept()
        except OSError:
            return
        with connection:
            connection.settimeout(0.05)
            while not self._stop.is_set():
                try:
                    data = connection.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    return
                for request in self._scanner.feed(data):
                    self.requests.append(request)
                    reply = self._respond(request, len(self.requests) - 1)
                    if reply is None:
                        return
                    connection.sendall(reply)

    def stop(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(THREAD_STOP_TIMEOUT_S)
        assert not self._thread.is_alive(), f"{self._thread.name} did not stop"


@pytest.fixture
def scripted_device():
    """Factory: scripted_device(protocol, respond) -> ScriptedDevice; all are stopped after the test."""
    devices: list[ScriptedDevice] = []

    def start(protocol: FramedProtocol, respond: Callable[[bytes, int], bytes | None]) -> ScriptedDevice:
        devices.append(ScriptedDevice(protocol, respond))
        return devices[-1]

    yield start
    for device in devices:
        device.stop()
