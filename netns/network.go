package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Defaults of Config.
const (
	DefaultBridge = "podrun0"
	// DefaultSubnet avoids the ranges other tools default to: podman and
	// containerd 10.88/16, nerdctl 10.4.0/24, Docker 172.17/16, kind and
	// flannel 10.244/16, k3s 10.42/16, Parallels 10.211.55/24.
	DefaultSubnet = "10.213.0.0/16"
	// DefaultStateDir is under /run: everything the state describes dies
	// with a reboot, so it should too (a boot ID in the file covers a /run
	// that is not a tmpfs).
	DefaultStateDir = "/run/podrun/net"
	// DefaultNSDir is where `ip netns` looks, for debuggability.
	DefaultNSDir = "/run/netns"
)

// ErrExists: Setup of a pod whose network is already set up.
var ErrExists = errors.New("pod network already set up")

// Config of a Network. Every process that shares a Config (daemon, shims,
// foreground runs) shares its bridge, nftables table and state.
type Config struct {
	Bridge   string // default "podrun0"; also the name of the nftables table "ip <Bridge>"
	Subnet   string // IPv4 CIDR, default DefaultSubnet; must not overlap a route that is not on Bridge
	StateDir string // default DefaultStateDir; holds <Bridge>.json and <Bridge>.lock
	NSDir    string // default /run/netns; netns files are <NSDir>/<Bridge>:<pod ID>
	MTU      int    // pod interface MTU; 0: the MTU of the link holding the default route (else 1500)
	Log      *slog.Logger
}

// Network sets up pod networks: a bridge with a gateway address, a veth per
// pod, outbound masquerade and hostPorts. The bridge and the nftables table
// exist while at least one pod is set up, and are removed with the last one.
type Network struct {
	cfg                 Config
	subnet              netip.Prefix
	gateway             netip.Addr
	mtu                 int
	log                 *slog.Logger
	statePath, lockPath string

	mu      sync.Mutex
	proxies map[string][]stopper // guarded by mu: this process's hostPort proxies, by pod ID
	nsDirOK bool                 // guarded by mu: NSDir is known to be a shared mount

	bridgeDel sync.WaitGroup // deleteBridge's deletions the kernel is finishing
}

// Pod is what Setup needs to know of a pod.
type Pod struct {
	ID              string // pod UID; netns file podrun-<ID>
	Name, Namespace string
	HostNetwork     bool
	Ports           []Port
}

// Attachment is the result of Setup.
type Attachment struct {
	NSPath string // the netns file to join; "" for hostNetwork pods
	IP     net.IP // the pod IP (a host IP for hostNetwork pods)
	IPs    []net.IP
}

// New checks cfg and returns a Network. It creates nothing: the bridge and
// the table appear with the first Setup.
func New(cfg Config) (*Network, error) {
	if cfg.Bridge == "" {
		cfg.Bridge = DefaultBridge
	}
	if cfg.Subnet == "" {
		cfg.Subnet = DefaultSubnet
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if cfg.NSDir == "" {
		cfg.NSDir = DefaultNSDir
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Bridge) > unix.IFNAMSIZ-1 || strings.ContainsAny(cfg.Bridge, "/ \t\n") {
		return nil, fmt.Errorf("bridge name %q: at most 15 characters, no '/' or spaces", cfg.Bridge)
	}
	subnet, err := netip.ParsePrefix(cfg.Subnet)
	if err != nil {
		return nil, fmt.Errorf("pod subnet: %w", err)
	}
	if !subnet.Addr().Is4() || subnet.Bits() < 8 || subnet.Bits() > 30 {
		return nil, fmt.Errorf("pod subnet %s: must be IPv4, /8 to /30", subnet)
	}
	if subnet.Masked() != subnet {
		return nil, fmt.Errorf("pod subnet %s: host bits set (did you mean %s?)", subnet, subnet.Masked())
	}
	n := &Network{
		cfg:     cfg,
		subnet:  subnet,
		gateway: subnet.Addr().Next(),
		mtu:     cfg.MTU,
		log:     cfg.Log.With("bridge", cfg.Bridge),
		proxies: map[string][]stopper{},
	}
	n.statePath, n.lockPath = statePaths(cfg.StateDir, cfg.Bridge)
	if err := n.checkRoutes(); err != nil {
		return nil, err
	}
	if n.mtu == 0 {
		n.mtu = uplinkMTU()
	}
	return n, nil
}

// checkRoutes refuses a subnet that overlaps a route not on our bridge.
func (n *Network) checkRoutes() error {
	brIndex := -1
	if br, err := netlink.LinkByName(n.cfg.Bridge); err == nil {
		brIndex = br.Attrs().Index
	}
	routes, err := retryDump(func() ([]netlink.Route, error) { return netlink.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.LinkIndex == brIndex {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		addr, ok := netip.AddrFromSlice(r.Dst.IP.To4())
		if !ok || ones == 0 {
			continue
		}
		if p := netip.PrefixFrom(addr, ones); p.Overlaps(n.subnet) {
			dev := fmt.Sprint(r.LinkIndex)
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				dev = l.Attrs().Name
			}
			return fmt.Errorf("pod subnet %s overlaps the route to %s on %s: choose another subnet", n.subnet, p, dev)
		}
	}
	return nil
}

func uplinkMTU() int {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
					return l.Attrs().MTU
				}
			}
		}
	}
	return 1500
}

// retryDump retries a netlink dump that a concurrent change interrupted.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		out, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || i == 4 {
			return out, err
		}
	}
}

// validID is a pod ID's characters; its length (1-200) is checked apart:
// a {0,199} repetition compiles to a program of ~200 KB at every start.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Setup gives a pod its network: for a hostNetwork pod only its hostPort
// reservations; otherwise a netns with lo and eth0 (an IP from the subnet,
// default route via the bridge), hostPorts by kernel NAT plus a userspace
// proxy on the host for loopback. A hostPort another pod holds, in any
// process, is refused with ErrPortInUse naming that pod. On error nothing
// is left. The proxy lives in this process and this Network value.
func (n *Network) Setup(ctx context.Context, p Pod) (att *Attachment, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(p.ID) > 200 || !validID.MatchString(p.ID) {
		return nil, fmt.Errorf("pod ID %q: want 1-200 characters of [A-Za-z0-9._-]", p.ID)
	}
	ports, err := hostPorts(p.Ports, p.HostNetwork)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	log := n.log.With("pod", p.Namespace+"/"+p.Name, "podUID", p.ID)
	e := &entry{Name: p.Name, Namespace: p.Namespace, HostNetwork: p.HostNetwork, Ports: ports}
	if !p.HostNetwork {
		e.NetNS = n.NSPath(p.ID)
	}
	err = n.withState(func(st *state) error {
		if _, ok := st.Pods[p.ID]; ok {
			return fmt.Errorf("%w: pod %s/%s (uid %s)", ErrExists, p.Namespace, p.Name, p.ID)
		}
		if err := st.checkPorts(p.ID, ports); err != nil {
			return err
		}
		if p.HostNetwork {
			st.Pods[p.ID] = e
			return nil
		}
		if err := n.reap(st, false); err != nil {
			log.Warn("reaping released pod networks", "err", err)
		}
		ip, err := st.allocate(n.subnet)
		if err != nil {
			// A full subnet frees the IPs of released pods whose veth the
			// kernel has not deleted yet by deleting them now.
			if rerr := n.reap(st, true); rerr != nil {
				log.Warn("reaping released pod networks", "err", rerr)
			}
			if ip, err = st.allocate(n.subnet); err != nil {
				return err
			}
		}
		e.IP, e.Link = ip.String(), st.newLinkName()
		st.Pods[p.ID] = e
		if err := n.syncHost(st, false); err != nil {
			delete(st.Pods, p.ID)
			if uerr := n.syncHost(st, false); uerr != nil {
				log.Warn("undo network setup", "err", uerr)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			// Exactly undone, veth included, before the error is returned.
			if err := n.teardown(p.ID, true); err != nil {
				log.Warn("undo network setup", "err", err)
			}
		}
	}()
	if p.HostNetwork {
		ip := HostIP()
		return &Attachment{IP: ip, IPs: []net.IP{ip}}, nil
	}
	podIP := net.ParseIP(e.IP).To4()
	if err := n.startProxies(p.ID, podIP, ports, log); err != nil {
		return nil, err
	}
	if err := n.ensureNSDir(); err != nil {
		return nil, err
	}
	if err := createNS(e.NetNS); err != nil {
		return nil, err
	}
	if err := n.addVeth(p.ID, e.Link, e.NetNS, podIP); err != nil {
		return nil, err
	}
	for _, port := range ports {
		if port.Protocol == "UDP" {
			// A client that sent before the mapping existed has a conntrack
			// entry without the DNAT; it would keep bypassing it.
			forgetUDP(log, func(f *netlink.ConntrackFilter) error {
				return f.AddPort(netlink.ConntrackOrigDstPort, uint16(port.HostPort))
			})
		}
	}
	log.Debug("pod network set up", "ip", e.IP, "link", e.Link, "netns", e.NetNS)
	return &Attachment{NSPath: e.NetNS, IP: podIP, IPs: []net.IP{podIP}}, nil
}

// NSPath is the netns file of a pod: <NSDir>/<Bridge>:<pod ID>. The bridge
// scopes it to this Config (several may share NSDir, each with its own GC);
// ':' never occurs in an interface name, so the split is unambiguous.
func (n *Network) NSPath(id string) string {
	return filepath.Join(n.cfg.NSDir, n.cfg.Bridge+":"+id)
}

// Attach takes over a pod whose network an earlier process set up (a pod
// shim restarted after a crash): it returns the pod's attachment and starts
// its loopback hostPort proxies in this process, as Setup would have.
func (n *Network) Attach(ctx context.Context, id string) (*Attachment, error) {
	var e *entry
	err := n.withState(func(st *state) error {
		e = st.Pods[id]
		if e == nil || e.Terminating {
			return fmt.Errorf("pod %s has no network", id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if e.HostNetwork {
		ip := HostIP()
		return &Attachment{IP: ip, IPs: []net.IP{ip}}, nil
	}
	podIP := net.ParseIP(e.IP).To4()
	n.stopProxies(id)
	if err := n.startProxies(id, podIP, e.Ports, n.log.With("pod", e.Namespace+"/"+e.Name, "podUID", id)); err != nil {
		return nil, err
	}
	return &Attachment{NSPath: e.NetNS, IP: podIP, IPs: []net.IP{podIP}}, nil
}

// syncHost makes the bridge, the nftables table and ip_forward match st:
// present and current while a pod that is not terminating needs them, the
// bridge and table gone otherwise. Called under the state lock, so two
// processes never race to create or delete them. Rules are only written
// when they differ from what the state says the table holds (or the table
// is missing): every nftables commit that adds a rule waits for an RCU
// grace period, ~12 ms measured here. force (GC) checks the FORWARD rules
// again.
func (n *Network) syncHost(st *state, force bool) error {
	needed := false
	for _, e := range st.Pods {
		needed = needed || e.bridged() && !e.Terminating
	}
	if !needed {
		st.Rules = ""
		return n.removeHost()
	}
	if err := n.ensureBridge(); err != nil {
		return err
	}
	if err := enableForwarding(n.log); err != nil {
		return err
	}
	want := n.rulesKey(st)
	if st.Rules == want && n.hasTable() {
		// The table holds what the state says: rewriting it would only
		// wait for an RCU grace period. force (GC) re-checks the FORWARD
		// rules, which other tools may have flushed.
		if force {
			n.ensureForward()
		}
		return nil
	}
	// podrun's FORWARD rules do not depend on the pods: they are checked
	// when the table is new, and by GC (force), not with every hostPort.
	fresh := force || st.Rules == "" || !n.hasTable()
	st.Rules = ""
	if err := n.writeRules(st); err != nil {
		return err
	}
	if fresh {
		n.ensureForward()
	}
	st.Rules = want
	return nil
}

// removeHost deletes the table, podrun's FORWARD rules and the bridge,
// concurrently: each waits for an RCU grace period, and concurrent waits
// share one.
func (n *Network) removeHost() error {
	errc, errf := make(chan error, 1), make(chan error, 1)
	go func() { errc <- n.deleteRules() }()
	go func() { errf <- n.removeForward() }()
	var errLink error
	if linkExists(n.cfg.Bridge) {
		if br, err := netlink.LinkByName(n.cfg.Bridge); err == nil {
			errLink = n.deleteBridge(br)
		}
	}
	return errors.Join(<-errc, <-errf, errLink)
}

// deleteBridge deletes the bridge and returns once the kernel has unlisted
// it and flushed its routes: nothing of it is visible any more, and a
// netlink request (the next Setup's) waits for the RTNL lock, i.e. for the
// deletion to be past them. The rest of the deletion (three RCU waits in
// the bridge's uninit and the device's unregistration, ~45 ms measured)
// the kernel finishes within the deleting thread's netlink call, even if
// this process exits meanwhile; Settle waits for it. A deletion that fails
// leaves the bridge listed, so its error is never lost.
func (n *Network) deleteBridge(br netlink.Link) error {
	done := make(chan error, 1)
	n.bridgeDel.Go(func() {
		err := netlink.LinkDel(br)
		if err != nil && !linkGone(err) {
			err = fmt.Errorf("delete bridge %s: %w", n.cfg.Bridge, err)
		} else {
			err = nil
		}
		done <- err
	})
	for {
		select {
		case err := <-done:
			return err
		default:
		}
		if unlisted(br.Attrs().Name) {
			return nil
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// unlisted says whether the link is gone from the host's links and main
// routing table.
func unlisted(name string) bool {
	return !inProcTable("/proc/net/dev", ":", name) && !inProcTable("/proc/net/route", "\t", name)
}

// inProcTable says whether a line of the /proc table at path starts with
// name, then sep (an unreadable table counts as holding it). Reading one
// takes no RTNL lock: any netlink request, a lookup included, waits for
// it, and a bridge's deletion holds it through two RCU waits (~25 ms
// measured).
func inProcTable(path, sep, name string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return true
	}
	for l := range bytes.Lines(b) {
		if field, _, ok := strings.Cut(string(l), sep); ok && strings.TrimSpace(field) == name {
			return true
		}
	}
	return false
}

func (n *Network) ensureBridge() error {
	br, err := netlink.LinkByName(n.cfg.Bridge)
	if err != nil {
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return fmt.Errorf("look up bridge %s: %w", n.cfg.Bridge, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.HardwareAddr = n.cfg.Bridge, n.mtu, randomMAC()
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("create bridge %s: %w", n.cfg.Bridge, err)
		}
		if br, err = netlink.LinkByName(n.cfg.Bridge); err != nil {
			return fmt.Errorf("look up bridge %s: %w", n.cfg.Bridge, err)
		}
	}
	if br.Type() != "bridge" {
		return fmt.Errorf("link %s exists and is a %s, not a bridge", n.cfg.Bridge, br.Type())
	}
	if err := pinMAC(br); err != nil {
		return err
	}
	gw := &net.IPNet{IP: n.gateway.AsSlice(), Mask: net.CIDRMask(n.subnet.Bits(), 32)}
	if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: gw}); err != nil {
		return fmt.Errorf("address bridge %s: %w", n.cfg.Bridge, err)
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(br); err != nil {
			return fmt.Errorf("set bridge %s up: %w", n.cfg.Bridge, err)
		}
	}
	return nil
}

// The gateway's MAC must not change under running pods: they cache it, and
// the kernel sends no gratuitous ARP when it changes (arp_notify is off by
// default), so a pod's traffic through the host is lost for seconds, until
// its neighbour entry is probed again. A bridge whose address was never set
// takes the lowest MAC of its ports, so each pod that comes or goes can
// change it, and systemd-udevd (MACAddressPolicy=persistent) rewrites it
// shortly after it is made. An address given at creation, or set once on a
// bridge made without one, is NET_ADDR_SET: the kernel keeps it and udev
// leaves it alone.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&^1 | 2 // unicast, locally administered
	return mac
}

// pinMAC makes the current MAC of a bridge made without one (by an older
// podrun) a set one, so that it stays. A bridge whose MAC is set already is
// left alone: setting it again would notify every listener of a change.
func pinMAC(br netlink.Link) error {
	kind, err := addrAssignType(br.Attrs().Name)
	if err != nil || kind == netAddrSet {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(br, br.Attrs().HardwareAddr); err != nil {
		return fmt.Errorf("pin the MAC of bridge %s: %w", br.Attrs().Name, err)
	}
	return nil
}

const netAddrSet = "3" // NET_ADDR_SET in include/uapi/linux/netdevice.h

// addrAssignType is how the link's MAC was assigned, as sysfs shows it.
func addrAssignType(link string) (string, error) {
	p := "/sys/class/net/" + link + "/addr_assign_type"
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// enableForwarding turns on net.ipv4.ip_forward, which outbound pod traffic
// and external clients of hostPorts need. It is host-global and podrun never
// turns it off again: other tools (Docker, podman) rely on it the same way.
func enableForwarding(log *slog.Logger) error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("read ip_forward: %w", err)
	}
	if strings.TrimSpace(string(b)) == "1" {
		return nil
	}
	if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable ip_forward: %w", err)
	}
	log.Info("enabled net.ipv4.ip_forward for pod traffic; podrun leaves it on")
	return nil
}

func (n *Network) ensureNSDir() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nsDirOK {
		return nil
	}
	if err := sharedDir(n.cfg.NSDir); err != nil {
		return err
	}
	n.nsDirOK = true
	return nil
}

// addVeth creates the pod's veth pair, its host end on the bridge and its
// other end born inside the netns as eth0, and configures eth0.
func (n *Network) addVeth(id, name, nsPath string, ip net.IP) error {
	br, err := netlink.LinkByName(n.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("look up bridge %s: %w", n.cfg.Bridge, err)
	}
	ns, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer ns.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU, la.MasterIndex, la.Flags = name, n.mtu, br.Attrs().Index, net.FlagUp
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Fd()))}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", name, err)
	}
	// The kernel ignores an alias given at creation.
	if err := netlink.LinkSetAlias(veth, linkAlias(n.cfg.Bridge, id)); err != nil {
		return fmt.Errorf("alias veth %s: %w", name, err)
	}
	// Lets a pod reach its own hostPort: with br_netfilter the DNATed frame
	// is bridged back out of the port it came in.
	if err := netlink.LinkSetHairpin(veth, true); err != nil {
		return fmt.Errorf("hairpin on %s: %w", name, err)
	}
	return Do(nsPath, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0 in pod: %w", err)
		}
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(n.subnet.Bits(), 32)}}
		if err := netlink.AddrAdd(eth0, addr); err != nil {
			return fmt.Errorf("address eth0: %w", err)
		}
		if err := netlink.LinkSetUp(eth0); err != nil {
			return fmt.Errorf("set eth0 up: %w", err)
		}
		def := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: n.gateway.AsSlice()}
		if err := netlink.RouteAdd(def); err != nil {
			return fmt.Errorf("default route via %s: %w", n.gateway, err)
		}
		return nil
	})
}

// linkAlias records a host veth's network and pod in the kernel object, so
// GC finds veths even when the state has lost them.
func linkAlias(bridge, id string) string { return "podrun bridge=" + bridge + " pod=" + id }

func parseAlias(alias string) (bridge, id string, ok bool) {
	rest, ok := strings.CutPrefix(alias, "podrun bridge=")
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, " pod=")
}

func (n *Network) startProxies(id string, podIP net.IP, ports []Port, log *slog.Logger) error {
	var started []stopper
	for _, p := range ports {
		s, err := listenProxy(p, net.JoinHostPort(podIP.String(), fmt.Sprint(p.ContainerPort)), log)
		if err != nil {
			for _, s := range started {
				s.stop()
			}
			return err
		}
		if s != nil {
			started = append(started, s)
		}
	}
	n.mu.Lock()
	n.proxies[id] = started
	n.mu.Unlock()
	return nil
}

func (n *Network) stopProxies(id string) {
	n.mu.Lock()
	ps := n.proxies[id]
	delete(n.proxies, id)
	n.mu.Unlock()
	for _, s := range ps {
		s.stop()
	}
}

// forgetUDP deletes UDP conntrack entries matching the filter; a failure
// only delays the new mapping, so it is logged.
func forgetUDP(log *slog.Logger, match func(*netlink.ConntrackFilter) error) {
	f := &netlink.ConntrackFilter{}
	if err := f.AddProtocol(unix.IPPROTO_UDP); err != nil {
		log.Warn("conntrack filter", "err", err)
		return
	}
	if err := match(f); err != nil {
		log.Warn("conntrack filter", "err", err)
		return
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		log.Warn("flush UDP conntrack entries", "err", err)
	}
}

// Teardown removes a pod's network: hostPorts (the proxy only if this
// Network value started it), veth, netns, IP. It works from the state and
// the kernel alone, so any process can tear down after the one that set up
// crashed, and it is idempotent. Call it after the pod's processes are gone.
// It removes the netns and returns: the kernel deletes the veth with the
// namespace, asynchronously (unregistering a device waits ~26 ms for RCU);
// the IP stays reserved until the veth is gone (reap, Settle).
func (n *Network) Teardown(ctx context.Context, id string) error {
	return n.teardown(id, false)
}

// teardown is Teardown; with sync it deletes the veth itself and waits
// for it, as GC does for pods whose process died.
func (n *Network) teardown(id string, sync bool) error {
	n.stopProxies(id)
	var e *entry
	var errSync error
	// Phase 1: withdraw the hostPorts and, with the last pod, the bridge and
	// table; the IP stays reserved until the veth holding it is gone. The
	// netns goes meanwhile: the kernel's waits overlap.
	deleted := make(chan error, 1)
	err := n.withState(func(st *state) error {
		e = st.Pods[id]
		if e == nil {
			return nil
		}
		if e.HostNetwork {
			delete(st.Pods, id)
			return nil
		}
		go func(e entry) { deleted <- n.deletePod(&e, id, sync) }(*e)
		e.Terminating = true
		errSync = n.syncHost(st, false)
		return nil
	})
	if err != nil || e == nil || e.HostNetwork {
		return err
	}
	if err := <-deleted; err != nil {
		return errors.Join(errSync, err)
	}
	// Phase 2: the veth is the kernel's to delete now (unregistering a
	// device waits ~26 ms for RCU): the entry keeps its IP until reap sees
	// the link gone.
	err = n.withState(func(st *state) error {
		switch cur := st.Pods[id]; {
		case cur == nil || !cur.Terminating:
		case sync || !linkExists(cur.Link):
			delete(st.Pods, id)
		case cur.Released == 0:
			cur.Released = time.Now().UnixMilli()
		}
		errSync = errors.Join(errSync, n.syncHost(st, false))
		return nil
	})
	if err == nil && errSync == nil {
		n.log.Debug("pod network torn down", "pod", e.Namespace+"/"+e.Name, "podUID", id, "ip", e.IP)
	}
	return errors.Join(err, errSync)
}

// reapAfter is how long a released pod's veth may outlive its netns: if
// it is still there then, something holds the namespace, and reap deletes
// the link itself.
const reapAfter = 2 * time.Second

// reap forgets the released entries whose veth the kernel has deleted,
// freeing their IPs. With force, or after reapAfter, it deletes a veth
// that is still there (a process holding the namespace keeps it alive).
func (n *Network) reap(st *state, force bool) error {
	var errs []error
	for id, e := range st.Pods {
		if e.Released == 0 {
			continue
		}
		l, err := netlink.LinkByName(e.Link)
		if err != nil {
			delete(st.Pods, id)
			continue
		}
		if !force && time.Since(time.UnixMilli(e.Released)) < reapAfter {
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !linkGone(err) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", e.Link, err))
			continue
		}
		delete(st.Pods, id)
	}
	return errors.Join(errs...)
}

// linkExists says whether the host has a link of that name. It asks
// /proc/net/dev: a netlink lookup would wait for a bridge's deletion under
// way (inProcTable).
func linkExists(name string) bool { return inProcTable("/proc/net/dev", ":", name) }

// linkGone says a link operation failed because the link no longer exists
// (the kernel may be deleting it right then: ENODEV).
func linkGone(err error) bool {
	return errors.As(err, new(netlink.LinkNotFoundError)) || errors.Is(err, unix.ENODEV)
}

// Settle waits until the kernel has deleted the veths of every released
// pod (deleting any still there after reapAfter) and forgets their
// entries, and until it has finished deleting the bridge this Network
// deleted: after it, nothing of a torn-down pod is left.
func (n *Network) Settle(ctx context.Context) error {
	n.bridgeDel.Wait()
	for {
		left := 0
		err := n.withState(func(st *state) error {
			err := n.reap(st, false)
			for _, e := range st.Pods {
				if e.Released != 0 {
					left++
				}
			}
			return err
		})
		if err != nil || left == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// deletePod deletes a pod's netns, which takes its veth with it (see
// reap), and forgets its UDP flows. With sync, or on a second teardown
// of a released pod, it deletes the veth itself first: deleting the host
// end deletes eth0 too, even if a process still holds the netns.
func (n *Network) deletePod(e *entry, id string, sync bool) error {
	var errLink error
	if sync || e.Released != 0 {
		if l, err := netlink.LinkByName(e.Link); err == nil {
			if err := netlink.LinkDel(l); err != nil && !linkGone(err) {
				errLink = fmt.Errorf("delete veth %s: %w", e.Link, err)
			}
		}
	}
	errNS := removeNS(e.NetNS)
	for _, p := range e.Ports {
		if p.Protocol == "UDP" {
			forgetUDP(n.log.With("podUID", id), func(f *netlink.ConntrackFilter) error {
				return f.AddIP(netlink.ConntrackReplySrcIP, net.ParseIP(e.IP))
			})
			break
		}
	}
	return errors.Join(errLink, errNS)
}

// GC removes every network object of this Config whose pod is not live:
// state entries (with their veth, netns and hostPorts), veths whose alias
// names this bridge but no state entry, netns files <Bridge>:<id> in NSDir
// that no entry names, and the bridge and table when no pod is left. live
// must answer true for every pod any process is setting up or running with
// this Config.
func (n *Network) GC(ctx context.Context, live func(id string) bool) error {
	// List the kernel first: an object created after the state is read was
	// recorded in it before it was created.
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	nsFiles, err := filepath.Glob(n.NSPath("*"))
	if err != nil {
		return fmt.Errorf("list netns files: %w", err)
	}
	var ids []string
	owned := map[string]bool{} // link names and netns files of entries; Teardown handles the dead ones
	err = n.withState(func(st *state) error {
		for id, e := range st.Pods {
			owned[e.Link], owned[e.NetNS] = true, true
			if e.Released == 0 { // released ones are reap's
				ids = append(ids, id)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var dead []string
	for _, id := range ids {
		if !live(id) {
			dead = append(dead, id)
		}
	}
	var errs []error
	for _, id := range dead {
		n.log.Info("garbage-collecting pod network", "podUID", id)
		errs = append(errs, n.teardown(id, true))
	}
	for _, l := range links {
		br, id, ok := parseAlias(l.Attrs().Alias)
		if !ok || br != n.cfg.Bridge || owned[l.Attrs().Name] {
			continue
		}
		n.log.Info("garbage-collecting veth", "link", l.Attrs().Name, "podUID", id)
		if err := netlink.LinkDel(l); err != nil && !linkGone(err) {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err))
		}
	}
	for _, f := range nsFiles {
		id := strings.TrimPrefix(filepath.Base(f), n.cfg.Bridge+":")
		if owned[f] || live(id) {
			continue
		}
		n.log.Info("garbage-collecting netns", "path", f, "podUID", id)
		errs = append(errs, removeNS(f))
	}
	n.mu.Lock()
	var orphans []string
	for id := range n.proxies {
		if !live(id) {
			orphans = append(orphans, id)
		}
	}
	n.mu.Unlock()
	for _, id := range orphans {
		n.stopProxies(id)
	}
	errs = append(errs, n.withState(func(st *state) error { return errors.Join(n.reap(st, false), n.syncHost(st, true)) }))
	return errors.Join(errs...)
}

// HostIP is the node's IP (status.hostIP, and a hostNetwork pod's IP): the
// first global IPv4 address of the link holding the default route, else of
// any link, else 127.0.0.1.
func HostIP() net.IP {
	var links []int
	if routes, err := netlink.RouteList(nil, netlink.FAMILY_V4); err == nil {
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				links = append(links, r.LinkIndex)
			}
		}
	}
	addrs, _ := netlink.AddrList(nil, netlink.FAMILY_V4)
	for _, want := range append(links, 0) {
		for _, a := range addrs {
			if a.Scope == unix.RT_SCOPE_UNIVERSE && (want == 0 || a.LinkIndex == want) {
				return a.IP.To4()
			}
		}
	}
	return net.IPv4(127, 0, 0, 1).To4()
}
