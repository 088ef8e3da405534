// Package kubectl reproduces what kubectl shows for pods: the READY, STATUS
// and RESTARTS columns of `kubectl get pods` (printPod) and ages as kubectl
// renders them. It is pure and imports only Kubernetes types, so both the
// foreground runner and the client verbs can use it.
package kubectl
