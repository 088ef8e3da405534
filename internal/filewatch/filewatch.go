// Package filewatch tells when manifest files change, by inotify on their
// directories: editors save by writing a new file and renaming it over the
// old one, which a watch on the file itself would lose.
package filewatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Quiet is how long after the last change a change is reported: a save is
// several events (write, rename, chmod), reported once.
const Quiet = 100 * time.Millisecond

// Watcher reports changes of a set of files, and of the manifests
// (.yaml, .yml, .json) of directories.
type Watcher struct {
	f     *os.File
	names map[int]map[string]bool // watch descriptor -> base names ("": every manifest)
}

// New watches paths: files, or directories for their manifests.
func New(paths []string) (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &Watcher{f: os.NewFile(uintptr(fd), "inotify"), names: map[int]map[string]bool{}}
	const mask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_ATTRIB
	for _, p := range paths {
		if p == "-" {
			w.Close()
			return nil, errors.New("standard input cannot be watched: give files")
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			w.Close()
			return nil, err
		}
		dir, base := filepath.Dir(abs), filepath.Base(abs)
		if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
			dir, base = abs, ""
		}
		wd, err := unix.InotifyAddWatch(fd, dir, mask)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("watch %s: %w", dir, err)
		}
		if w.names[wd] == nil {
			w.names[wd] = map[string]bool{}
		}
		w.names[wd][base] = true
	}
	return w, nil
}

// Close stops watching.
func (w *Watcher) Close() error { return w.f.Close() }

// Changes sends once per burst of changes (Quiet after its last event)
// until ctx ends or the watcher is closed; then the channel is closed.
func (w *Watcher) Changes(ctx context.Context) <-chan struct{} {
	raw := make(chan struct{}, 1)
	go func() {
		defer close(raw)
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := w.f.Read(buf)
			if err != nil {
				return
			}
			if w.relevant(buf[:n]) {
				select {
				case raw <- struct{}{}:
				default:
				}
			}
		}
	}()
	out := make(chan struct{})
	go func() {
		defer close(out)
		var quiet <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				w.Close()
				return
			case _, ok := <-raw:
				if !ok {
					return
				}
				quiet = time.After(Quiet)
			case <-quiet:
				quiet = nil
				select {
				case out <- struct{}{}:
				case <-ctx.Done():
					w.Close()
					return
				}
			}
		}
	}()
	return out
}

// relevant reports whether any event of buf is about a watched name.
func (w *Watcher) relevant(buf []byte) bool {
	found := false
	for off := 0; off+unix.SizeofInotifyEvent <= len(buf); {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		names := w.names[int(ev.Wd)]
		switch strings.ToLower(filepath.Ext(name)) {
		case ".yaml", ".yml", ".json":
			found = found || names[""]
		}
		found = found || names[name]
	}
	return found
}
