"""Start QEMU, stream the guest's two serial ports to our stdout and stderr, and never leave QEMU behind.

QEMU runs in its own session (process group) and gets SIGKILL from the kernel if this process dies
(PR_SET_PDEATHSIG), so neither a timeout, Ctrl-C, SIGTERM nor a crash of hil leaves a VM running.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hil.vcan_vm.guest import HOSTROOT_TAG, RW_TAG_PREFIX, SHARE_TAG
from hil.vcan_vm.parts import VmParts

PR_SET_PDEATHSIG = 1
QUIET_KERNEL_ARGS = "quiet loglevel=0"
# panic=-1 turns a guest kernel panic (for example /init dying) into a reboot, which -no-reboot makes
# QEMU exit on: a broken guest ends at once instead of at the timeout.
KERNEL_ARGS = "console=ttyS0 panic=-1"
KILL_WAIT_S = 10.0
READ_CHUNK_BYTES = 65536


class VmTimeout(Exception):
    """The VM ran longer than its timeout and was killed."""


@dataclass(frozen=True)
class VmSpec:
    parts: VmParts
    initramfs: Path
    share_dir: Path
    rw_dirs: list[Path]
    memory_mb: int
    cpus: int
    verbose: bool


def qemu_command(spec: VmSpec, stdout_fd: int, stderr_fd: int) -> list[str]:
    """QEMU's argv. The guest's ttyS0 writes to stdout_fd, ttyS1 to stderr_fd (pipe fds QEMU inherits)."""
    kernel_args = KERNEL_ARGS if spec.verbose else f"{KERNEL_ARGS} {QUIET_KERNEL_ARGS}"
    rw_shares = []
    for i, directory in enumerate(spec.rw_dirs):
        rw_shares += ["-virtfs", _virtfs(directory, f"{RW_TAG_PREFIX}{i}")]
    return [
        str(spec.parts.qemu),
        # Software emulation: a KVM boot hung on the machines this was built on (DESIGN.md).
        "-accel", "tcg",
        # The default qemu64 CPU lacks SSE4.2 and POPCNT, which current numpy wheels require.
        "-cpu", "max",
        "-smp", str(spec.cpus),
        "-m", str(spec.memory_mb),
        # No default NIC, VGA or option ROMs: less to emulate, a faster boot, no network in the guest.
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(spec.parts.kernel),
        "-initrd", str(spec.initramfs),
        "-append", kernel_args,
        "-chardev", f"file,id=guest_stdout,path=/proc/self/fd/{stdout_fd}",
        "-serial", "chardev:guest_stdout",
        "-chardev", f"file,id=guest_stderr,path=/proc/self/fd/{stderr_fd}",
        "-serial", "chardev:guest_stderr",
        "-virtfs", _virtfs(Path("/"), HOSTROOT_TAG) + ",readonly=on",
        "-virtfs", _virtfs(spec.share_dir, SHARE_TAG),
    ] + rw_shares


def _virtfs(directory: Path, tag: str) -> str:
    # security_model=none: files the guest's root creates belong to the user running QEMU.
    # multidevs=remap: the host root spans several file systems; keep their inode numbers distinct.
    # QEMU option values escape a comma by doubling it.
    path = str(directory).replace(",", ",,")
    return f"local,path={path},mount_tag={tag},security_model=none,multidevs=remap"


def run_vm(spec: VmSpec, timeout_s: float) -> int:
    """Boot the VM, stream its output until QEMU exits, return QEMU's exit status.

    Raises VmTimeout after timeout_s. Output that our stdout or stderr no longer accepts (a closed
    pipe, as in `hil vcan-vm -- CMD | head`) is dropped while CMD runs on.
    """
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    try:
        proc = subprocess.Popen(
            qemu_command(spec, stdout_write, stderr_write),
            stdin=subprocess.DEVNULL,
            pass_fds=(stdout_write, stderr_write),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except BaseException:
        for fd in (stdout_read, stdout_write, stderr_read, stderr_write):
            os.close(fd)
        raise
    os.close(stdout_write)
    os.close(stderr_write)
    try:
        return _stream_until_exit(proc, {stdout_read: sys.stdout, stderr_read: sys.stderr}, timeout_s)
    finally:
        _kill_group(proc)
        os.close(stdout_read)
        os.close(stderr_read)


def _stream_until_exit(proc: subprocess.Popen, outputs: dict, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        for fd in outputs:
            selector.register(fd, selectors.EVENT_READ)
        # The pipes reach EOF when QEMU exits, because QEMU holds their only write ends.
        while selector.get_map():
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise VmTimeout
            for key, _ in selector.select(timeout=remaining_s):
                chunk = os.read(key.fd, READ_CHUNK_BYTES)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                stream = outputs[key.fd]
                if stream is None:
                    continue
                try:
                    stream.buffer.write(chunk)
                    stream.flush()
                except BrokenPipeError:
                    outputs[key.fd] = None
    try:
        return proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        raise VmTimeout from None


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=KILL_WAIT_S)


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. A parent killed with SIGKILL gets no chance to clean
    # up, so ask the kernel to kill QEMU then.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
