"""The two shell scripts the guest runs: /init (PID 1, busybox sh) and run.sh (CMD, host /bin/sh in a chroot).

Inside the VM the host root is mounted read-only at /newroot and entered with chroot, so CMD sees the
same files, Python and virtual environment as on the host. Writable there: the shared temporary
directory (same path as on the host, TMPDIR points into it), and fresh tmpfs on /tmp, /var/tmp, /run
and /dev/shm, which hide the host's contents of those directories.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from hil.vcan_vm.initramfs import MODULES_IN_IMAGE

HOSTROOT_TAG = "hostroot"
SHARE_TAG = "hilshare"
RW_TAG_PREFIX = "hilrw"  # --rw directories: hilrw0, hilrw1, ...
# Bigger 9p messages mean fewer round trips through the emulated virtio queue. cache=loose lets the
# guest keep directory entries and file pages of the read-only host root: Python's imports stat many
# paths, and each uncached lookup is a slow trip through TCG and QEMU. The writable share is not cached
# so the exit code reaches the host before power-off.
NINEP_MSIZE = 512000
HOSTROOT_OPTIONS = f"trans=virtio,version=9p2000.L,msize={NINEP_MSIZE},ro,cache=loose"
SHARE_OPTIONS = f"trans=virtio,version=9p2000.L,msize={NINEP_MSIZE},rw"
# Directory and the mode its fresh tmpfs gets (sticky and world-writable, except /run as on a host).
FRESH_TMPFS_DIRS = {"/tmp": "1777", "/var/tmp": "1777", "/run": "0755", "/dev/shm": "1777"}
RUN_SCRIPT = "run.sh"
EXIT_CODE_FILE = "exit_code"
GUEST_TMPDIR = "tmp"  # inside the share

# Variables that describe the host shell or host paths hidden in the VM; TMPDIR is set to the share.
ENV_NOT_PASSED = frozenset({"TMPDIR", "TMP", "TEMP", "PWD", "OLDPWD", "SHLVL", "_"})
SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def init_script(modules: list[str], share_dir: Path, rw_dirs: list[Path], terminal: tuple[bool, bool],
                verbose: bool, keep_visible: tuple[str, ...] = ()) -> str:
    """PID 1: load modules, create vcan0 and vcan1, mount and chroot into the host root, record CMD's exit code.

    Guest stdout and stderr are the serial ports ttyS0 and ttyS1; the host streams each to its own.
    `terminal` says whether the host's stdout and stderr are terminals. Where one is not, CMD writes
    that stream into a pipe (a fifo drained by cat), so programs see a pipe as they would on the host:
    no colours, and the buffering they choose for pipes. A failed setup step prints its log to ttyS1
    and powers off without an exit code file. `rw_dirs` are mounted writable over their read-only view.
    `keep_visible` directories (the working tree, the virtual environment) that a fresh tmpfs would hide
    (a checkout under /tmp) are bound back in, read-only, from the host root mounted at /hostroot.
    """
    q = shlex.quote
    inside = "/newroot" + str(share_dir)
    steps = [f"step insmod {MODULES_IN_IMAGE}/{name}.ko" for name in modules]
    steps += [
        "step ip link add dev vcan0 type vcan",
        "step ip link set up vcan0",
        # A second bus, for a rig whose cell emulator has its own (tests/vcan: the two-bus test).
        "step ip link add dev vcan1 type vcan",
        "step ip link set up vcan1",
        # Loopback too, for tests that also use TCP on 127.0.0.1.
        "step ip link set up lo",
        "step mkdir -p /hostroot",
        f"step mount -t 9p -o {HOSTROOT_OPTIONS} {HOSTROOT_TAG} /hostroot",
        "step mount -o bind /hostroot /newroot",
        "step mount -t proc proc /newroot/proc",
        "step mount -t sysfs sysfs /newroot/sys",
        "step mount -t devtmpfs devtmpfs /newroot/dev",
        "step mkdir -p /newroot/dev/pts /newroot/dev/shm",
        "step mount -t devpts devpts /newroot/dev/pts",
    ]
    steps += [f"[ ! -d /newroot{d} ] || step mount -t tmpfs -o mode={mode} tmpfs /newroot{d}"
              for d, mode in FRESH_TMPFS_DIRS.items()]
    for directory in sorted({os.path.realpath(d) for d in keep_visible if hidden_in_guest(d)}):
        steps += [f"step mkdir -p {q('/newroot' + directory)}",
                  f"step mount -o bind {q('/hostroot' + directory)} {q('/newroot' + directory)}"]
    # The shares come last so that no tmpfs hides them. The temporary directory usually lives under
    # /tmp, which is now empty: recreate its mount point there.
    steps += [
        f"step mkdir -p {q(inside)}",
        f"step mount -t 9p -o {SHARE_OPTIONS} {SHARE_TAG} {q(inside)}",
    ]
    steps += [f"step mount -t 9p -o {SHARE_OPTIONS} {RW_TAG_PREFIX}{i} {q('/newroot' + str(d))}"
              for i, d in enumerate(rw_dirs)]

    trace = 'echo "hil vcan-vm (guest): $*" >/dev/ttyS1' if verbose else ":"
    redirects, drains = [], []
    for fd, port, is_terminal in ((1, "/dev/ttyS0", terminal[0]), (2, "/dev/ttyS1", terminal[1])):
        if is_terminal:
            redirects.append(f"{fd}>{port}")
        else:
            drains.append(f"mkfifo /fd{fd}; cat /fd{fd} >{port} &")
            redirects.append(f"{fd}>/fd{fd}")
    return f"""#!/bin/busybox sh
# PID 1 of a throwaway VM made by hil.vcan_vm (generated; see hil/vcan_vm/guest.py).
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Pass bytes through unchanged: no newline to CR-LF translation on the serial ports.
stty -F /dev/ttyS0 -onlcr
stty -F /dev/ttyS1 -onlcr
log=/setup.log
step() {{
    {trace}
    "$@" >>$log 2>&1 && return 0
    echo "hil vcan-vm: VM setup failed at: $*" >/dev/ttyS1
    cat $log >/dev/ttyS1
    poweroff -f
}}
{chr(10).join(steps)}
{chr(10).join(drains)}
chroot /newroot /bin/sh {q(str(share_dir / RUN_SCRIPT))} </dev/null {" ".join(redirects)}
echo $? >{q(inside + "/" + EXIT_CODE_FILE)}
# Let cat deliver the last output; a background process of CMD that keeps the pipe open delays this.
wait
sync
poweroff -f
"""


def run_script(argv: list[str], cwd: str, environ: dict[str, str], share_dir: Path) -> str:
    """The caller's environment and directory, then exec CMD. Values are single-quoted for sh."""
    q = shlex.quote
    env = {k: v for k, v in environ.items() if k not in ENV_NOT_PASSED and SHELL_NAME.match(k)}
    env["TMPDIR"] = str(share_dir / GUEST_TMPDIR)
    lines = ["# CMD for hil vcan-vm (generated): the caller's environment and directory"]
    lines += [f"export {k}={q(v)}" for k, v in sorted(env.items())]
    lines += [
        f"cd {q(cwd)} || exit 125",
        "exec " + " ".join(q(a) for a in argv),
    ]
    return "\n".join(lines) + "\n"


def hidden_in_guest(path: str) -> str | None:
    """The fresh-tmpfs directory that hides `path` inside the VM, or None if the VM sees it."""
    real = os.path.realpath(path)
    for d in FRESH_TMPFS_DIRS:
        if real == d or real.startswith(d + "/"):
            return d
    return None
