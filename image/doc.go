// Package image owns container images on this machine: reference
// normalisation, registry pulls, archive loads and imports, a content-addressed
// store with one unpacked directory per layer (keyed by chain ID), and the
// overlay root filesystem of each container.
//
// May import: the standard library, x/sys, go-containerregistry and
// containerd's pkg/archive. Never another podrun package.
package image
