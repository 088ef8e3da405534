package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ResolveUser resolves an image or Kubernetes user — "", "name", "uid",
// "uid:gid", "name:group" (either side a name or a number) — against the
// rootfs' /etc/passwd and /etc/group, never the host's. The empty user is
// root. A number need not exist in /etc/passwd (its group is then 0 unless
// given); a name must. groups is the primary gid followed by every group of
// /etc/group that lists the user, as containerd's CRI computes them.
func ResolveUser(rootfs, user string) (uid, gid uint32, groups []uint32, err error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("resolve user %q: %w", user, err)
	}
	defer root.Close()
	// os.Root keeps symlinks such as /etc/passwd -> /host/... inside rootfs.
	passwd, err := readColonFile(root, "etc/passwd")
	if err != nil {
		return 0, 0, nil, fmt.Errorf("resolve user %q: %w", user, err)
	}
	group, err := readColonFile(root, "etc/group")
	if err != nil {
		return 0, 0, nil, fmt.Errorf("resolve user %q: %w", user, err)
	}

	userPart, groupPart, hasGroup := strings.Cut(user, ":")
	if userPart == "" {
		userPart = "0"
	}
	var name string // the user's name in /etc/passwd, if it has one
	if n, err := parseID(userPart); err == nil {
		uid = n
		if e := lookup(passwd, 2, userPart); e != nil {
			name = e[0]
			gid, _ = parseID(e[3])
		}
	} else {
		e := lookup(passwd, 0, userPart)
		if e == nil {
			return 0, 0, nil, fmt.Errorf("resolve user %q: no user %q in the image's /etc/passwd", user, userPart)
		}
		name = e[0]
		if uid, err = parseID(e[2]); err != nil {
			return 0, 0, nil, fmt.Errorf("resolve user %q: /etc/passwd uid of %q: %w", user, name, err)
		}
		gid, _ = parseID(e[3])
	}
	if hasGroup {
		if n, err := parseID(groupPart); err == nil {
			gid = n
		} else if e := lookup(group, 0, groupPart); e != nil {
			if gid, err = parseID(e[2]); err != nil {
				return 0, 0, nil, fmt.Errorf("resolve user %q: /etc/group gid of %q: %w", user, groupPart, err)
			}
		} else {
			return 0, 0, nil, fmt.Errorf("resolve user %q: no group %q in the image's /etc/group", user, groupPart)
		}
	}

	groups = []uint32{gid}
	if name != "" {
		for _, e := range group {
			if !slices.Contains(strings.Split(e[3], ","), name) {
				continue
			}
			if g, err := parseID(e[2]); err == nil && !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	return uid, gid, groups, nil
}

func parseID(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// readColonFile reads a passwd(5)/group(5) style file; a missing file is
// empty, as in scratch images.
func readColonFile(root *os.Root, name string) ([][]string, error) {
	f, err := root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var entries [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// name:password:id:gid-or-members are the fields used; shorter lines are junk.
		if e := strings.Split(line, ":"); len(e) >= 4 {
			entries = append(entries, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return entries, nil
}

// lookup returns the first entry whose field i equals v.
func lookup(entries [][]string, i int, v string) []string {
	for _, e := range entries {
		if len(e) > i && e[i] == v {
			return e
		}
	}
	return nil
}
