#!/usr/bin/env bash
# build-image.sh OUT_DIR MIRROR: builds the vmtest guest (Debian bookworm,
# systemd as PID 1, Debian's kernel and initrd built inside the chroot) into
# OUT_DIR/{rootfs.img,vmlinuz,initrd.img,kernel-version}. Run as root by
# vmtest.sh, which caches OUT_DIR under a hash of this script and packages.
set -euo pipefail
out=$1 mirror=$2
here=$(cd "$(dirname "$0")" && pwd)
pkgs=$(grep -v '^#' "$here/packages" | xargs)
work=$(mktemp -d /var/tmp/podrun-vmtest-build.XXXXXX)
root=$work/root
cleanup() {
	for m in dev/pts dev proc sys; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	rm -rf "$work"
}
trap cleanup EXIT

t0=$(date +%s)
debootstrap --variant=minbase --include=systemd-sysv bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
	{ tail -30 "$work/debootstrap.log"; exit 1; }
t1=$(date +%s)
echo "debootstrap: $((t1 - t0)) s"

mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
# No service starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
mkdir -p "$root/etc/initramfs-tools/conf.d"
cat >"$root/etc/initramfs-tools/conf.d/vmtest" <<'X'
MODULES=most
X
printf 'virtio_pci\nvirtio_blk\next4\n' >>"$root/etc/initramfs-tools/modules"
chroot "$root" apt-get update -q >"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; exit 1; }
# shellcheck disable=SC2086
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs \
	>>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log"; exit 1; }
chroot "$root" apt-get clean
rm -f "$root/usr/sbin/policy-rc.d"
t2=$(date +%s)
echo "packages and initrd: $((t2 - t1)) s"

# The guest: no login prompt needed; root without password on the console
# for debugging (-serial mon:stdio by hand).
echo vmtest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vmtest\n' >"$root/etc/hosts"
chroot "$root" passwd -d root >/dev/null
cat >"$root/etc/fstab" <<'X'
/dev/vda / ext4 rw,errors=remount-ro 0 1
host /mnt/host 9p trans=virtio,version=9p2000.L,msize=524288,nofail 0 0
X
mkdir -p "$root/mnt/host"
printf '9p\n9pnet_virtio\noverlay\nveth\nbridge\nbr_netfilter\n' >"$root/etc/modules-load.d/vmtest.conf"
# Ubuntu's resolver setup: systemd-resolved with its 127.0.0.53 stub.
ln -sf ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
chroot "$root" systemctl enable systemd-resolved.service >/dev/null 2>&1
# The suite runner; what it runs comes from the share (guest/run-suite.sh).
install -m 0644 "$here/guest/vmtest-suite.service" "$root/etc/systemd/system/"
chroot "$root" systemctl enable vmtest-suite.service >/dev/null 2>&1
# Nothing else competes for the two emulated CPUs.
for u in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer systemd-timesyncd.service; do
	chroot "$root" systemctl mask "$u" >/dev/null 2>&1 || true
done
chroot "$root" systemctl set-default multi-user.target >/dev/null 2>&1

kver=$(ls "$root/lib/modules" | sort -V | tail -1)
for m in dev/pts dev proc sys; do umount "$root/$m"; done
mkdir -p "$out"
cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$out/initrd.img"
echo "$kver" >"$out/kernel-version"
size=$(( $(du -sm "$root" | cut -f1) + 2048 ))
mkfs.ext4 -q -F -L vmroot -d "$root" "$out/rootfs.img" "${size}M"
t3=$(date +%s)
echo "disk image: $((t3 - t2)) s ($size MB, kernel $kver)"
printf 'debootstrap_s=%s packages_s=%s image_s=%s\n' $((t1 - t0)) $((t2 - t1)) $((t3 - t2)) >"$out/build-times"
