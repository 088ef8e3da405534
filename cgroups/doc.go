// Package cgroups owns pod resources: the effective pod requests and limits
// (with sidecars counted the kubelet's way), the QoS class, the mapping of
// requests and limits to cgroup values and oom_score_adj, podrun's cgroup tree
// (podrun/{burstable,besteffort}/pod<uid>/<container>) and usage readers
// (CPU, memory, working set). A container's OOM kill is not read here: the
// runtime, which watches the container's life, reads the cgroup's counter.
//
// It creates, limits and removes the pod cgroups (and garbage-collects those
// of pods that are gone) itself, on cgroup v1 and v2, with one of two
// drivers: cgroupfs writes the files under an injectable mount point;
// systemd has systemd make the tree as units over D-Bus (podrun.slice, QoS
// and pod slices) with the limits as unit properties, so that a
// daemon-reload keeps them, and stops the units again. Container leaves
// (under systemd: scopes) are created by the runtime, from ContainerPath,
// ContainerResources and Systemd.
//
// May import: the standard library, opencontainers/cgroups (its systemd
// driver included), godbus (systemd's reload signal), k8s.io/api and
// apimachinery types, and internal helpers. Never another podrun package.
package cgroups
