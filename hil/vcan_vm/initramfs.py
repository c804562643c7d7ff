"""Build the VM's initramfs in memory: busybox, the kernel modules for CAN and 9p, and the /init script.

The archive is an uncompressed cpio in the "newc" format (the one the Linux kernel unpacks), written
here so that no cpio or gzip tool is needed; uncompressed also spares the emulated CPU a decompression.
Modules compressed with xz or gzip are decompressed here (stdlib); zstd needs the `zstd` tool.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import stat
import subprocess
from pathlib import Path

from hil.vcan_vm.parts import MissingParts, module_name, read_module_index

# Load order that worked (DESIGN.md, "vcan in a VM"). Dependencies are added from modules.dep, and
# names that are built into the kernel or absent from it (netfs and fscache merged in newer kernels)
# are skipped.
MODULE_LOAD_ORDER = (
    "can", "can_raw", "can_dev", "vcan",
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
    "netfs", "fscache", "9pnet", "9pnet_virtio", "9p",
)
MODULES_IN_IMAGE = "/modules"  # where /init finds the .ko files


class NewcArchive:
    """An in-memory cpio archive in the kernel's "newc" format (magic 070701, no checksums)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._next_inode = 1

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        self._add(name, stat.S_IFDIR | mode, b"")

    def add_file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._add(name, stat.S_IFREG | mode, data)

    def add_char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._add(name, stat.S_IFCHR | mode, b"", rdev=(major, minor))

    def to_bytes(self) -> bytes:
        trailer = NewcArchive()
        trailer._add("TRAILER!!!", 0, b"", inode=0)
        return b"".join(self._chunks + trailer._chunks)

    def _add(self, name: str, mode: int, data: bytes, rdev: tuple[int, int] = (0, 0),
             inode: int | None = None) -> None:
        if inode is None:
            inode, self._next_inode = self._next_inode, self._next_inode + 1
        encoded_name = name.lstrip("/").encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        # newc header fields: ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor
        # namesize check, each as 8 hex digits.
        fields = (inode, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded_name), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self._chunks += [header, encoded_name, _pad4(len(header) + len(encoded_name)), data, _pad4(len(data))]


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def modules_to_load(modules_dir: Path) -> list[tuple[str, Path]]:
    """(name, file) of each module to insmod, dependencies first, following MODULE_LOAD_ORDER."""
    loadable, builtin = read_module_index(modules_dir)
    ordered: list[tuple[str, Path]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen or name in builtin or name not in loadable:
            return
        seen.add(name)
        path, deps = loadable[name]
        for dep in deps:
            visit(module_name(dep))
        ordered.append((name, modules_dir / path))

    for wanted in MODULE_LOAD_ORDER:
        visit(wanted)
    return ordered


def read_module(path: Path) -> bytes:
    """The module's ELF bytes; busybox insmod cannot decompress, so do it here."""
    data = path.read_bytes()
    if path.name.endswith(".ko"):
        return data
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise MissingParts(f"{path} is zstd-compressed; install the `zstd` package to unpack it")
        return subprocess.run([zstd, "-dc", str(path)], capture_output=True, check=True, timeout=60).stdout
    raise MissingParts(f"{path}: unknown kernel module compression (expected .ko, .ko.xz, .ko.gz or .ko.zst)")


def build_initramfs(busybox: Path, modules: list[tuple[str, Path]], init_script: str) -> bytes:
    """The cpio archive: /init (busybox sh script), /bin/busybox, /modules/<name>.ko, empty mount points."""
    archive = NewcArchive()
    for directory in ("bin", "dev", "proc", "sys", "newroot", MODULES_IN_IMAGE):
        archive.add_dir(directory)
    # The kernel opens /dev/console for PID 1's stdio before /init can mount devtmpfs.
    archive.add_char_device("dev/console", 5, 1)
    archive.add_file("bin/busybox", busybox.read_bytes(), mode=0o755)
    for name, path in modules:
        archive.add_file(f"{MODULES_IN_IMAGE}/{name}.ko", read_module(path))
    archive.add_file("init", init_script.encode(), mode=0o755)
    return archive.to_bytes()
