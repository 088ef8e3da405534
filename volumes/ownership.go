package volumes

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Modes the kubelet's SetVolumeOwnership adds for the fsGroup: group read
// and write (read only on a read-only volume), and on directories group
// search and setgid, so that new files inherit the group.
const (
	groupRW   = 0o060
	groupRO   = 0o040
	groupExec = 0o010
)

// setOwnership gives the tree under root to group gid as the kubelet's
// SetVolumeOwnership does for emptyDir, configMap, secret, downwardAPI and
// projected volumes (whose plugins pass no fsGroupChangePolicy, so the
// whole tree is walked every time): each entry's group becomes gid, each
// file gets g+rw (g+r when readOnly), each directory also g+x and setgid;
// symlinks are re-grouped, never followed.
//
// Unlike the kubelet's path walk, it goes by file descriptors, each entry
// opened O_NOFOLLOW relative to its open parent: a container that swaps a
// directory for a symlink while a restored sandbox walks its emptyDir gets
// no host file changed.
func setOwnership(root string, gid int, readOnly bool) error {
	fd, err := unix.Open(root, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsGroup ownership of %s: %w", root, err)
	}
	mask := uint32(groupRW)
	if readOnly {
		mask = groupRO
	}
	return ownDir(fd, root, gid, mask)
}

// ownDir re-groups the open directory dfd (closing it) and everything
// beneath it; path is for errors.
func ownDir(dfd int, path string, gid int, mask uint32) error {
	defer unix.Close(dfd)
	if err := ownFd(dfd, gid, mask|groupExec|unix.S_ISGID); err != nil {
		return fmt.Errorf("fsGroup ownership of %s: %w", path, err)
	}
	dup, err := unix.Dup(dfd)
	if err != nil {
		return fmt.Errorf("fsGroup ownership of %s: %w", path, err)
	}
	d := os.NewFile(uintptr(dup), path)
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return fmt.Errorf("fsGroup ownership of %s: %w", path, err)
	}
	var errs []error
	for _, name := range names {
		p := path + "/" + name
		fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue // removed meanwhile
		} else if err != nil {
			errs = append(errs, fmt.Errorf("fsGroup ownership of %s: %w", p, err))
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			errs = append(errs, fmt.Errorf("fsGroup ownership of %s: %w", p, err))
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			// The link itself; its mode means nothing.
			err = unix.Fchownat(fd, "", -1, gid, unix.AT_EMPTY_PATH)
			unix.Close(fd)
		case unix.S_IFDIR:
			unix.Close(fd)
			var sub int
			if sub, err = unix.Openat(dfd, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				err = ownDir(sub, p, gid, mask)
			}
		default:
			err = ownFd(fd, gid, mask)
			unix.Close(fd)
		}
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("fsGroup ownership of %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// ownFd sets the group of the open file (O_PATH or not) to gid and adds
// mask to its mode. The mode goes through /proc/self/fd, which names the
// open inode itself, as fchmod cannot take an O_PATH descriptor.
func ownFd(fd, gid int, mask uint32) error {
	if err := unix.Fchownat(fd, "", -1, gid, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), (st.Mode&0o7777)|mask)
}
