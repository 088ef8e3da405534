// Package cgroups owns pod resources: the effective pod requests and limits
// (with sidecars counted the kubelet's way), the QoS class, the mapping of
// requests and limits to cgroup values and oom_score_adj, podrun's cgroup tree
// (podrun/{burstable,besteffort}/pod<uid>/<container>) and usage readers
// (CPU, memory, working set). A container's OOM kill is not read here: the
// runtime, which watches the container's life, reads the cgroup's counter.
//
// It creates, limits and removes the pod cgroups (and garbage-collects those
// of pods that are gone) itself, writing cgroupfs files under an injectable
// mount point, on cgroup v1 and v2. Container leaves are created by the
// runtime, from ContainerPath and ContainerResources.
//
// May import: the standard library, opencontainers/cgroups, k8s.io/api and
// apimachinery types, and internal helpers. Never another podrun package.
package cgroups
