#!/usr/bin/env bash
# Fails when a pod outlived its test: cgroups below podrun's roots, network
# namespaces, mounts, links, nftables tables, iptables FORWARD rules or
# processes named podrun. Run after the suite.
set -u
leaks=""
for h in /sys/fs/cgroup/*/; do
	l=$(find "$h" -mindepth 2 -maxdepth 6 -type d -path '*podrun*' 2>/dev/null | head -5)
	[ -n "$l" ] && leaks+="cgroups: $l"$'\n'
done
l=$(ls /run/netns 2>/dev/null | grep -i podrun | head -5); [ -n "$l" ] && leaks+="netns: $l"$'\n'
l=$(grep -i podrun /proc/self/mountinfo 2>/dev/null | awk '{print $5}' | head -5); [ -n "$l" ] && leaks+="mounts: $l"$'\n'
l=$(ip -o link show 2>/dev/null | grep -i podrun | awk -F': ' '{print $2}' | head -5); [ -n "$l" ] && leaks+="links: $l"$'\n'
l=$(nft list tables 2>/dev/null | grep -i podrun | head -5); [ -n "$l" ] && leaks+="nftables: $l"$'\n'
l=$(iptables-nft -w -S FORWARD 2>/dev/null | grep -o 'podrun:[^" ]*' | head -5); [ -n "$l" ] && leaks+="iptables FORWARD rules: $l"$'\n'
l=$( (pgrep -a -x podrun; pgrep -a -f '^podrun-pause') 2>/dev/null | head -5); [ -n "$l" ] && leaks+="processes: $l"$'\n'
if [ -n "$leaks" ]; then
	printf 'leak check FAILED; left behind:\n%s' "$leaks"
	exit 1
fi
echo "leak check: nothing left behind"
