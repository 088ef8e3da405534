#!/usr/bin/env bash
# Installs what building podrun and running its pods and tests needs, from
# Debian/Ubuntu packages, when run as root; otherwise stops at once naming
# the packages to install. make demo, make test and make bench call it first.
set -euo pipefail
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
need=()
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v busybox >/dev/null || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v nft >/dev/null || need+=(nftables)
command -v setpriv >/dev/null || need+=(util-linux)
command -v iptables-nft >/dev/null || need+=(iptables) # the FORWARD DROP test (a Docker-style host)
# hack/deps.sh test: also what only the tests use; bench: what make bench
# compares podrun with (podman, run with runc).
case ${1:-} in
test | bench) command -v podman >/dev/null || need+=(podman) ;; # test: the image load --from-daemon tests (podman system service)
esac
[ "${1:-}" = bench ] && { command -v runc >/dev/null || need+=(runc); }
dpkg -s libseccomp-dev >/dev/null 2>&1 || need+=(libseccomp-dev)
if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
	echo "podrun needs Go >= 1.26 (https://go.dev/dl/, installed as /usr/local/go): not found on PATH" >&2
	exit 1
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "podrun needs these packages: apt-get install ${need[*]} (as root); then run make again" >&2
	exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}"
