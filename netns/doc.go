// Package netns owns pod networking: the pod network namespace (created on a
// throw-away locked thread and pinned by a bind mount), the bridge and veth
// pairs, IP address management, podrun's own nftables table (masquerade and
// hostPort), the userspace port proxy, in-namespace dialers, the /etc/hosts and
// /etc/resolv.conf a pod sees, and garbage collection of what a crash left.
//
// # Objects
//
// A Network (one Config) owns, while at least one non-hostNetwork pod is set
// up: the bridge Config.Bridge (default podrun0) with the subnet's first
// address, and the nftables table "ip <Bridge>". Per pod: the netns file
// <NSDir>/<bridge>:<pod ID>, a veth whose host end is podrun-<8 hex> (alias
// "podrun bridge=<Bridge> pod=<ID>") and whose pod end is eth0, an IP, and
// hostPort reservations. All of it is recorded in <StateDir>/<Bridge>.json,
// shared by every process under an flock, before it is created and until it
// is gone. The last pod's Teardown removes the bridge and the table, so with
// no pod set up nothing named podrun is left in the kernel (what
// hack/leakcheck.sh expects). net.ipv4.ip_forward is turned on by the first
// Setup and never turned off; the table's forward chain lets through to the
// pods only replies, published hostPorts and pod-to-pod traffic, so that
// forwarding opens no unpublished pod port to other machines.
//
// # hostPort
//
// Kernel DNAT in podrun's table serves every non-loopback destination (from
// the host, other pods, the pod itself, other machines). A userspace proxy
// in the process that called Setup binds hostIP:hostPort (all addresses by
// default), which holds the port, and serves what NAT cannot: 127.0.0.1 and
// ::1. It stops with Teardown on the same Network value; if that process
// dies, the proxy dies with it and the DNAT rules stay until Teardown or GC
// from any process. SCTP is NAT-only (no loopback).
//
// # Threads
//
// A process using this package must call runtime.LockOSThread() in main's
// init(), so namespace goroutines never run on (and wedge) the main thread.
//
// May import: the standard library, x/sys, vishvananda/netlink and netns,
// google/nftables, k8s.io/api types and k8s.io/apimachinery validation.
// Never another podrun package.
package netns
