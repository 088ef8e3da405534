package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/podrun/podrun/internal/trace"
)

// lockPod takes the pod's supervision lock, held as long as this process
// supervises the pod (released by the kernel if the process dies): GC
// leaves a locked pod alone.
func (n *Node) lockPod(uid string) (*os.File, error) {
	dir := filepath.Join(n.cfg.RunRoot, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, uid), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("pod %s is supervised by another process: %w", uid, err)
	}
	return f, nil
}

// supervised reports whether some process (this one included) holds the
// pod's lock.
func (n *Node) supervised(uid string) bool {
	f, err := os.Open(filepath.Join(n.cfg.RunRoot, "locks", uid))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	return false
}

// GC removes what pods that no process supervises left behind (a killed
// `podrun run`, a shim that died for good): their containers (killed),
// sandboxes, root filesystems, volumes, network and cgroups. keep, if set,
// spares more pods, e.g. those a daemon is about to restore.
func (n *Node) GC(ctx context.Context, keep func(uid string) bool) error {
	live := func(uid string) bool { return (keep != nil && keep(uid)) || n.supervised(uid) }
	var errs []error
	ids, err := n.Runtime.List()
	errs = append(errs, err)
	for _, id := range ids {
		if uid := podUIDOf(id); uid == "" || live(uid) {
			continue
		}
		if c, err := n.Runtime.Load(id); err == nil {
			errs = append(errs, c.Destroy())
		}
	}
	// Sandboxes live in the runtime's state directory, one per pod UID.
	entries, _ := os.ReadDir(filepath.Join(n.cfg.RunRoot, "runc", "sandboxes"))
	for _, e := range entries {
		if !live(e.Name()) {
			if sb, err := n.Runtime.LoadSandbox(e.Name()); err == nil {
				errs = append(errs, sb.Destroy())
			}
		}
	}
	entries, _ = os.ReadDir(filepath.Join(n.cfg.Root, "pods"))
	for _, e := range entries {
		uid := e.Name()
		if live(uid) {
			continue
		}
		errs = append(errs, n.removePodDir(uid))
	}
	sp := trace.Start(ctx, "gc network")
	errs = append(errs, n.Network.GC(ctx, live))
	sp.End()
	sp = trace.Start(ctx, "gc cgroups")
	errs = append(errs, n.cfg.Cgroups.GC(live))
	sp.End()
	entries, _ = os.ReadDir(filepath.Join(n.cfg.RunRoot, "locks"))
	for _, e := range entries {
		if !live(e.Name()) {
			os.Remove(filepath.Join(n.cfg.RunRoot, "locks", e.Name()))
		}
	}
	return errors.Join(errs...)
}
