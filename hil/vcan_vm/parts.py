"""Find the host parts the throwaway VM is built from: QEMU, a kernel with its modules, a static busybox.

Limits: x86-64 hosts only, and only a kernel whose modules live in /lib/modules/<version> next to
/boot/vmlinuz-<version> (the Debian and Ubuntu layout). When several kernels qualify, the newest wins.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from hil.errors import HilError

DEBIAN_PACKAGES = ("qemu-system-x86", "linux-image-amd64", "busybox-static")
INSTALL_HINT = (
    "Install them with: sudo apt-get install --no-install-recommends " + " ".join(DEBIAN_PACKAGES)
    + "\n(or run .ci/vcan-vm-deps.sh)"
)

# The busybox-static package installs here; on usr-merged systems both paths name the same file.
BUSYBOX_CANDIDATES = (Path("/usr/bin/busybox"), Path("/bin/busybox"))
# The chroot runs the generated run script with the host's own shell.
HOST_SHELL = Path("/bin/sh")
# Modules the guest cannot work without (vcan0 and the 9p mounts); others in the load list are optional.
REQUIRED_MODULES = ("can", "can_raw", "vcan", "9pnet_virtio", "9p")

PT_INTERP = 3  # ELF program header type naming the dynamic loader: present means "not static"


class MissingParts(HilError):
    """A part needed to boot the VM is missing. The message names the part and the package to install."""


@dataclass(frozen=True)
class VmParts:
    """Everything the VM is made of, all found on the host."""

    qemu: Path
    kernel: Path
    modules_dir: Path  # /lib/modules/<version> matching `kernel`
    busybox: Path


def find_parts(search_path: str | None, boot_dir: Path = Path("/boot"),
               modules_root: Path = Path("/lib/modules")) -> VmParts:
    """Return the VM parts, or raise MissingParts listing every missing one (not only the first)."""
    problems: list[str] = []

    qemu = shutil.which("qemu-system-x86_64", path=search_path)
    if qemu is None:
        problems.append("qemu-system-x86_64 is not on PATH (Debian package qemu-system-x86)")

    kernel, modules_dir, kernel_problem = _find_kernel(boot_dir, modules_root)
    if kernel_problem:
        problems.append(kernel_problem)

    busybox, busybox_problem = _find_static_busybox(search_path)
    if busybox_problem:
        problems.append(busybox_problem)

    if not HOST_SHELL.exists():
        problems.append(f"{HOST_SHELL} does not exist; the VM runs CMD with the host's /bin/sh")

    if problems:
        raise MissingParts("cannot build the VM:\n  - " + "\n  - ".join(problems) + "\n" + INSTALL_HINT)
    assert qemu and kernel and modules_dir and busybox  # every None above added a problem
    return VmParts(qemu=Path(qemu), kernel=kernel, modules_dir=modules_dir, busybox=busybox)


def module_name(path: str) -> str:
    """Kernel module name of a modules.dep path: 'kernel/net/can/can-raw.ko.xz' -> 'can_raw'."""
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def read_module_index(modules_dir: Path) -> tuple[dict[str, tuple[str, list[str]]], set[str]]:
    """Parse modules.dep and modules.builtin: ({name: (path, [dependency paths])}, {built-in names})."""
    loadable: dict[str, tuple[str, list[str]]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, deps = line.partition(":")
        if path:
            loadable[module_name(path)] = (path, deps.split())
    builtin_file = modules_dir / "modules.builtin"
    builtin = {module_name(p) for p in builtin_file.read_text().split()} if builtin_file.exists() else set()
    return loadable, builtin


def _version_key(version: str) -> list[tuple[int, str]]:
    # "6.1.0-56-amd64" sorts after "6.1.0-9-amd64": compare digit runs as numbers.
    return [(int(d), "") if d else (0, s) for d, s in re.findall(r"(\d+)|(\D+)", version)]


def _find_kernel(boot_dir: Path, modules_root: Path) -> tuple[Path | None, Path | None, str]:
    images = sorted(boot_dir.glob("vmlinuz-*"), key=lambda p: _version_key(p.name[len("vmlinuz-"):]),
                    reverse=True)
    if not images:
        return None, None, f"no kernel image {boot_dir}/vmlinuz-* (Debian package linux-image-amd64)"
    rejected: list[str] = []
    for image in images:
        version = image.name[len("vmlinuz-"):]
        modules_dir = modules_root / version
        if not (modules_dir / "modules.dep").exists():
            rejected.append(f"{image.name}: no {modules_dir}/modules.dep")
            continue
        loadable, builtin = read_module_index(modules_dir)
        absent = [m for m in REQUIRED_MODULES if m not in loadable and m not in builtin]
        if absent:
            rejected.append(f"{image.name}: kernel lacks modules {', '.join(absent)}")
            continue
        if not os.access(image, os.R_OK):
            rejected.append(f"{image} is not readable by this user (Ubuntu makes it 0600: "
                            f"run `sudo chmod 0644 {image}` or run as root)")
            continue
        return image, modules_dir, ""
    return None, None, ("no usable kernel (Debian package linux-image-amd64 has vcan and 9p modules): "
                        + "; ".join(rejected))


def _find_static_busybox(search_path: str | None) -> tuple[Path | None, str]:
    on_path = shutil.which("busybox", path=search_path)
    candidates = ([Path(on_path)] if on_path else []) + [p for p in BUSYBOX_CANDIDATES if p.exists()]
    if not candidates:
        return None, "busybox is missing (Debian package busybox-static)"
    for candidate in candidates:
        if _is_static_elf(candidate):
            return candidate, ""
    # A dynamically linked busybox cannot run in the initramfs, which holds no shared libraries.
    return None, f"{candidates[0]} is dynamically linked; the VM needs Debian package busybox-static"


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF executable without a dynamic loader (PT_INTERP)."""
    try:
        with path.open("rb") as f:
            header = f.read(64)
            if header[:6] != b"\x7fELF\x02\x01":
                return False
            phoff, = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP for i in range(phnum))
