package shim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/atomicfile"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
)

// Version is the version of the contract between the daemon and its
// shims: the run directory's files and the shim's routes. Every file
// carries it, so a daemon or shim of another build knows what it reads. A
// file without one is of version 1, from before the field existed; its
// checkpoint (deleting/killed flags, exited instances) is still read, so a
// new shim can take over a pod from an old one.
const Version = 2

// Files of a pod's run directory, <run-root>/pods/<uid>/.
const (
	specFile       = "spec.json"       // written by the daemon: what the shim runs
	checkpointFile = "checkpoint.json" // written by the shim after each change
	finalFile      = "final.json"      // written by the shim once the pod finished
	lockFile       = "shim.lock"       // flocked by the live shim
	sockFile       = "shim.sock"       // the shim's API
	logFile        = "shim.log"        // the shim's stdout and stderr
)

// PodsDir holds one run directory per pod a daemon runs.
func PodsDir(runRoot string) string { return filepath.Join(runRoot, "pods") }

// Dir is one pod's run directory.
type Dir string

// DirOf is the run directory of the pod uid under runRoot.
func DirOf(runRoot, uid string) Dir { return Dir(filepath.Join(PodsDir(runRoot), uid)) }

func (d Dir) path(name string) string { return filepath.Join(string(d), name) }

// Checkpointed reports the pods under runRoot that a shim checkpointed: a
// daemon restores them, so nobody else may garbage-collect them even while
// their shim is down.
func Checkpointed(runRoot string) func(uid string) bool {
	return func(uid string) bool { return DirOf(runRoot, uid).exists(checkpointFile) }
}

func (d Dir) exists(name string) bool {
	_, err := os.Stat(d.path(name))
	return err == nil
}

// Finished reports whether the shim wrote the pod's final state.
func (d Dir) Finished() bool { return d.exists(finalFile) }

// WriteSpec writes what a new shim runs, unless a spec is there already
// (a shim restarted in restore mode runs the pod it was given first).
func (d Dir) WriteSpec(s *Spec) error {
	if d.exists(specFile) {
		return nil
	}
	s.Version = Version
	return writeJSON(d.path(specFile), s)
}

// updateObjects rewrites spec.json with the namespace's current ConfigMaps
// and Secrets, so that a shim taking over after a crash projects these.
func (d Dir) updateObjects(s *Spec) error {
	s.Version = Version
	return writeJSON(d.path(specFile), s)
}

// ReadSpec reads what the shim runs.
func (d Dir) ReadSpec() (*Spec, error) {
	var s Spec
	if err := readVersioned(d.path(specFile), &s, &s.Version); err != nil {
		return nil, err
	}
	if s.Pod == nil {
		return nil, fmt.Errorf("%s: no pod", d.path(specFile))
	}
	return &s, nil
}

// ReadFinal reads the pod's final state; fs.ErrNotExist while it runs.
func (d Dir) ReadFinal() (*State, error) {
	var st State
	if err := readVersioned(d.path(finalFile), &st, &st.Version); err != nil {
		return nil, err
	}
	if st.Pod == nil {
		return nil, fmt.Errorf("%s: no pod", d.path(finalFile))
	}
	return &st, nil
}

func (d Dir) writeFinal(st *State) error {
	st.Version = Version
	return writeJSON(d.path(finalFile), st)
}

// checkpointFileV1 is checkpoint.json: the supervisor's checkpoint and the
// contract's version.
type checkpointFileV1 struct {
	Version int `json:"version,omitempty"`
	*pod.Checkpoint
}

func (d Dir) writeCheckpoint(cp *pod.Checkpoint) error {
	return writeJSON(d.path(checkpointFile), checkpointFileV1{Version: Version, Checkpoint: cp})
}

func (d Dir) readCheckpoint() (*pod.Checkpoint, error) {
	f := checkpointFileV1{Checkpoint: &pod.Checkpoint{}}
	if err := readVersioned(d.path(checkpointFile), &f, &f.Version); err != nil {
		return nil, err
	}
	return f.Checkpoint, nil
}

// OpenLog opens the shim's log for appending.
func (d Dir) OpenLog() (*os.File, error) {
	return os.OpenFile(d.path(logFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
}

// LogTail is the end of the shim's log, at most n bytes from a line's
// start: what a shim that died last said.
func (d Dir) LogTail(n int64) string {
	// One byte more says whether the window starts a line.
	b, err := runtime.ReadTail(d.path(logFile), n+1)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[max(bytes.IndexByte(b, '\n'), 0)+1:]
	}
	return string(bytes.TrimSpace(b))
}

// writeJSON writes v atomically (a temporary file renamed over it), so a
// reader, or a process restarted after a crash, sees the old or the new
// content and never a torn one. The run directory is on tmpfs and dies
// with the machine: no fsync.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, b, 0o600, false)
}

// readVersioned decodes path into v and refuses a file of a newer
// contract than this build's.
func readVersioned(path string, v any, version *int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	if *version > Version {
		return fmt.Errorf("%s is of version %d of the daemon-shim contract; this podrun reads up to %d (a newer podrun wrote it)", path, *version, Version)
	}
	return nil
}

// Lock takes the lock of the run directory without waiting: a shim holds
// it for its whole life (inherited from the daemon that took it, so there
// is no moment between spawn and lock when the shim looks dead), and the
// kernel releases it when the shim dies, however it dies. ok is false when
// another process holds it.
func (d Dir) Lock() (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(d.path(lockFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, true, nil
}

// WaitExited waits up to limit for the pod's shim to exit, that is to
// release the run directory's lock. A shim writes the final state just
// before it exits; waiting for that exit lets the daemon report a pod gone
// only once no process of it is left.
func (d Dir) WaitExited(limit time.Duration) bool {
	f, err := os.OpenFile(d.path(lockFile), os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close() // after the flock returns: closing releases it
		_ = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}()
	select {
	case <-done:
		return true
	case <-time.After(limit):
		return false // the goroutine ends when the shim does
	}
}

// Alive says whether the pod's shim runs (some process holds the run
// directory's lock). This is the daemon's rule for its shims; which pods
// garbage collection spares is node.Node's rule (the supervision lock a
// Node holds from sandbox creation on).
func (d Dir) Alive() bool {
	if _, err := os.Stat(string(d)); err != nil {
		return false
	}
	f, ok, err := d.Lock()
	if err != nil {
		return true // cannot tell: never replace what might be running
	}
	if ok {
		f.Close()
	}
	return !ok
}
