// Package kubectl reproduces what kubectl shows: the columns of `kubectl
// get` for pods (READY, STATUS and RESTARTS as printPod computes them),
// Deployments, Jobs, ConfigMaps and Secrets, the layout of `kubectl
// describe pod` (describePod), and ages as kubectl renders them. It is pure
// and imports only Kubernetes types, so both the foreground runner and the
// client verbs can use it.
package kubectl
