// Package daemon is the composition root of "podrun daemon": it serves the
// API on a unix socket, starts one "podrun shim" per pod, finds running shims
// again after a restart, and cleans what dead pods left. It is never the
// parent of a container.
package daemon
