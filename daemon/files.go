package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/atomicfile"
)

// Files of a pod's run directory, <run-root>/pods/<uid>/.
const (
	specFile       = "spec.json"       // written by the daemon: what the shim runs
	checkpointFile = "checkpoint.json" // written by the shim after each change
	finalFile      = "final.json"      // written by the shim once the pod finished
	lockFile       = "shim.lock"       // flocked by the live shim
	sockFile       = "shim.sock"       // the shim's API
	logFile        = "shim.log"        // the shim's stdout and stderr
)

// podsDir holds one run directory per pod the daemon runs.
func podsDir(runRoot string) string { return filepath.Join(runRoot, "pods") }

// Checkpointed reports the pods under runRoot that a shim checkpointed: a
// daemon restores them, so nobody else may garbage-collect them even while
// their shim is down.
func Checkpointed(runRoot string) func(uid string) bool {
	return func(uid string) bool {
		_, err := os.Stat(filepath.Join(podsDir(runRoot), uid, checkpointFile))
		return err == nil
	}
}

// writeJSON writes v to path atomically (a temporary file renamed over
// it), so a reader, or a process restarted after a crash, sees the old or
// the new content and never a torn one. durable also syncs the data and the
// directory, for state that must survive a power loss.
func writeJSON(path string, v any, perm os.FileMode, durable bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, b, perm, durable)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// lockPod takes the lock of a pod's run directory without waiting: a
// shim holds it for its whole life (inherited from the daemon that took
// it, so there is no moment between spawn and lock when the shim looks
// dead), and the kernel releases it when the shim dies, however it dies.
// ok is false when another process holds it.
func lockPod(dir string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
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

// shimAlive says whether the shim of the pod whose run directory is dir
// runs (some process holds the directory's lock). This is the daemon's
// rule for its shims; which pods garbage collection spares is node.Node's
// rule (the supervision lock a Node holds from sandbox creation on).
func shimAlive(dir string) bool {
	if _, err := os.Stat(dir); err != nil {
		return false
	}
	f, ok, err := lockPod(dir)
	if err != nil {
		return true // cannot tell: never replace what might be running
	}
	if ok {
		f.Close()
	}
	return !ok
}
