#!/bin/bash
# Runs inside the vmtest guest (started by vmtest-suite.service, from the
# 9p share mounted on /mnt/host): sets the profile's host up the way users'
# machines are, runs the suite listed in /mnt/host/suite and writes
# everything to /mnt/host/results. The unit powers the guest off afterwards.
set -u
share=/mnt/host
out=$share/results
mkdir -p "$out"
exec > >(tee "$out/run-suite.log") 2>&1
boot=$(cut -d' ' -f1 /proc/uptime)
echo "vmtest: suite runner started at uptime $boot s"
profile=$(cat "$share/profile")
{
	echo "profile: $profile"
	echo "kernel: $(uname -r)"
	echo "cmdline: $(cat /proc/cmdline)"
	echo "cgroup fs: $(stat -fc %T /sys/fs/cgroup)"
	echo "systemd: $(systemctl --version | head -1)"
	echo "resolv.conf: $(readlink /etc/resolv.conf)"
	echo "mounts: $(findmnt -no TARGET,OPTIONS / | tr -s ' '); $(findmnt -no TARGET,OPTIONS /run | tr -s ' ')"
	echo "apparmor: enabled=$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null) $(apparmor_parser -V 2>/dev/null | head -1)"
	systemd-analyze time 2>&1 | head -1
} | tee "$out/env.txt"

# "The outside": a network namespace behind a veth, the guest's default
# route, serving DNS (dnsmasq) as the upstream of systemd-resolved.
ip netns add outside
ip link add vmt-out type veth peer name eth0 netns outside
ip addr add 192.0.2.1/24 dev vmt-out
ip link set vmt-out up
ip -n outside addr add 192.0.2.2/24 dev eth0
ip -n outside link set eth0 up
ip -n outside link set lo up
ip route add default via 192.0.2.2
ip netns exec outside dnsmasq --no-resolv --no-hosts --bind-interfaces --listen-address=192.0.2.2 \
	--address=/outside.test/192.0.2.2 --pid-file=/run/vmtest-dnsmasq.pid
mkdir -p /etc/systemd/resolved.conf.d
printf '[Resolve]\nDNS=192.0.2.2\nDomains=~.\n' >/etc/systemd/resolved.conf.d/vmtest.conf
systemctl restart systemd-resolved
# Docker's leftover on so many hosts: iptables (nft backend) FORWARD DROP.
iptables -P FORWARD DROP
{
	echo "resolv.conf nameserver: $(grep ^nameserver /etc/resolv.conf)"
	echo "resolvectl query outside.test: $(resolvectl query outside.test 2>&1 | head -1)"
	echo "iptables: $(iptables -V) FORWARD policy $(iptables -S FORWARD | head -1)"
} | tee -a "$out/env.txt"

src=/var/tmp/podrun-src
mkdir -p "$src" /var/tmp/podrun-bin
tar -xf "$share/src.tar" -C "$src"
cp "$share"/tests/* "$share/podrun" "$share/busybox.tar" /var/tmp/podrun-bin/
export PODRUN_TEST_BIN=/var/tmp/podrun-bin/podrun PODRUN_TEST_IMAGE=/var/tmp/podrun-bin/busybox.tar
# The record dnsmasq serves above, for integration.TestHostUpstreamDNS.
export PODRUN_TEST_DNS=outside.test=192.0.2.2

# VMTEST_DEBUG: a script of the host's to run first (output in results/debug.log).
if [ -f "$share/debug.sh" ]; then
	(cd "$src" && bash "$share/debug.sh") >"$out/debug.log" 2>&1
fi

# suite: one line per test binary: [@PROFILE] NAME PKGDIR [go test flags...];
# a line with @PROFILE runs only in that profile.
t0=$(cut -d' ' -f1 /proc/uptime)
while read -r name dir flags; do
	case $name in '' | '#'*) continue ;; esac
	if [ "${name#@}" != "$name" ]; then
		[ "${name#@}" = "$profile" ] || continue
		read -r name dir flags <<<"$dir $flags"
	fi
	echo "vmtest: === $name ($dir) $flags"
	s=$(cut -d' ' -f1 /proc/uptime)
	# shellcheck disable=SC2086
	(cd "$src/$dir" && timeout -k 10 2400 "/var/tmp/podrun-bin/$name.test" -test.root -test.v -test.count=1 -test.timeout=35m $flags) \
		>"$out/$name.log" 2>&1 </dev/null
	rc=$?
	echo "$rc" >"$out/$name.rc"
	e=$(cut -d' ' -f1 /proc/uptime)
	echo "vmtest: $name exit $rc after $(awk "BEGIN{print $e-$s}") s: $(grep -c '^--- PASS' "$out/$name.log") passed, $(grep -c '^--- FAIL' "$out/$name.log") failed, $(grep -c '^--- SKIP' "$out/$name.log") skipped"
done <"$share/suite"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "suite_s=$(awk "BEGIN{print $t1-$t0}") boot_s=$boot" >"$out/times"
(cd "$src" && bash hack/leakcheck.sh) >"$out/leakcheck.txt" 2>&1
echo $? >"$out/leakcheck.rc"
dmesg >"$out/dmesg.txt"
journalctl -b --no-pager >"$out/journal.txt" 2>&1
echo done >"$out/done"
sync
