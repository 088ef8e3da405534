package volumes

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// subPathsDir is where a pod's subPath mounts live, under its pod
// directory: <volume>/<container>/<index of the volumeMount>, as the
// kubelet's volume-subpaths.
const subPathsDir = "volume-subpaths"

// SubPathTarget is the podrun-private path PrepareSubPath mounts the
// subPath of a container's index-th volumeMount (of volume) on; the
// container's bind mount then takes it as its source.
func SubPathTarget(podDir, volume, container string, index int) string {
	return filepath.Join(podDir, subPathsDir, volume, container, strconv.Itoa(index))
}

// PrepareSubPath opens subPath inside the volume at volumePath without ever
// leaving it and bind-mounts what it opened onto target (SubPathTarget),
// replacing what an earlier run of the container mounted there. Like the
// kubelet, it refuses an absolute subPath, one with a ".." component and
// one that resolves (through symlinks) outside the volume, and creates
// missing directories with the mode of the volume's root.
//
// Nothing is resolved twice: each component is opened with openat2
// RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS relative to the open volume root,
// directories are created with mkdirat relative to their open parent, and
// the mount's source is the open file (/proc/thread-self/fd/N), so a
// process of the pod swapping a component for a symlink meanwhile can
// neither make it mount nor create anything outside the volume.
func PrepareSubPath(volumePath, subPath, target string) error {
	if filepath.IsAbs(subPath) {
		return fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	for _, e := range strings.Split(filepath.ToSlash(subPath), "/") {
		if e == ".." {
			return fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", subPath)
		}
	}
	root, err := unix.Open(volumePath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open volume %s: %w", volumePath, &os.PathError{Op: "open", Path: volumePath, Err: err})
	}
	defer unix.Close(root)
	fd, err := openSubPath(root, filepath.Clean(subPath))
	if err != nil {
		if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
			return fmt.Errorf("subpath %q not within volume path %q", subPath, volumePath)
		}
		return fmt.Errorf("subPath %q of volume %s: %w", subPath, volumePath, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("subPath %q: %w", subPath, err)
	}
	if err := unmountTarget(target); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("subPath mount point: %w", err)
	}
	// The mount point is of the source's kind: a directory or a file.
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = os.Mkdir(target, 0o750)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("subPath mount point: %w", err)
	}
	src := "/proc/thread-self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		os.Remove(target)
		return fmt.Errorf("bind subPath %q of volume %s onto %s: %w", subPath, volumePath, target, err)
	}
	return nil
}

// beneath resolves inside the directory a path is opened relative to and
// never through /proc magic links.
var beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// openSubPath returns an O_PATH descriptor of sub (clean, relative) inside
// root, creating its missing directories with root's permission bits.
func openSubPath(root int, sub string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: uint64(beneath)}
	fd, err := unix.Openat2(root, sub, how)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(root, &st); err != nil {
		return -1, err
	}
	mode := st.Mode & 0o7777
	// Walk from the root: each prefix is resolved beneath the root again,
	// so a component replaced by a symlink is followed only if the link
	// stays inside the volume.
	dirHow := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: uint64(beneath)}
	parent, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	defer func() { unix.Close(parent) }()
	comps := strings.Split(sub, "/")
	for i, name := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		fd, err := unix.Openat2(root, prefix, dirHow)
		if errors.Is(err, unix.ENOENT) {
			// mkdirat does not follow a symlink put in its place: EEXIST.
			if err := unix.Mkdirat(parent, name, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				return -1, fmt.Errorf("create %s: %w", prefix, err)
			}
			fd, err = unix.Openat2(root, prefix, dirHow)
			if err == nil {
				// The umask must not narrow it (the kubelet's doSafeMakeDir).
				err = fchmodPath(fd, mode)
			}
		}
		if err != nil {
			return -1, fmt.Errorf("open %s: %w", prefix, err)
		}
		unix.Close(parent)
		parent = fd
	}
	return unix.Dup(parent)
}

// fchmodPath changes the mode of the file an O_PATH descriptor refers to
// (fchmod refuses O_PATH descriptors).
func fchmodPath(fd int, mode uint32) error {
	return unix.Fchmodat(unix.AT_FDCWD, "/proc/thread-self/fd/"+strconv.Itoa(fd), mode, 0)
}

// unmountTarget unmounts what an earlier PrepareSubPath mounted on target
// and removes the mount point.
func unmountTarget(target string) error {
	if err := Teardown(target); err != nil {
		return fmt.Errorf("subPath mount point %s: %w", target, err)
	}
	return nil
}

// TeardownSubPaths unmounts and removes every subPath mount of the pod
// whose directory is podDir; after a crash too. It must run before anything
// removes the pod directory: the mounts lead into the volumes.
func TeardownSubPaths(podDir string) error {
	return Teardown(filepath.Join(podDir, subPathsDir))
}
