#!/usr/bin/env bash
# vmtest.sh: runs podrun's root test suites inside real Debian 12 guests
# (qemu TCG, Debian's own kernel and systemd), one VM at a time, one VM per
# profile. As root. See docs/hosts.md.
#
#   VMTEST_PROFILES  profiles to run (default "debian12-v2 debian12-v1")
#   VMTEST_SUITE     ci (default: hack/vmtest/suite-ci), full (every root suite), or
#                    NAME for the suite file hack/vmtest/suite-NAME
#   VMTEST_CACHE     where the guest disk image is kept (/var/cache/podrun-vmtest)
#   VMTEST_OUT       work and result directory (bin/vmtest)
#   VMTEST_TIMEOUT   seconds one VM may run (default 1500 for ci, 5400 for full)
#   VMTEST_MEM       guest memory in MiB (default 4096)
#   VMTEST_MIRROR    Debian mirror (default: the host's apt sources)
#   VMTEST_DEBUG     a script to run in the guest before the suite (results/debug.log)
#   GO               the go command (default go)
#
# Prints one line per profile, "debian12-v2: N passed, M failed", and exits
# non-zero on any failure, or when a guest did not boot or timed out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
profiles=${VMTEST_PROFILES:-debian12-v2 debian12-v1}
suite=${VMTEST_SUITE:-ci}
cache=${VMTEST_CACHE:-/var/cache/podrun-vmtest}
out=${VMTEST_OUT:-$repo/bin/vmtest}
mem=${VMTEST_MEM:-4096}
GO=${GO:-go}
case $suite in
ci) timeout=${VMTEST_TIMEOUT:-1500} ;;
full) timeout=${VMTEST_TIMEOUT:-5400} ;;
*)
	[ -f "$here/suite-$suite" ] || { echo "VMTEST_SUITE: no suite file $here/suite-$suite" >&2; exit 2; }
	timeout=${VMTEST_TIMEOUT:-1500}
	;;
esac
[ "$(id -u)" = 0 ] || { echo "vmtest: needs root (debootstrap, the 9p share, the guest's root tests)" >&2; exit 2; }
log() { echo "vmtest: $*" >&2; }

# Host packages, from Debian.
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v busybox >/dev/null || need+=(busybox-static) # hack/testimage packs the host's busybox
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The mirror the host's apt uses (deb822 or one-line sources).
mirror=${VMTEST_MIRROR:-$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
	grep -oE '(https?|file)://[^ ]*/debian/?( |$)' | grep -v security | head -1 | tr -d ' ' || true)}
mirror=${mirror:-http://deb.debian.org/debian}

# The guest image, cached under a hash of what builds it.
key=$(cat "$here/packages" "$here/build-image.sh" "$here/guest/vmtest-suite.service" | sha256sum | cut -c1-16)
guest=$cache/guest-$key
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -f "$guest/rootfs.img" ]; then
	log "building the guest image $guest from $mirror (debootstrap; a few minutes, once)"
	rm -rf "$guest.tmp"
	t=$(date +%s)
	"$here/build-image.sh" "$guest.tmp" "$mirror" >&2
	echo "total_s=$(($(date +%s) - t))" >>"$guest.tmp/build-times"
	mv "$guest.tmp" "$guest"
	# Older images of this cache are of no more use.
	find "$cache" -maxdepth 1 -name 'guest-*' ! -name "guest-$key" -exec rm -rf {} +
fi
flock -u 9
log "guest: $guest (kernel $(cat "$guest/kernel-version"); built: $(tr "\n" " " <"$guest/build-times"))"

# What the guest runs, built here: it has no Go toolchain.
share=$out/share
rm -rf "$share"
mkdir -p "$share/tests"
t=$(date +%s)
$GO build -o "$share/podrun" ./cmd/podrun
$GO run ./hack/testimage -o "$share/busybox.tar" >/dev/null
grep -v '^#' "$here/suite-$suite" | awk 'NF {if ($1 ~ /^@/) print $2, $3; else print $1, $2}' | sort -u | while read -r name dir; do
	$GO test -c -o "$share/tests/$name.test" "./$dir"
done
git ls-files -z | tar --null -T - -cf "$share/src.tar"
cp "$here/guest/run-suite.sh" "$share/"
if [ -n "${VMTEST_DEBUG:-}" ]; then cp "$VMTEST_DEBUG" "$share/debug.sh"; fi
grep -v '^#' "$here/suite-$suite" >"$share/suite"
log "test binaries built in $(($(date +%s) - t)) s"

qemu_pid=
cleanup() {
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
}
trap cleanup EXIT

fail=0
summary=()
for p in $profiles; do
	case $p in
	debian12-v2) append="" ;;
	debian12-v1) append="systemd.unified_cgroup_hierarchy=0" ;;
	*) echo "vmtest: unknown profile $p (debian12-v2, debian12-v1)" >&2; exit 2 ;;
	esac
	run=$out/$p
	rm -rf "$run" "$share/results"
	mkdir -p "$run"
	echo "$p" >"$share/profile"
	# A fresh disk per profile, with room for the suites.
	cp --sparse=always "$guest/rootfs.img" "$run/disk.img"
	truncate -s 12G "$run/disk.img"
	e2fsck -fy "$run/disk.img" >/dev/null 2>&1 || true
	resize2fs "$run/disk.img" >/dev/null 2>&1
	log "$p: booting (console: $run/console.log, timeout ${timeout}s)"
	t=$(date +%s)
	timeout -k 10 "$timeout" qemu-system-x86_64 -name "podrun-vmtest-$p" \
		-accel tcg,thread=multi -cpu max -smp 2 -m "$mem" \
		-kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 panic=-1 $append" \
		-drive "file=$run/disk.img,format=raw,if=virtio,cache=unsafe" \
		-virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" \
		-nic none -display none -monitor none -serial "file:$run/console.log" -no-reboot &
	qemu_pid=$!
	rc=0
	wait "$qemu_pid" || rc=$?
	qemu_pid=
	wall=$(($(date +%s) - t))
	rm -f "$run/disk.img"
	if [ -d "$share/results" ]; then mv "$share/results" "$run/results"; fi
	res=$run/results
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		why="timed out after ${timeout}s"
	elif [ ! -f "$res/done" ]; then
		why="the guest stopped before the suite finished (qemu exit $rc; see $run/console.log)"
	else
		why=
	fi
	passed=0 failed=0 skipped=0 failures=()
	for l in "$res"/*.log; do
		[ -f "$l" ] || continue
		name=$(basename "$l" .log)
		case $name in run-suite | debug) continue ;; esac
		n=$(grep -c '^--- PASS' "$l" || true)
		f=$(grep -c '^--- FAIL' "$l" || true)
		s=$(grep -c '^--- SKIP' "$l" || true)
		passed=$((passed + n)) skipped=$((skipped + s))
		while read -r t; do failures+=("$name.$t"); done < <(grep '^--- FAIL' "$l" | awk '{print $3}')
		rcf=$(cat "$res/$name.rc" 2>/dev/null || echo missing)
		if [ "$f" = 0 ] && [ "$rcf" != 0 ]; then
			f=1
			failures+=("$name (exit $rcf, no test failed: see $l)")
		fi
		failed=$((failed + f))
	done
	if [ -f "$res/leakcheck.rc" ] && [ "$(cat "$res/leakcheck.rc")" != 0 ]; then
		failed=$((failed + 1))
		failures+=("leakcheck: $(tr '\n' ' ' <"$res/leakcheck.txt")")
	fi
	times=$(cat "$res/times" 2>/dev/null || true)
	log "$p: VM ran ${wall}s ($times); results in $res"
	for f in "${failures[@]}"; do
		log "$p: FAIL $f"
		# The CI log is often all there is of a run: the end of the failed
		# test's output (a failure named NAME.TEST has it in NAME.log).
		l=$res/${f%%.*}.log t=${f#*.}
		[ -f "$l" ] || continue
		log "$p: $f, the last 60 lines of its output:"
		awk -v t="$t" '$0 == "=== RUN   " t {p = 1} p {print} index($0, "--- FAIL: " t " ") == 1 {p = 0}' "$l" | tail -60 >&2
	done
	line="$p: $passed passed, $failed failed ($skipped skipped)"
	if [ -n "$why" ]; then
		line+=" - $why"
		fail=1
	fi
	[ "$failed" = 0 ] || fail=1
	summary+=("$line")
done
for l in "${summary[@]}"; do echo "$l"; done
exit $fail
