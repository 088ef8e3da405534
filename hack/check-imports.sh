#!/usr/bin/env bash
# Enforces the package rules of docs/architecture.md: libcontainer only in
# runtime/, the leaf packages never import each other or anything above
# them, and the supervisor, the node and the controllers stay in their rooms.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
leaves=(runtime image netns cgroups probes volumes)
fail=0
# forbid PKG OTHER...: PKG (and its subpackages) must import none of OTHER.
forbid() {
	local rel=$1 imports=$2; shift 2
	for other in "$@"; do
		[[ $other == "$rel" ]] && continue
		if grep -qx "$mod/$other\(/.*\)\?" <<<"$imports"; then
			echo "$rel imports $other: see the import rules in docs/architecture.md"; fail=1
		fi
	done
}
for pkg in $(go list ./...); do
	rel=${pkg#"$mod"}; rel=${rel#/}
	imports=$(go list -f '{{join .Imports "\n"}}' "$pkg")
	if grep -q '^github.com/opencontainers/runc/libcontainer' <<<"$imports" && [[ $rel != runtime* ]]; then
		echo "$rel imports libcontainer: only runtime/ may"; fail=1
	fi
	case $rel in
	runtime* | image* | netns* | cgroups* | probes* | volumes*)
		forbid "${rel%%/*}" "$imports" "${leaves[@]}" pod node shim daemon api manifest controller ;;
	pod) forbid pod "$imports" netns volumes node shim daemon api controller ;;
	node) forbid node "$imports" shim daemon api controller ;;
	controller/*) forbid controller "$imports" pod node shim daemon api runtime ;;
	shim) forbid shim "$imports" daemon controller ;;
	kubeapi*) forbid kubeapi "$imports" "${leaves[@]}" pod node shim daemon manifest controller ;;
	internal/*) forbid internal "$imports" "${leaves[@]}" pod node shim daemon api manifest controller ;;
	esac
done
# Only shim/ knows the run directory's files.
if grep -rln --include='*.go' -e '"checkpoint.json"' -e '"final.json"' -e '"shim.sock"' -e '"shim.lock"' . | grep -v '^./shim/' | grep -v _test.go; then
	echo "the files above name the shim's run directory files: only shim/ may"; fail=1
fi
exit $fail
