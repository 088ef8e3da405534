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
// hack/leakcheck.sh expects). Teardown removes the netns and does not wait
// for the veth: the kernel deletes it with the namespace, asynchronously
// (unregistering a device waits ~26 ms for RCU). Its entry keeps the IP
// until the link is gone; the next Setup or GC forgets it then (reap), and
// deletes the veth itself if something still holds the namespace 2 s
// later. Settle waits for all of it. net.ipv4.ip_forward is turned on by the first
// Setup and never turned off; the table's forward chain lets through to the
// pods only replies, published hostPorts and pod-to-pod traffic, so that
// forwarding opens no unpublished pod port to other machines.
//
// # Other tools' FORWARD chains
//
// A drop in any base chain on the forward hook is final in nftables, so an
// iptables FORWARD policy of DROP (Docker sets one; firewalld and admins do
// too) stops pod traffic whatever podrun's table accepts; with br_netfilter
// and bridge-nf-call-iptables=1 that includes pod -> pod frames on the
// bridge. While podrun's table exists, podrun therefore also inserts
// "-o <Bridge>" and "-i <Bridge>" ACCEPT rules, commented
// "podrun:<Bridge>", at the head of the iptables filter table's FORWARD
// chain (nf_tables "ip filter" and/or legacy x_tables "filter", whichever
// exists), as the CNI firewall plugin and netavark do. -o is safe to accept
// wholesale: podrun's own forward chain still drops what is not a reply, a
// hostPort or pod -> pod. The last pod's Teardown (and GC) deletes exactly the
// rules with that comment, found in "iptables -S FORWARD"; other rules are
// never touched. With no such table nothing is run, and the table's
// existence is checked over netlink and /proc/net/ip_tables_names, so hosts
// without another firewall pay nothing.
//
// The rules are written by the iptables binary of that table's backend
// (iptables-nft / iptables-legacy, or an iptables whose -V names it), not
// as nftables expressions: the table belongs to iptables, and a rule
// iptables-nft cannot parse makes it refuse the whole table as
// incompatible, which breaks Docker; mimicking iptables-nft's expression
// and comment layout would tie podrun to an internal format that changes
// between iptables versions and would not cover the legacy backend. The
// cost, measured on this 2-core machine at load ~4: one run of the binary
// takes 35-60 ms (-V 37 ms, -S 35 ms, -I 58 ms), so the first pod's Setup
// pays one -S and two -I (~150 ms) and the last pod's Teardown one -S and
// two -D (concurrent with deleting the table and bridge), only on hosts
// that have such a table; later pods pay nothing (the rules do not depend
// on the pods). When a table exists but no binary does, Setup logs a
// warning and goes on.
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
