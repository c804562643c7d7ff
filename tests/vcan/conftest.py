"""Tests that need a real Linux SocketCAN vcan0 skip, with the way to get one, when it is absent.

Get vcan0 on a host with kernel CAN:
    sudo modprobe vcan && sudo ip link add dev vcan0 type vcan && sudo ip link set up vcan0
or, on a host without it, run these tests in a throwaway VM:
    hil vcan-vm -- python -m pytest -p no:cacheprovider tests/vcan
"""

from pathlib import Path

import pytest

VCAN_CHANNEL = "vcan0"
NO_VCAN_REASON = (
    f"no {VCAN_CHANNEL} interface (/sys/class/net/{VCAN_CHANNEL} is absent): run `sudo modprobe vcan && "
    f"sudo ip link add dev {VCAN_CHANNEL} type vcan && sudo ip link set up {VCAN_CHANNEL}`, or where the "
    f"kernel has no CAN, `hil vcan-vm -- python -m pytest -p no:cacheprovider tests/vcan`"
)


@pytest.fixture
def vcan_channel() -> str:
    """The SocketCAN interface the vcan tests use."""
    return VCAN_CHANNEL


@pytest.fixture(autouse=True)
def _require_vcan0(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("vcan") and not Path(f"/sys/class/net/{VCAN_CHANNEL}").exists():
        pytest.skip(NO_VCAN_REASON)
