// Package runtime is the only importer of libcontainer. It creates, starts,
// execs into, signals, waits for and destroys containers; holds each pod's
// sandbox namespaces; turns a plain container description into a libcontainer
// configuration (mounts, capabilities, masked paths, user); and writes
// container output as CRI log files. It knows nothing about Kubernetes types.
//
// May import: the standard library, x/sys, libcontainer, opencontainers/cgroups
// and runtime-spec types.
package runtime
