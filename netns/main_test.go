package netns

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/testutil"
)

// Keep the main goroutine on the main thread, as podrun's main does, so no
// namespace goroutine can wedge it.
func init() { runtime.LockOSThread() }

const childEnv = "PODRUN_NETNS_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		runChild()
		return
	}
	forward, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	own, _ := os.Readlink("/proc/thread-self/ns/net")
	code := m.Run()
	// Setup turns ip_forward on and leaves it on; the tests put it back.
	if len(forward) > 0 {
		_ = os.WriteFile("/proc/sys/net/ipv4/ip_forward", forward, 0o644)
	}
	if foreign := threadsOutside(own); len(foreign) > 0 {
		fmt.Fprintf(os.Stderr, "threads left in a foreign netns: %v\n", foreign)
		code = 1
	}
	os.Exit(code)
}

// threadsOutside lists the threads of this process whose netns is not own.
func threadsOutside(own string) []string {
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	var out []string
	for _, p := range tasks {
		if ns, err := os.Readlink(p); err == nil && ns != own {
			out = append(out, p+" -> "+ns)
		}
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newTestNetwork returns a Network on a bridge, subnet, state dir and netns
// dir of its own. Its cleanup garbage-collects everything and fails the
// test if any of it survives.
func newTestNetwork(t testing.TB, bits int) (*Network, Config) {
	t.Helper()
	testutil.RequiresRoot(t)
	nsDir, err := os.MkdirTemp("/run", "podrun-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for unix.Unmount(nsDir, unix.MNT_DETACH) == nil {
		}
		if err := os.Remove(nsDir); err != nil {
			t.Errorf("remove netns dir: %v", err)
		}
	})
	cfg := Config{Bridge: "podrunt" + randHex(3), StateDir: t.TempDir(), NSDir: nsDir}
	var n *Network
	for range 20 {
		b := make([]byte, 1)
		_, _ = rand.Read(b)
		cfg.Subnet = fmt.Sprintf("10.250.%d.0/%d", b[0], bits)
		if n, err = New(cfg); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.GC(context.Background(), func(string) bool { return false }); err != nil {
			t.Errorf("cleanup GC: %v", err)
		}
		assertNothingLeft(t, n)
	})
	return n, cfg
}

// assertNothingLeft fails if any object of n exists: bridge, veths, netns
// files, state entries, nftables table.
func assertNothingLeft(t testing.TB, n *Network) {
	t.Helper()
	// Torn-down pods' veths are the kernel's to delete, asynchronously.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Settle(ctx); err != nil {
		t.Errorf("settle: %v", err)
	}
	if _, err := netlink.LinkByName(n.cfg.Bridge); err == nil {
		t.Errorf("bridge %s left", n.cfg.Bridge)
	}
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if br, _, ok := parseAlias(l.Attrs().Alias); ok && br == n.cfg.Bridge {
			t.Errorf("veth %s (%s) left", l.Attrs().Name, l.Attrs().Alias)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(n.cfg.NSDir, "*")); len(files) > 0 {
		t.Errorf("netns files left: %v", files)
	}
	if err := n.withState(func(st *state) error {
		if len(st.Pods) > 0 {
			return fmt.Errorf("state entries left: %v", keys(st.Pods))
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	if hasTable(t, n) {
		t.Errorf("nftables table ip %s left", n.cfg.Bridge)
	}
	cmds, _ := iptablesCommands()
	for _, bin := range cmds {
		out, err := iptables(bin, "-S", "FORWARD")
		if err != nil {
			t.Error(err)
		} else if own := n.ownForwardRules(out); len(own) > 0 {
			t.Errorf("FORWARD rules of %s left: %q", n.cfg.Bridge, own)
		}
	}
}

func hasTable(t testing.TB, n *Network) bool {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if tb.Name == n.cfg.Bridge {
			return true
		}
	}
	return false
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// setup sets a pod up and registers its teardown.
func setup(t testing.TB, n *Network, name string, ports ...Port) *Attachment {
	t.Helper()
	p := Pod{ID: "uid-" + name + "-" + randHex(4), Name: name, Namespace: "test", Ports: ports}
	att, err := n.Setup(context.Background(), p)
	if err != nil {
		t.Fatalf("setup pod %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := n.Teardown(context.Background(), p.ID); err != nil {
			t.Errorf("teardown pod %s: %v", name, err)
		}
	})
	return att
}

// serve runs a TCP server inside nsPath on addr that answers every
// connection with "<name> <client address>".
func serve(t testing.TB, nsPath, addr, name string) {
	t.Helper()
	var ln net.Listener
	if err := Do(nsPath, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, nsPath, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", name, c.RemoteAddr())
			c.Close()
		}
	}()
}

// serveUDP answers every datagram with "<name> <client address>".
func serveUDP(t testing.TB, nsPath, addr, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := Do(nsPath, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	}); err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte(name+" "+from.String()), from)
		}
	}()
}

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// fetch connects and returns what the server said.
func fetch(dial dialFunc, network, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := dial(ctx, network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if network == "udp" {
		if _, err := c.Write([]byte("ping")); err != nil {
			return "", err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// expect fetches and checks the answer's server name and client IP.
func expect(t testing.TB, what string, dial dialFunc, network, addr, server string, client net.IP) {
	t.Helper()
	got, err := fetch(dial, network, addr)
	if err != nil {
		t.Errorf("%s: %s %s: %v", what, network, addr, err)
		return
	}
	name, from, _ := strings.Cut(got, " ")
	host, _, _ := net.SplitHostPort(from)
	if name != server || (client != nil && !net.ParseIP(host).Equal(client)) {
		t.Errorf("%s: %s %s answered %q, want server %s seeing client %v", what, network, addr, got, server, client)
	}
}

func expectRefused(t testing.TB, what string, dial dialFunc, addr string) {
	t.Helper()
	got, err := fetch(dial, "tcp", addr)
	if err == nil {
		t.Errorf("%s: %s answered %q, want no connection", what, addr, got)
	}
}

// runChild is the test binary re-executed by TestCrashLeftoversAreGarbageCollected:
// it sets a pod up, reports it, and waits to be killed.
func runChild() {
	var in struct {
		Cfg Config
		Pod Pod
	}
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &in); err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	n, err := New(in.Cfg)
	if err == nil {
		_, err = n.Setup(context.Background(), in.Pod)
	}
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	fmt.Println("READY")
	select {}
}

func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if errors.Is(err, io.EOF) && line != "" {
		err = nil
	}
	return strings.TrimSpace(line), err
}
