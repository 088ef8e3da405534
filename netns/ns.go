package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The rules for namespace work in Go (DESIGN.md, notes/networking.md §1):
// only code running synchronously on a locked goroutine is inside the
// namespace; a thread that cannot be switched back stays locked so the
// runtime discards it; the thread's own namespace is
// /proc/thread-self/ns/net, never /proc/self/ns/net. Processes using this
// package must call runtime.LockOSThread() in main's init() so that no
// namespace goroutine ever lands on (and wedges) the main thread.

// Do runs fn on a locked OS thread inside the network namespace at nsPath
// ("" runs fn directly, in the host namespace). Only what fn does
// synchronously happens inside: sockets it creates belong to the namespace
// and may be used from anywhere afterwards, but goroutines it starts (an
// http.Client, a name lookup) run in the host namespace.
func Do(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", nsPath, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", nsPath, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// Stay locked: the runtime kills this thread when the goroutine
			// ends instead of reusing it inside the pod's namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", nsPath, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dialer returns a DialContext whose sockets are created inside the network
// namespace at nsPath ("" = the host namespace), for port-forward and probes:
// it reaches servers bound only to the pod's 127.0.0.1. Host names are
// resolved in the host namespace first, as the kubelet resolves a probe's
// host; "localhost" means the pod's own loopback.
func Dialer(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		// An IP literal keeps the dial on this goroutine: with a name, the
		// dialer may race addresses on other goroutines, i.e. in the host
		// namespace.
		literal, err := literalAddr(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		var c net.Conn
		err = Do(nsPath, func() error {
			var err error
			c, err = d.DialContext(ctx, network, literal)
			return err
		})
		return c, err
	}
}

func literalAddr(ctx context.Context, network, addr string) (string, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return addr, nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("dial %s %s: %w", network, addr, err)
	}
	if host == "" || net.ParseIP(host) != nil {
		return addr, nil
	}
	if host == "localhost" {
		if network[len(network)-1] == '6' {
			return net.JoinHostPort("::1", port), nil
		}
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
	if err != nil {
		return "", fmt.Errorf("dial %s %s: %w", network, addr, err)
	}
	want4 := network[len(network)-1] != '6'
	for _, ip := range ips {
		if (ip.To4() != nil) == want4 {
			return net.JoinHostPort(ip.String(), port), nil
		}
	}
	return net.JoinHostPort(ips[0].String(), port), nil
}

// sharedDir makes dir a shared mount point, as iproute2 does for /run/netns,
// so that unmounting a netns file there also unmounts the copies that mount
// namespaces cloned meanwhile (containers) hold, instead of pinning the
// namespace.
func sharedDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create netns dir: %w", err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount netns dir %s: %w", dir, err)
		}
		err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make netns dir %s a shared mount: %w", dir, err)
	}
	return nil
}

// createNS creates a network namespace pinned by a bind mount on path, with
// lo up. The namespace is made on a throw-away thread: it unshares, and the
// runtime discards it when the goroutine ends locked.
func createNS(path string) (retErr error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	defer func() {
		if retErr != nil {
			removeNS(path)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mount netns on %s: %w", path, err)
			return
		}
		// lo is ifindex 1 in every new namespace; the package-level netlink
		// calls open their socket in this thread's namespace.
		if err := netlink.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1}}); err != nil {
			errc <- fmt.Errorf("set lo up in %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// removeNS unmounts and removes a netns file; a missing file or one that is
// no longer a mount (a stale file after a reboot on a disk-backed /run) is
// fine.
func removeNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns file: %w", err)
	}
	return nil
}
