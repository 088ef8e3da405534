package netns

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/atomicfile"
)

// state is the one record of a Network shared by every process using the
// same Config (the daemon, each pod shim, a foreground run): IP
// allocations, hostPort reservations and the names of each pod's kernel
// objects. It lives in <StateDir>/<bridge>.json and is only read or written
// under an flock on <bridge>.lock, which the kernel releases if the holder
// dies. Entries are written before any kernel object of the pod exists and
// removed only after all are gone, so a crash at any point leaves an entry
// naming everything to clean.
type state struct {
	// BootID invalidates the whole state after a reboot: the kernel objects
	// are gone, and a disk-backed /run keeps only stale netns files.
	BootID string            `json:"bootID"`
	Subnet string            `json:"subnet"`
	Last   string            `json:"last,omitempty"`  // last IP allocated; allocation continues after it
	Rules  string            `json:"rules,omitempty"` // rulesKey of what the nftables table holds; "" = unknown
	Pods   map[string]*entry `json:"pods"`
}

type entry struct {
	Name        string `json:"name,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	HostNetwork bool   `json:"hostNetwork,omitempty"`
	IP          string `json:"ip,omitempty"`
	Link        string `json:"link,omitempty"`  // host end of the veth
	NetNS       string `json:"netns,omitempty"` // netns file
	Ports       []Port `json:"ports,omitempty"`
	// Terminating: Teardown has withdrawn the pod's hostPorts and is
	// deleting its kernel objects; the IP stays reserved until they are gone.
	Terminating bool `json:"terminating,omitempty"`
	// Released (unix ms): Teardown removed the netns; the kernel deletes
	// eth0 and with it the host end when the namespace's last reference
	// goes. The entry, and the IP, stay until reap sees the link gone.
	Released int64 `json:"released,omitempty"`
}

func (e *entry) bridged() bool { return !e.HostNetwork }

// withState runs fn on the state under the cross-process lock and saves the
// state if fn succeeds.
func (n *Network) withState(fn func(*state) error) error {
	if err := os.MkdirAll(n.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("create network state dir: %w", err)
	}
	lock, err := os.OpenFile(n.lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open network state lock: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock network state %s: %w", n.lockPath, err)
	}
	st, err := n.load()
	if err != nil {
		return err
	}
	if err := fn(st); err != nil {
		return err
	}
	return n.save(st)
}

func (n *Network) load() (*state, error) {
	boot, err := bootID()
	if err != nil {
		return nil, err
	}
	st := &state{BootID: boot, Subnet: n.subnet.String(), Pods: map[string]*entry{}}
	b, err := os.ReadFile(n.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read network state: %w", err)
	}
	var old state
	if err := json.Unmarshal(b, &old); err != nil {
		return nil, fmt.Errorf("parse network state %s: %w", n.statePath, err)
	}
	if old.BootID != boot {
		// Everything in the old state died with the previous boot; only netns
		// files on a disk-backed /run remain.
		for _, e := range old.Pods {
			if e.NetNS != "" {
				if err := removeNS(e.NetNS); err != nil {
					n.log.Warn("remove netns file from before reboot", "path", e.NetNS, "err", err)
				}
			}
		}
		return st, nil
	}
	if old.Pods == nil {
		old.Pods = map[string]*entry{}
	}
	if old.Subnet != st.Subnet {
		if len(old.Pods) > 0 {
			return nil, fmt.Errorf("network %s has pods on subnet %s, not the configured %s: delete them first", n.cfg.Bridge, old.Subnet, st.Subnet)
		}
		old.Subnet, old.Last = st.Subnet, ""
	}
	return &old, nil
}

// save replaces the file atomically. No fsync: the file must survive the
// crash of a process, which the page cache does; after a power loss the boot
// ID discards it anyway.
func (n *Network) save(st *state) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode network state: %w", err)
	}
	return atomicfile.WriteFile(n.statePath, b, 0o600, false)
}

func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// allocate picks the next free address after the last one handed out,
// wrapping around, like CNI host-local: a released address is not reused at
// once, so stale ARP and conntrack entries for it can expire.
func (st *state) allocate(subnet netip.Prefix) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, e := range st.Pods {
		if ip, err := netip.ParseAddr(e.IP); err == nil {
			used[ip] = true
		}
	}
	first := subnet.Addr().Next().Next() // .0 is the network, .1 the gateway
	last := lastAddr(subnet).Prev()      // the broadcast address is not a host
	start := first
	if l, err := netip.ParseAddr(st.Last); err == nil && subnet.Contains(l) && l.Compare(first) >= 0 && l.Compare(last) < 0 {
		start = l.Next()
	}
	ip := start
	for {
		if !used[ip] {
			st.Last = ip.String()
			return ip, nil
		}
		if ip = ip.Next(); ip.Compare(last) > 0 {
			ip = first
		}
		if ip == start {
			return netip.Addr{}, fmt.Errorf("no free IP address in %s: %d pods hold them all", subnet, len(used))
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// newLinkName returns a host veth name unused in the state: "podrun-" and 8
// random hex digits fill IFNAMSIZ-1. The pod is recorded in the link's alias.
func (st *state) newLinkName() string {
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		name := "podrun-" + hex.EncodeToString(b[:])
		taken := false
		for _, e := range st.Pods {
			taken = taken || e.Link == name
		}
		if !taken {
			return name
		}
	}
}

// checkPorts refuses hostPorts that a live pod already holds: the same
// protocol and port on the same host IP, or on any IP if either side
// publishes on all addresses.
func (st *state) checkPorts(id string, ports []Port) error {
	for other, e := range st.Pods {
		if other == id || e.Terminating {
			continue
		}
		for _, held := range e.Ports {
			for _, p := range ports {
				if p.conflicts(held) {
					return fmt.Errorf("%w: %s is held by pod %s/%s (uid %s)", ErrPortInUse, p, e.Namespace, e.Name, other)
				}
			}
		}
	}
	return nil
}

func statePaths(dir, bridge string) (statePath, lockPath string) {
	return filepath.Join(dir, bridge+".json"), filepath.Join(dir, bridge+".lock")
}
