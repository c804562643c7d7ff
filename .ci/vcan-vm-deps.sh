#!/bin/sh
# Install what `hil vcan-vm` needs to boot a throwaway QEMU VM with a real SocketCAN vcan0:
# QEMU (TCG software emulation), a Debian kernel with the vcan module, and a static busybox for the init.
# Idempotent: apt-get skips packages that are already installed, and we skip apt entirely when all are present.
# Needs root (or sudo) and Debian apt sources (Ubuntu calls its kernel package linux-image-generic and
# makes /boot/vmlinuz-* readable by root only).
set -eu

packages="qemu-system-x86 linux-image-amd64 busybox-static"

missing=""
for p in $packages; do
    # dpkg-query exits non-zero, or reports a non-"install ok installed" state, when a package is absent.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $p"
done

if [ -z "$missing" ]; then
    echo "vcan-vm deps: already installed ($packages)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "vcan-vm deps: apt-get not found; install $packages (or your distribution's QEMU, a kernel with" \
         "the vcan and 9p modules, and a static busybox) by hand" >&2
    exit 1
fi

sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"

echo "vcan-vm deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -q
# --no-install-recommends keeps qemu from pulling in GUI and firmware packages we never use.
# shellcheck disable=SC2086  # word splitting of $missing is intended
$sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
