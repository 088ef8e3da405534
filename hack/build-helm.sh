#!/bin/bash
# Builds the Helm CLI (helm.sh/helm/v3 at hack/helm/go.mod's version, from
# the Go module proxy: Helm is not in Debian) into bin/helm, for kubeapi's
# TestHelm, which is skipped without it. hack/helm is a module of its own so
# that Helm's dependencies stay out of podrun's.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/hack/helm"
GOFLAGS=-mod=mod go build -o "$root/bin/helm" helm.sh/helm/v3/cmd/helm
