// Package netns owns pod networking: the pod network namespace (created on a
// throw-away locked thread and pinned by a bind mount), the bridge and veth
// pairs, IP address management, podrun's own nftables table (masquerade and
// hostPort), the userspace port proxy, in-namespace dialers, the /etc/hosts and
// /etc/resolv.conf a pod sees, and garbage collection of what a crash left.
//
// May import: the standard library, x/sys, vishvananda/netlink and netns,
// google/nftables, and k8s.io/api types. Never another podrun package.
package netns
