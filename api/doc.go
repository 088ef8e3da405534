// Package api serves podrun's HTTP API over a unix socket, shaped like the
// Kubernetes core/v1 REST API, with errors as metav1.Status.
package api
