package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// freePort returns a TCP and UDP port nothing on the host listens on now.
func freePort(t testing.TB) int32 {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		ln.Close()
		if err == nil {
			pc.Close()
			return int32(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

func TestPodConnectivityAndHostPorts(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	gw := n.gateway.AsSlice()
	hpLoop, hpAll, hpUDP, hpGW := freePort(t), freePort(t), freePort(t), freePort(t)
	a := setup(t, n, "a",
		Port{HostIP: "127.0.0.1", HostPort: hpLoop, ContainerPort: 80},
		Port{HostPort: hpAll, ContainerPort: 80},
		Port{HostPort: hpUDP, ContainerPort: 53, Protocol: "UDP"},
		Port{HostIP: n.gateway.String(), HostPort: hpGW, ContainerPort: 80},
	)
	b := setup(t, n, "b")
	if a.NSPath == "" || a.IP == nil || !a.IP.Equal(a.IPs[0]) || !n.subnet.Contains(netip.AddrFrom4([4]byte(a.IP.To4()))) {
		t.Fatalf("attachment %+v", a)
	}
	serve(t, a.NSPath, ":80", "A")
	serve(t, a.NSPath, "127.0.0.1:9090", "A-local")
	serveUDP(t, a.NSPath, ":53", "A-udp")
	serve(t, b.NSPath, ":80", "B")

	host := Dialer("")
	podA, podB := Dialer(a.NSPath), Dialer(b.NSPath)
	at := func(ip net.IP, port int32) string { return net.JoinHostPort(ip.String(), fmt.Sprint(port)) }
	loop := net.IPv4(127, 0, 0, 1)

	expect(t, "host -> pod A", host, "tcp", at(a.IP, 80), "A", gw)
	expect(t, "host -> pod B", host, "tcp", at(b.IP, 80), "B", gw)
	expect(t, "pod A -> pod B", podA, "tcp", at(b.IP, 80), "B", a.IP)
	expect(t, "pod B -> pod A", podB, "tcp", at(a.IP, 80), "A", b.IP)
	// hostIP 127.0.0.1: the userspace proxy, which dials from the gateway.
	expect(t, "host -> 127.0.0.1 hostPort", host, "tcp", at(loop, hpLoop), "A", gw)
	expectRefused(t, "a 127.0.0.1 hostPort on the gateway IP", host, at(gw, hpLoop))
	// All addresses: kernel DNAT, plus the proxy for loopback.
	expect(t, "host -> gateway hostPort", host, "tcp", at(gw, hpAll), "A", gw)
	expect(t, "host -> 127.0.0.1 all-address hostPort", host, "tcp", at(loop, hpAll), "A", gw)
	expect(t, "host -> [::1] all-address hostPort", host, "tcp", net.JoinHostPort("::1", fmt.Sprint(hpAll)), "A", gw)
	expect(t, "pod B -> hostPort via gateway", podB, "tcp", at(gw, hpAll), "A", gw)
	// A non-loopback hostIP: kernel DNAT on that address only.
	expect(t, "host -> hostIP-scoped hostPort", host, "tcp", at(gw, hpGW), "A", gw)
	expectRefused(t, "a gateway-scoped hostPort on 127.0.0.1", host, at(loop, hpGW))
	expect(t, "pod A -> own hostPort (hairpin)", podA, "tcp", at(gw, hpAll), "A", gw)
	// UDP, by DNAT and by the proxy.
	expect(t, "host -> gateway UDP hostPort", host, "udp", at(gw, hpUDP), "A-udp", gw)
	expect(t, "host -> 127.0.0.1 UDP hostPort", host, "udp", at(loop, hpUDP), "A-udp", gw)
	expect(t, "pod B -> UDP hostPort", podB, "udp", at(gw, hpUDP), "A-udp", gw)
	// port-forward: a server bound to the pod's loopback only.
	expect(t, "dialer -> pod's 127.0.0.1", podA, "tcp", "127.0.0.1:9090", "A-local", loop)
	expect(t, "dialer -> pod's localhost", podA, "tcp", "localhost:9090", "A-local", loop)
	expectRefused(t, "pod loopback server via the pod IP", host, at(a.IP, 9090))
	expectRefused(t, "pod loopback server on the host", host, "127.0.0.1:9090")

	// The pod side as the kubelet would see it.
	if err := Do(a.NSPath, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if eth0.Attrs().MTU != n.mtu {
			return fmt.Errorf("eth0 MTU %d, want %d", eth0.Attrs().MTU, n.mtu)
		}
		routes, err := netlink.RouteList(eth0, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(gw) {
				return nil
			}
		}
		return fmt.Errorf("no default route via %s: %v", n.gateway, routes)
	}); err != nil {
		t.Error(err)
	}
}

// TestOutboundNATAndExternalClient uses a fake "outside" netns, linked to
// the host by a veth of its own, as the world beyond the host: no packet
// leaves the machine.
func TestOutboundNATAndExternalClient(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	hp := freePort(t)
	pod := setup(t, n, "out", Port{HostPort: hp, ContainerPort: 80})
	serve(t, pod.NSPath, ":80", "POD")

	// 10.251.X.0/24: host end .1, outside .2; the outside knows no route
	// to the pod subnet, so only masquerade lets replies come back.
	var outside, hostEnd net.IP
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for {
		x := make([]byte, 1)
		_, _ = rand.Read(x)
		hostEnd, outside = net.IPv4(10, 251, x[0], 1).To4(), net.IPv4(10, 251, x[0], 2).To4()
		if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
			return r.Dst != nil && r.Dst.Contains(outside) && !r.Dst.IP.IsUnspecified()
		}) {
			break
		}
	}
	outPath := n.cfg.NSDir + "/outside-" + randHex(3)
	if err := createNS(outPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeNS(outPath); err != nil {
			t.Error(err)
		}
	})
	name := "podrunx" + randHex(3)
	ns, err := os.Open(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	la := netlink.NewLinkAttrs()
	// A MAC of its own, or udev on a systemd host rewrites it while the
	// outside has it cached (see randomMAC).
	la.Name, la.Flags, la.HardwareAddr = name, net.FlagUp, randomMAC()
	veth := &netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns.Fd()))}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netlink.LinkDel(veth); err != nil {
			t.Errorf("delete %s: %v", name, err)
		}
	})
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: &net.IPNet{IP: hostEnd, Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := Do(outPath, func() error {
		eth0, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: outside, Mask: net.CIDRMask(24, 32)}}); err != nil {
			return err
		}
		return netlink.LinkSetUp(eth0)
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, outPath, ":80", "OUTSIDE")

	expect(t, "pod -> outside, masqueraded", Dialer(pod.NSPath), "tcp", net.JoinHostPort(outside.String(), "80"), "OUTSIDE", hostEnd)
	expect(t, "outside -> hostPort keeps the client IP", Dialer(outPath), "tcp", net.JoinHostPort(hostEnd.String(), fmt.Sprint(hp)), "POD", outside)

	// A LAN host that routes the pod subnet to this host reaches no pod
	// port directly: ip_forward is on, podrun's forward chain drops it.
	if err := Do(outPath, func() error {
		return netlink.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: n.subnet.Addr().AsSlice(), Mask: net.CIDRMask(n.subnet.Bits(), 32)}, Gw: hostEnd})
	}); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, "outside -> the pod's unpublished port, routed", Dialer(outPath), net.JoinHostPort(pod.IP.String(), "80"))
	expect(t, "outside -> hostPort, with the route", Dialer(outPath), "tcp", net.JoinHostPort(hostEnd.String(), fmt.Sprint(hp)), "POD", outside)
	var d net.Dialer
	expect(t, "the host -> the pod's port", d.DialContext, "tcp", net.JoinHostPort(pod.IP.String(), "80"), "POD", nil)
}

func TestIPsReleasedAndReused(t *testing.T) {
	n, _ := newTestNetwork(t, 29) // 5 pod addresses
	var ids []string
	var ips []string
	for i := range 5 {
		p := Pod{ID: fmt.Sprintf("uid-%d-%s", i, randHex(3)), Name: fmt.Sprint("p", i), Namespace: "test"}
		att, err := n.Setup(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		ids, ips = append(ids, p.ID), append(ips, att.IP.String())
	}
	t.Cleanup(func() {
		for _, id := range ids {
			if err := n.Teardown(context.Background(), id); err != nil {
				t.Error(err)
			}
		}
	})
	if _, err := n.Setup(context.Background(), Pod{ID: "uid-full", Name: "full"}); err == nil || !strings.Contains(err.Error(), "no free IP") {
		t.Fatalf("setup in a full subnet: %v", err)
	}
	freed := ips[2]
	if err := n.Teardown(context.Background(), ids[2]); err != nil {
		t.Fatal(err)
	}
	if err := n.Teardown(context.Background(), ids[2]); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
	if err := n.Teardown(context.Background(), "uid-never-set-up"); err != nil {
		t.Fatalf("teardown of an unknown pod: %v", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.String() == freed {
			t.Fatalf("released IP %s still on link %d", freed, a.LinkIndex)
		}
	}
	p := Pod{ID: "uid-again-" + randHex(3), Name: "again", Namespace: "test"}
	att, err := n.Setup(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	ids[2] = p.ID
	if att.IP.String() != freed {
		t.Fatalf("got %s, want the released %s", att.IP, freed)
	}
}

func TestHostPortConflictsAreRefused(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	hp := freePort(t)
	setup(t, n, "holder", Port{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 80})
	for _, p := range []Port{
		{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 81},
		{HostPort: hp, ContainerPort: 81},
	} {
		_, err := n.Setup(context.Background(), Pod{ID: "uid-rival", Name: "rival", Namespace: "test", Ports: []Port{p}})
		if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "test/holder") || !strings.Contains(err.Error(), fmt.Sprint(hp)) {
			t.Errorf("%s: err = %v; want ErrPortInUse naming the port and test/holder", p, err)
		}
	}
	// Other protocol, other loopback address: no conflict.
	setup(t, n, "udp", Port{HostIP: "127.0.0.1", HostPort: hp, ContainerPort: 80, Protocol: "UDP"})
	setup(t, n, "other-ip", Port{HostIP: "127.0.0.2", HostPort: hp, ContainerPort: 80})

	// A port a host program holds is refused too, and the failed setup
	// leaves nothing: no entry, netns, veth or proxy.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := int32(ln.Addr().(*net.TCPAddr).Port)
	_, err = n.Setup(context.Background(), Pod{ID: "uid-busy", Name: "busy", Namespace: "test", Ports: []Port{{HostPort: busy, ContainerPort: 80}}})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("setup on a port in use on the host: %v", err)
	}
	if err := n.withState(func(st *state) error {
		if _, ok := st.Pods["uid-busy"]; ok {
			return errors.New("failed setup left its state entry")
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(n.NSPath("uid-busy")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed setup left its netns file: %v", err)
	}
}

func TestFailedSetupRollsBackEverything(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	// 10.250.x.77 is in the test subnet but no address of the host: binding
	// the hostPort fails after the IP, bridge and rules exist.
	bad := n.subnet.Addr().As4()
	bad[3] = 77
	_, err := n.Setup(context.Background(), Pod{ID: "uid-bad", Name: "bad", Namespace: "test",
		Ports: []Port{{HostIP: net.IP(bad[:]).String(), HostPort: freePort(t), ContainerPort: 80}}})
	if err == nil {
		t.Fatal("setup with a hostIP that is not the host's succeeded")
	}
	assertNothingLeft(t, n)
}

func TestHostNetworkPod(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	hp := freePort(t)
	p := Pod{ID: "uid-hn-" + randHex(3), Name: "hn", Namespace: "test", HostNetwork: true, Ports: []Port{{HostPort: hp, ContainerPort: hp}}}
	att, err := n.Setup(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Teardown(context.Background(), p.ID); err != nil {
			t.Error(err)
		}
	})
	if att.NSPath != "" || att.IP == nil {
		t.Fatalf("hostNetwork attachment %+v", att)
	}
	addrs, _ := netlink.AddrList(nil, netlink.FAMILY_V4)
	if !slices.ContainsFunc(addrs, func(a netlink.Addr) bool { return a.IP.Equal(att.IP) }) {
		t.Errorf("hostNetwork pod IP %s is no host address", att.IP)
	}
	// hostNetwork pods alone need neither bridge nor table.
	if _, err := netlink.LinkByName(n.cfg.Bridge); err == nil || hasTable(t, n) {
		t.Error("a hostNetwork pod created the bridge or table")
	}
	if _, err := n.Setup(context.Background(), p); !errors.Is(err, ErrExists) {
		t.Errorf("second setup of the same pod: %v", err)
	}
	_, err = n.Setup(context.Background(), Pod{ID: "uid-rival", Name: "rival", Namespace: "test", Ports: []Port{{HostPort: hp, ContainerPort: 80}}})
	if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "test/hn") {
		t.Errorf("hostPort held by a hostNetwork pod: err = %v", err)
	}
}

// TestCrashLeftoversAreGarbageCollected sets a pod up in a child process,
// SIGKILLs it, and checks that its reservations held across processes and
// that GC removes everything it left.
func TestCrashLeftoversAreGarbageCollected(t *testing.T) {
	n, cfg := newTestNetwork(t, 24)
	hp := freePort(t)
	crashy := Pod{ID: "uid-crashy-" + randHex(3), Name: "crashy", Namespace: "test", Ports: []Port{{HostPort: hp, ContainerPort: 80}}}
	keep := setup(t, n, "keep")
	arg, _ := json.Marshal(map[string]any{"Cfg": cfg, "Pod": crashy})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(arg))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	if line, err := readLine(out); err != nil || line != "READY" {
		t.Fatalf("child: %q, %v", line, err)
	}

	// The child's hostPort is held across processes.
	_, err = n.Setup(context.Background(), Pod{ID: "uid-rival", Name: "rival", Namespace: "test", Ports: []Port{{HostPort: hp, ContainerPort: 80}}})
	if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "test/crashy") {
		t.Fatalf("hostPort held by another process: err = %v", err)
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	var left *entry
	_ = n.withState(func(st *state) error { left = st.Pods[crashy.ID]; return nil })
	if left == nil {
		t.Fatal("the killed child left no state entry")
	}
	if _, err := os.Stat(left.NetNS); err != nil {
		t.Fatalf("the killed child left no netns: %v", err)
	}
	if l, err := netlink.LinkByName(left.Link); err != nil || l.Attrs().Alias != linkAlias(cfg.Bridge, crashy.ID) {
		t.Fatalf("the killed child's veth: %v, %v", l, err)
	}

	if err := n.GC(context.Background(), func(id string) bool { return id != crashy.ID }); err != nil {
		t.Fatal(err)
	}
	_ = n.withState(func(st *state) error {
		if _, ok := st.Pods[crashy.ID]; ok {
			t.Error("GC kept the state entry")
		}
		return nil
	})
	if _, err := os.Stat(left.NetNS); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("GC kept the netns file: %v", err)
	}
	if _, err := netlink.LinkByName(left.Link); err == nil {
		t.Error("GC kept the veth")
	}
	// The live pod is untouched and the hostPort is free again.
	serve(t, keep.NSPath, ":80", "KEEP")
	expect(t, "live pod after GC", Dialer(""), "tcp", net.JoinHostPort(keep.IP.String(), "80"), "KEEP", nil)
	setup(t, n, "rival-again", Port{HostPort: hp, ContainerPort: 80})
}

// TestGCFindsObjectsTheStateLost removes the state file under a set-up pod:
// GC must still find its veth by alias and its netns file by name.
func TestGCFindsObjectsTheStateLost(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	p := Pod{ID: "uid-lost-" + randHex(3), Name: "lost", Namespace: "test"}
	att, err := n.Setup(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	// An open netns keeps the namespace, and so the veth, alive after its
	// file is gone: the veth must go by its alias.
	pin, err := os.Open(att.NSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Close()
	if err := os.Remove(n.statePath); err != nil {
		t.Fatal(err)
	}
	if err := n.GC(context.Background(), func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(att.NSPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns file kept: %v", err)
	}
	assertNothingLeft(t, n)
}

func TestConcurrentSetups(t *testing.T) {
	n, _ := newTestNetwork(t, 24)
	const pods = 20
	errs := make(chan error, pods)
	ids := make([]string, pods)
	ips := make([]string, pods)
	for i := range pods {
		ids[i] = fmt.Sprintf("uid-c%d-%s", i, randHex(3))
		go func() {
			att, err := n.Setup(context.Background(), Pod{ID: ids[i], Name: fmt.Sprint("c", i), Namespace: "test"})
			if err == nil {
				ips[i] = att.IP.String()
			}
			errs <- err
		}()
	}
	for range pods {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	sorted := slices.Clone(ips)
	sort.Strings(sorted)
	if len(slices.Compact(sorted)) != pods {
		t.Errorf("duplicate IPs: %v", ips)
	}
	for i := range pods {
		go func() { errs <- n.Teardown(context.Background(), ids[i]) }()
	}
	for range pods {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	assertNothingLeft(t, n)
}

func BenchmarkPodNetwork(b *testing.B) {
	bench := func(b *testing.B, keeper bool) {
		n, _ := newTestNetwork(b, 24)
		if keeper { // the bridge and table stay: the steady state
			setup(b, n, "keeper")
		}
		var up, down []time.Duration
		for i := 0; b.Loop(); i++ {
			id := fmt.Sprintf("uid-bench-%d", i)
			start := time.Now()
			if _, err := n.Setup(context.Background(), Pod{ID: id, Name: "bench", Namespace: "test"}); err != nil {
				b.Fatal(err)
			}
			mid := time.Now()
			if err := n.Teardown(context.Background(), id); err != nil {
				b.Fatal(err)
			}
			up, down = append(up, mid.Sub(start)), append(down, time.Since(mid))
		}
		b.ReportMetric(median(up), "setup-ms")
		b.ReportMetric(median(down), "teardown-ms")
		b.ReportMetric(quantile(up, 0.9), "setup-p90-ms")
		b.ReportMetric(quantile(down, 0.9), "teardown-p90-ms")
	}
	b.Run("steady", func(b *testing.B) { bench(b, true) })
	b.Run("first-pod", func(b *testing.B) { bench(b, false) })
}

func median(d []time.Duration) float64 { return quantile(d, 0.5) }

func quantile(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*q)]) / float64(time.Millisecond)
}

func TestSubnetOverlapIsRefused(t *testing.T) {
	n, cfg := newTestNetwork(t, 24)
	setup(t, n, "route-holder") // the bridge and its route exist now
	other := cfg
	other.Bridge = "podrunt" + randHex(3)
	if _, err := New(other); err == nil || !strings.Contains(err.Error(), cfg.Bridge) {
		t.Fatalf("New with a subnet routed on %s: err = %v", cfg.Bridge, err)
	}
	wider := cfg
	wider.Bridge, wider.Subnet = other.Bridge, "10.250.0.0/16"
	if _, err := New(wider); err == nil {
		t.Fatal("New with a subnet containing a routed one succeeded")
	}
	if _, err := New(cfg); err != nil {
		t.Fatalf("the route on our own bridge counted as an overlap: %v", err)
	}
}

// TestBridgeMACStays: pods cache the gateway's MAC, so it must not follow
// the bridge's ports (the kernel's default) nor be rewritten by udev. A
// bridge made before podrun pinned its MAC (an older podrun's) keeps the
// MAC it has.
func TestBridgeMACStays(t *testing.T) {
	for _, before := range []bool{false, true} {
		t.Run(fmt.Sprint("made before: ", before), func(t *testing.T) {
			n, _ := newTestNetwork(t, 24)
			br := func() (net.HardwareAddr, string) {
				t.Helper()
				l, err := netlink.LinkByName(n.cfg.Bridge)
				if err != nil {
					t.Fatal(err)
				}
				kind, err := addrAssignType(n.cfg.Bridge)
				if err != nil {
					t.Fatal(err)
				}
				return l.Attrs().HardwareAddr, kind
			}
			var made net.HardwareAddr
			if before {
				la := netlink.NewLinkAttrs()
				la.Name = n.cfg.Bridge
				if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if l, err := netlink.LinkByName(la.Name); err == nil {
						_ = netlink.LinkDel(l)
					}
				})
				// On a systemd host udev gives a new bridge its own MAC
				// (MACAddressPolicy=persistent) a moment later: that one is
				// the MAC a bridge made long ago has.
				if _, err := os.Stat("/run/udev/control"); err == nil {
					if out, err := exec.Command("udevadm", "settle").CombinedOutput(); err != nil {
						t.Fatalf("udevadm settle: %v: %s", err, out)
					}
				}
				made, _ = br()
			}
			setup(t, n, "a")
			mac, kind := br()
			if kind != netAddrSet {
				t.Errorf("bridge addr_assign_type %s, want 3 (NET_ADDR_SET)", kind)
			}
			if made != nil && !bytes.Equal(mac, made) {
				t.Errorf("the bridge's MAC went from %s to %s", made, mac)
			}
			b := Pod{ID: "uid-b-" + randHex(4), Name: "b", Namespace: "test"}
			if _, err := n.Setup(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := n.Teardown(context.Background(), b.ID); err != nil {
					t.Error(err)
				}
			})
			links, err := netlink.LinkList()
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(links, func(l netlink.Link) bool { return l.Attrs().Alias == linkAlias(n.cfg.Bridge, b.ID) })
			if i < 0 {
				t.Fatalf("no host veth for pod b")
			}
			// The lowest MAC a port can have: an unpinned bridge takes it.
			if err := netlink.LinkSetHardwareAddr(links[i], net.HardwareAddr{2, 0, 0, 0, 0, 0}); err != nil {
				t.Fatal(err)
			}
			if got, _ := br(); !bytes.Equal(got, mac) {
				t.Errorf("the bridge's MAC went from %s to %s with a port's change", mac, got)
			}
		})
	}
}
