package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// Runtime creates containers and pod sandboxes under one state directory.
// It holds no per-container state, so one value may be shared by goroutines.
type Runtime struct {
	root string // libcontainer's state dir; sandboxes live in root/sandboxes

	// What this process may grant, read once: containers never get more than
	// their creator has, and asking for more fails deep inside runc init.
	ownCaps     map[string]bool // effective capabilities, "CAP_*" names
	sysResource bool            // CAP_SYS_RESOURCE: negative oom_score_adj allowed
	nofile      uint64          // RLIMIT_NOFILE hard limit handed to containers
}

const sandboxesDir = "sandboxes"

// idPattern is libcontainer's rule for container ids; sandboxes follow it
// too because their id names a directory next to the containers'.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_+.-]+$`)

func validID(id string) error {
	if !idPattern.MatchString(id) || id == "." || id == ".." || id == sandboxesDir {
		return fmt.Errorf("invalid id %q: want [A-Za-z0-9_+.-]+ (and not %q)", id, sandboxesDir)
	}
	return nil
}

// New returns a Runtime keeping its state under root (e.g. /run/podrun/runc),
// creating root if needed. Keep root outside the directory of this binary:
// there libcontainer cannot use its overlay to protect the binary and copies
// it whole into memory on every start and exec (+10 ms each).
func New(root string) (*Runtime, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("runtime state root %q: must be absolute", root)
	}
	root = filepath.Clean(root)
	if err := os.MkdirAll(filepath.Join(root, sandboxesDir), 0o700); err != nil {
		return nil, fmt.Errorf("runtime state root: %w", err)
	}
	if exe, err := os.Executable(); err == nil {
		if dir := filepath.Dir(exe); root == dir || strings.HasPrefix(root, dir+"/") {
			slog.Warn("runtime state root is inside the binary's directory: every start and exec will copy the binary",
				"root", root, "binary", exe)
		}
	}
	caps, err := effectiveCaps()
	if err != nil {
		return nil, err
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return nil, fmt.Errorf("getrlimit RLIMIT_NOFILE: %w", err)
	}
	return &Runtime{
		root:        root,
		ownCaps:     caps,
		sysResource: caps["CAP_SYS_RESOURCE"],
		nofile:      min(rl.Max, 1<<20),
	}, nil
}

// List returns the ids of the containers in the state directory, running
// or not, whoever created them: the input of garbage collection.
func (r *Runtime) List() ([]string, error) {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == sandboxesDir {
			continue
		}
		// A directory without state.json is a container being created or
		// destroyed right now: not (or no longer) a container.
		if _, err := os.Stat(filepath.Join(r.root, e.Name(), "state.json")); err == nil {
			ids = append(ids, e.Name())
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("list containers: %w", err)
		}
	}
	return ids, nil
}
