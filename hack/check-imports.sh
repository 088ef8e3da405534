#!/usr/bin/env bash
# Enforces the package rules of docs/architecture.md: libcontainer only in
# runtime/, and the leaf packages never import each other or the supervisor.
set -euo pipefail
cd "$(dirname "$0")/.."
mod=$(go list -m)
leaves=(runtime image netns cgroups probes volumes)
fail=0
for pkg in $(go list ./...); do
	rel=${pkg#"$mod"}; rel=${rel#/}
	imports=$(go list -f '{{join .Imports "\n"}}' "$pkg")
	if grep -q '^github.com/opencontainers/runc/libcontainer' <<<"$imports" && [[ $rel != runtime* ]]; then
		echo "$rel imports libcontainer: only runtime/ may"; fail=1
	fi
	for leaf in "${leaves[@]}"; do
		[[ $rel == "$leaf" || $rel == "$leaf"/* ]] || continue
		for other in "${leaves[@]}" pod daemon api manifest; do
			[[ $other == "$leaf" ]] && continue
			if grep -qx "$mod/$other\(/.*\)\?" <<<"$imports"; then
				echo "$rel imports $other: leaf packages import no other podrun package"; fail=1
			fi
		done
	done
done
exit $fail
