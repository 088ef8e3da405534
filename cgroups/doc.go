// Package cgroups owns pod resources: the effective pod requests and limits
// (with sidecars counted the kubelet's way), the QoS class, the mapping of
// requests and limits to cgroup values, podrun's cgroup tree
// (podrun/{burstable,besteffort}/pod<uid>/<container>), usage and OOM counters.
//
// May import: the standard library, opencontainers/cgroups, and k8s.io/api and
// apimachinery types. Never another podrun package.
package cgroups
