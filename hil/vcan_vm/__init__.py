"""`hil vcan-vm -- CMD...`: run CMD inside a throwaway QEMU VM that has real SocketCAN vcan0 and vcan1.

For hosts whose kernel has no CAN (CONFIG_CAN not set, or hosted CI runners without the vcan module).
The VM boots the host's Debian kernel under software emulation (TCG) with an initramfs built on the
fly, loads can, can-raw and vcan, brings up vcan0 and vcan1, mounts the host root read-only over 9p and runs CMD
there in a chroot, in the caller's directory with the caller's environment. CMD's stdout and stderr
stream to ours as it runs, and hil exits with CMD's exit code.

Needs the Debian packages qemu-system-x86, linux-image-amd64 and busybox-static (.ci/vcan-vm-deps.sh).

Limits, stated plainly:
- Slow: software emulation. On an idle 2-core machine a bare boot (`-- true`) takes 4-6 s, a boot
  plus a python-can round trip about 9 s, and `pytest tests/vcan` about 22 s, mostly Python imports;
  a loaded machine takes 3-4 times as long. Output through the serial ports flows at about 0.4 MB/s.
- The host file system is read-only in the VM. Writable: TMPDIR (a temporary directory shared with
  the host, deleted afterwards), and fresh empty tmpfs on /tmp, /var/tmp, /run and /dev/shm, which
  hide the host's files there, except the working directory and the Python environment, which are
  bound back in read-only when they live there (a CI checkout under /tmp). Use `--rw DIR` for outputs such as
  test reports; pytest needs `-p no:cacheprovider` unless its cache directory is writable.
- CMD's stdout and stderr are terminals in the VM when they are on the host, and pipes otherwise (a
  background process of CMD that keeps one open delays the end until it exits or --timeout).
  stdin is empty. There is no network; the interfaces are lo, vcan0 and vcan1 (a second bus).
- The caller's whole environment is copied into a 0600 script in the temporary directory (deleted at
  exit), except TMPDIR, TMP, TEMP, PWD, OLDPWD, SHLVL and names that are not shell identifiers.
- Nothing is cached: each run builds a fresh initramfs (about 3 MB, well under a second) in a temporary
  directory that is removed on every exit path but SIGKILL, and QEMU is killed with its process group
  (on SIGKILL of hil too, through PR_SET_PDEATHSIG).

Exit codes: CMD's own; 2 when a part is missing (the message names the Debian packages); 124 when
the VM ran past --timeout and was killed; 125 when the VM failed before CMD finished; 130 or 143 when
hil itself was interrupted (SIGINT, SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from hil.vcan_vm.guest import (
    EXIT_CODE_FILE, GUEST_TMPDIR, RUN_SCRIPT, hidden_in_guest, init_script, run_script,
)
from hil.vcan_vm.initramfs import build_initramfs, modules_to_load
from hil.vcan_vm.parts import MissingParts, find_parts
from hil.vcan_vm.qemu import VmSpec, VmTimeout, run_vm

DEFAULT_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = 600.0
# One vCPU measured faster than two on a 2-core host (boot plus round trip 8.7 s against 9.2 s; tests/vcan
# 22 s against 27 s): a second emulated CPU competes with QEMU's own I/O threads. More helps only with
# more host cores and parallel work in CMD.
DEFAULT_CPUS = 1
EXIT_SETUP = 2  # a missing part or a bad argument, like argparse's usage errors
EXIT_TIMEOUT = 124  # like timeout(1)
EXIT_VM_FAILED = 125


class _Stopped(Exception):
    """hil got SIGTERM or SIGHUP; carries the exit code a shell would report."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memory", dest="memory_mb", type=int, default=DEFAULT_MEMORY_MB, metavar="MB",
                        help=f"guest memory in MiB (default {DEFAULT_MEMORY_MB})")
    parser.add_argument("--timeout", dest="timeout_s", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help=f"kill the VM after S seconds, exit 124 (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--rw", dest="rw_dirs", action="append", type=Path, default=[], metavar="DIR",
                        help="make host directory DIR writable in the VM, e.g. for test reports "
                             "(repeatable; DIR must exist)")
    parser.add_argument("--cpus", type=int, default=DEFAULT_CPUS, help=f"guest CPUs (default {DEFAULT_CPUS})")
    parser.add_argument("--verbose", action="store_true",
                        help="show kernel messages and each VM setup step (on stderr)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD...",
                        help="command to run in the VM, with vcan0 up")


def run(args: argparse.Namespace) -> int:
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        return _fail("no command given; usage: hil vcan-vm [options] -- CMD...", EXIT_SETUP)
    cwd = os.getcwd()
    rw_dirs = [Path(os.path.realpath(d)) for d in args.rw_dirs]
    try:
        _check_visible(args.rw_dirs, rw_dirs)
        parts = find_parts(os.environ.get("PATH"))
        modules = modules_to_load(parts.modules_dir)
    except MissingParts as exc:
        return _fail(str(exc), EXIT_SETUP)

    previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGHUP)}
    work_dir = Path(tempfile.mkdtemp(prefix="hil-vcan-vm-"))
    try:
        (work_dir / GUEST_TMPDIR).mkdir()
        _write_private(work_dir / RUN_SCRIPT, run_script(cmd, cwd, dict(os.environ), work_dir))
        terminal = (sys.stdout.isatty(), sys.stderr.isatty())
        # The working tree and the Python environment stay visible even when they live under /tmp.
        keep_visible = (cwd, sys.prefix, os.environ.get("VIRTUAL_ENV", sys.prefix))
        init = init_script([name for name, _ in modules], work_dir, rw_dirs, terminal, args.verbose,
                           keep_visible)
        image = build_initramfs(parts.busybox, modules, init)
        _write_private(work_dir / "initramfs.cpio", image)
        spec = VmSpec(parts=parts, initramfs=work_dir / "initramfs.cpio", share_dir=work_dir,
                      rw_dirs=rw_dirs, memory_mb=args.memory_mb, cpus=args.cpus, verbose=args.verbose)
        qemu_status = run_vm(spec, args.timeout_s)
        return _exit_code(work_dir / EXIT_CODE_FILE, qemu_status)
    except MissingParts as exc:
        return _fail(str(exc), EXIT_SETUP)
    except VmTimeout:
        return _fail(f"the VM ran longer than --timeout {args.timeout_s:g} s and was killed; raise "
                     f"--timeout if CMD is just slow under emulation, or look for a hang in CMD",
                     EXIT_TIMEOUT)
    except KeyboardInterrupt:
        return _fail("interrupted; the VM was killed", 128 + signal.SIGINT)
    except _Stopped as exc:
        return _fail("stopped by a signal; the VM was killed", exc.args[0])
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        if work_dir.exists():
            print(f"hil vcan-vm: could not delete all of {work_dir} (CMD left files there that this user "
                  f"cannot remove); delete it by hand", file=sys.stderr)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_visible(requested_rw_dirs: list[Path], rw_dirs: list[Path]) -> None:
    """Raise MissingParts when a --rw directory cannot be used in the VM."""
    for requested, directory in zip(requested_rw_dirs, rw_dirs):
        if not directory.is_dir():
            raise MissingParts(f"--rw {requested}: not an existing directory; create it first")
        hidden_by = hidden_in_guest(str(directory))
        if hidden_by:
            raise MissingParts(f"--rw {requested}: {directory} is inside {hidden_by}, which the VM replaces "
                               f"with an empty tmpfs; choose a directory elsewhere")


def _exit_code(path: Path, qemu_status: int) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return _fail(f"the VM stopped before CMD finished (QEMU exit status {qemu_status}; see the messages "
                     f"above, and --verbose shows kernel messages and each setup step)", EXIT_VM_FAILED)


def _write_private(path: Path, content: str | bytes) -> None:
    # The run script holds the caller's environment, which may include secrets.
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _raise_stopped(signum, _frame) -> None:
    raise _Stopped(128 + signum)


def _fail(message: str, code: int) -> int:
    print(f"hil vcan-vm: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hil vcan-vm", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
