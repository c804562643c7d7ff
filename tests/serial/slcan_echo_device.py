"""An emulated slcan board for wire tests: echoes each frame back with arbitration id + 1.

Run as ``python slcan_echo_device.py MASTER_FD SLAVE_PATH`` with the pty master fd inherited.
Prints ``DeviceLost: ...`` and exits 0 when the host hangs up; exits 3 after IDLE_LIMIT_S without one.
"""

import sys
import time

import can

from hil.errors import DeviceLost
from hil.serial.slcan import SlcanDeviceBus

IDLE_LIMIT_S = 30.0


def echo(bus: SlcanDeviceBus) -> None:
    deadline = time.monotonic() + IDLE_LIMIT_S
    while time.monotonic() < deadline:
        msg = bus.recv(timeout=0.5)
        if msg is None:
            continue
        id_mask = 0x1FFFFFFF if msg.is_extended_id else 0x7FF
        bus.send(
            can.Message(
                arbitration_id=(msg.arbitration_id + 1) & id_mask,
                is_extended_id=msg.is_extended_id,
                is_remote_frame=msg.is_remote_frame,
                dlc=msg.dlc,
                data=None if msg.is_remote_frame else msg.data,
            )
        )
        deadline = time.monotonic() + IDLE_LIMIT_S


def main() -> int:
    bus = SlcanDeviceBus(int(sys.argv[1]), channel=sys.argv[2])
    try:
        echo(bus)
    except DeviceLost as lost:
        print(f"DeviceLost: {lost}", flush=True)
        print(f"counters: {bus.counters}", flush=True)
        return 0
    finally:
        bus.shutdown()
    print(f"no hang-up within {IDLE_LIMIT_S} s", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
