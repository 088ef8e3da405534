package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// file is one projected file: its content and permission bits.
type file struct {
	data []byte
	mode int32
}

const (
	dataDir    = "..data"
	newDataDir = "..data_tmp"
)

// writeAtomic lays payload out in target the way the kubelet's AtomicWriter
// does, so that programs watching ..data see what they see on a node:
//
//	target/..2006_01_02_15_04_05.NNN/<path>   the files (mode as given; dirs 0755)
//	target/..data -> ..2006_01_02_15_04_05.NNN
//	target/<first path element> -> ..data/<first path element>
//
// Writing again swaps ..data in one rename, then drops the names the new
// payload lacks and the old timestamped directory (and any a crash left).
func writeAtomic(target string, payload map[string]file) error {
	clean := make(map[string]file, len(payload))
	for p, f := range payload {
		if err := validatePath(p); err != nil {
			return err
		}
		if f.mode < 0 || f.mode > 0o777 {
			return fmt.Errorf("file %q: mode %#o is outside 0-0777", p, f.mode)
		}
		clean[filepath.Clean(p)] = f
	}
	ts, err := os.MkdirTemp(target, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		return err
	}
	for p, f := range clean {
		full := filepath.Join(ts, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.data, fs.FileMode(f.mode)); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
		// WriteFile's mode is subject to the umask; the kubelet's is not.
		if err := os.Chmod(full, fs.FileMode(f.mode)); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	tmpLink := filepath.Join(target, newDataDir)
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(filepath.Base(ts), tmpLink); err != nil {
		return fmt.Errorf("link data directory: %w", err)
	}
	if err := os.Rename(tmpLink, filepath.Join(target, dataDir)); err != nil {
		return fmt.Errorf("switch data directory: %w", err)
	}

	visible := map[string]bool{}
	for p := range clean {
		top, _, _ := strings.Cut(p, "/")
		visible[top] = true
	}
	for top := range visible {
		link := filepath.Join(target, top)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataDir, top), link); err != nil {
			return fmt.Errorf("link %s: %w", top, err)
		}
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		stale := strings.HasPrefix(name, "..") && name != dataDir && name != filepath.Base(ts)
		gone := !strings.HasPrefix(name, "..") && !visible[name]
		if stale || gone {
			if err := os.RemoveAll(filepath.Join(target, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// validatePath is the AtomicWriter's rule for payload paths: relative,
// no ".." element, not starting with "..", names up to 255 bytes, paths up
// to 4096.
func validatePath(p string) error {
	switch {
	case p == "":
		return errors.New("invalid path: must not be empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("invalid path %q: must be relative", p)
	case len(p) > 4096:
		return fmt.Errorf("invalid path %q: longer than 4096 characters", p)
	}
	items := strings.Split(p, "/")
	for _, item := range items {
		if item == ".." {
			return fmt.Errorf("invalid path %q: must not contain '..'", p)
		}
		if len(item) > 255 {
			return fmt.Errorf("invalid path %q: names must be at most 255 characters", p)
		}
	}
	if strings.HasPrefix(items[0], "..") {
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	return nil
}
