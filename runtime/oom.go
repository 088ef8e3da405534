package runtime

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// oomWatch sees OOM kills in a container's cgroup as they happen. Reading
// the cgroup's counter after the init exited is not enough under systemd:
// a scope's cgroup goes with its last process, before the exit is read.
// On v2 it watches memory.events and cgroup.events with inotify, reading
// oom_kill at every change and once more when the cgroup empties; on v1 it
// listens on an eventfd for memory.oom_control's notifications (the kernel
// signals it on an OOM, and once more when the cgroup is removed).
type oomWatch struct {
	killed atomic.Bool
	done   chan struct{} // closed when the cgroup emptied or went
}

// watchOOM starts watching the cgroup of cgm, a systemd unit's (v1: removed
// by systemd once empty). Under cgroupfs the cgroup stays until podrun
// removes it, so the counter read after the exit is enough and nothing is
// watched. Nil when the cgroup cannot be watched: the counter read after
// the exit is all there is then.
func watchOOM(cgm cgroups.Manager) (*oomWatch, error) {
	w := &oomWatch{done: make(chan struct{})}
	if cgroups.IsCgroup2UnifiedMode() {
		return w, w.inotify(cgm.Path(""))
	}
	return w, w.eventfd(cgm.Path("memory"))
}

// result says whether an OOM kill was seen, after waiting (at most
// timeout) for the watch to end: it ends by itself once the unit's
// cgroup emptied or went.
func (w *oomWatch) result(timeout time.Duration) bool {
	select {
	case <-w.done:
	case <-time.After(timeout):
	}
	return w.killed.Load()
}

func (w *oomWatch) inotify(dir string) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	for _, f := range []string{"memory.events", "cgroup.events"} {
		if _, err := unix.InotifyAddWatch(fd, filepath.Join(dir, f), unix.IN_MODIFY); err != nil {
			unix.Close(fd)
			return fmt.Errorf("watch %s: %w", filepath.Join(dir, f), err)
		}
	}
	base, err := eventValue(dir, "memory.events", "oom_kill")
	if err != nil {
		unix.Close(fd)
		return err
	}
	go func() {
		defer close(w.done)
		defer unix.Close(fd)
		buf := make([]byte, 4096)
		for {
			if n, err := eventValue(dir, "memory.events", "oom_kill"); err == nil && n > base {
				w.killed.Store(true)
			}
			if populated, err := eventValue(dir, "cgroup.events", "populated"); err != nil || populated == 0 {
				return
			}
			if _, err := unix.Read(fd, buf); err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return nil
}

func (w *oomWatch) eventfd(dir string) error {
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		ctl.Close()
		return fmt.Errorf("eventfd: %w", err)
	}
	ev := os.NewFile(uintptr(efd), "eventfd")
	events := filepath.Join(dir, "cgroup.event_control")
	if err := os.WriteFile(events, []byte(fmt.Sprintf("%d %d", efd, ctl.Fd())), 0); err != nil {
		ctl.Close()
		ev.Close()
		return fmt.Errorf("register for OOM notifications: %w", err)
	}
	go func() {
		defer close(w.done)
		defer ctl.Close()
		defer ev.Close()
		buf := make([]byte, 8)
		for {
			if _, err := ev.Read(buf); err != nil {
				return
			}
			n := binary.NativeEndian.Uint64(buf)
			if _, err := os.Lstat(events); err != nil {
				// Removed: that signalled once; any more were OOMs.
				if n > 1 {
					w.killed.Store(true)
				}
				return
			}
			w.killed.Store(true)
		}
	}()
	return nil
}

// eventValue reads key's value from a flat-keyed cgroup file.
func eventValue(dir, file, key string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0, err
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if k, v, ok := strings.Cut(string(l), " "); ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", filepath.Join(dir, file), key)
}
