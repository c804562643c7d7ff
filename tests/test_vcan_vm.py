"""`hil vcan-vm` end to end: boot the throwaway QEMU VM and run commands in it (python -m hil.vcan_vm).

Each VM boot takes several seconds under software emulation; the whole file takes about a minute.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil.vcan_vm.parts import MissingParts, find_parts

pytestmark = [pytest.mark.vm, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[1]
# Boot plus a Python start under emulation takes 10-30 s; leave room for a loaded CI machine.
VM_TIMEOUT_S = 300
# The subprocess timeout is a backstop beyond the VM's own, so a bug in hil cannot hang the suite.
HIL_TIMEOUT_S = VM_TIMEOUT_S + 60
QEMU_POLL_S = 0.2

ROUND_TRIP = """
import can
with can.Bus(interface="socketcan", channel="vcan0") as a, \\
        can.Bus(interface="socketcan", channel="vcan0") as b:
    a.send(can.Message(arbitration_id=0x123, data=b"\\x01\\x02", is_extended_id=False))
    m = b.recv(timeout=10)
    print(f"round trip {m.channel} 0x{m.arbitration_id:X} {m.data.hex()}")
"""


def _missing_parts_reason() -> str | None:
    try:
        find_parts(os.environ.get("PATH"))
    except MissingParts as exc:
        return str(exc)
    return None


MISSING_PARTS = _missing_parts_reason()
needs_vm = pytest.mark.skipif(MISSING_PARTS is not None, reason=f"hil vcan-vm {MISSING_PARTS}")


def _hil_vcan_vm(*args: str, env: dict | None = None, timeout_s: float = HIL_TIMEOUT_S):
    return subprocess.run([sys.executable, "-m", "hil.vcan_vm", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)


def _env_with_tmpdir(tmp_path: Path) -> dict:
    # A private TMPDIR puts its path into QEMU's command line, which tells our VMs from any other.
    return {**os.environ, "TMPDIR": str(tmp_path)}


def _qemu_pids_using(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"qemu-system" in cmdline and str(path).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@needs_vm
def test_python_can_socketcan_round_trip_on_vcan0():
    result = _hil_vcan_vm("--timeout", str(VM_TIMEOUT_S), "--", sys.executable, "-c", ROUND_TRIP)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["round trip vcan0 0x123 0102"]


@needs_vm
def test_exit_code_streams_environment_and_file_system(tmp_path):
    script = (
        'echo "out $HIL_PROBE"; echo err >&2; pwd; '
        'echo scratch > "$TMPDIR/f" && cat "$TMPDIR/f"; '
        'touch /tmp/writable && echo tmp-writable; '
        'touch probe-file 2>/dev/null || echo tree-read-only; '
        'exit 3'
    )
    awkward_value = "it's \"quoted\" $HOME `x` \\ and spaced"

    result = _hil_vcan_vm("--timeout", str(VM_TIMEOUT_S), "--", "sh", "-c", script,
                          env={**_env_with_tmpdir(tmp_path), "HIL_PROBE": awkward_value})

    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == [f"out {awkward_value}", str(REPO_ROOT), "scratch", "tmp-writable",
                                          "tree-read-only"]
    assert result.stderr.splitlines() == ["err"]
    assert list(tmp_path.iterdir()) == [], "the VM's temporary directory was not removed"


def test_missing_qemu_names_the_debian_packages(tmp_path):
    result = _hil_vcan_vm("--", "true", env={**os.environ, "PATH": str(tmp_path)}, timeout_s=60)

    assert result.returncode == 2
    assert "qemu-system-x86_64" in result.stderr
    assert "apt-get install --no-install-recommends qemu-system-x86 linux-image-amd64 busybox-static" \
        in result.stderr
    assert "Traceback" not in result.stderr


@needs_vm
def test_timeout_kills_the_vm_and_exits_124(tmp_path):
    result = _hil_vcan_vm("--timeout", "3", "--", "sleep", "600", env=_env_with_tmpdir(tmp_path))

    assert result.returncode == 124
    assert "--timeout 3 s" in result.stderr
    assert _qemu_pids_using(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


@needs_vm
def test_sigterm_kills_the_vm_and_cleans_up(tmp_path):
    hil = subprocess.Popen([sys.executable, "-m", "hil.vcan_vm", "--timeout", str(VM_TIMEOUT_S), "--",
                            "sleep", "600"], cwd=REPO_ROOT, env=_env_with_tmpdir(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not _qemu_pids_using(tmp_path):
            assert time.monotonic() < deadline, "QEMU did not start within 60 s"
            assert hil.poll() is None, hil.communicate()
            time.sleep(QEMU_POLL_S)

        hil.send_signal(signal.SIGTERM)
        _, stderr = hil.communicate(timeout=60)
    finally:
        if hil.poll() is None:
            hil.kill()
            hil.wait()

    assert hil.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by a signal" in stderr
    assert _qemu_pids_using(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
