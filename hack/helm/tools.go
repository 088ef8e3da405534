//go:build tools

// Package tools pins the Helm CLI that hack/build-helm.sh builds for the
// kubeapi Helm test, from the Go module proxy (Helm is not in Debian).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
