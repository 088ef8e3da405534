// Package image owns container images on this machine: reference
// normalisation, registry pulls, archive loads and imports, a content-addressed
// store with one unpacked directory per layer (keyed by chain ID), and the
// overlay root filesystem of each container.
//
// The pod supervisor uses Open, Lookup and Pull (the pull policy and its
// waiting reasons are the supervisor's), Mount and Unmount; the CLI adds
// Load, Import, List, Remove and Prune.
//
// Several processes may use one store at once. Blobs and unpacked layers
// are written once, under a per-digest lock (an in-process mutex in front
// of a flock), and committed by rename; index.json is rewritten by rename
// under its own lock. Pulls, loads and mounts hold the store lock shared;
// rm and prune hold it exclusively. A mount leaves a lease naming its
// layers in the store (removed by Unmount, or by prune once the container's
// directory is gone), so no layer a container uses is ever deleted.
//
// May import: the standard library, x/sys, x/sync, klauspost/compress (gzip
// and zstd layers), go-containerregistry and containerd's pkg/archive. The
// Docker Engine API (loads from dockerd or podman) is spoken with net/http.
// Never another podrun package.
package image
