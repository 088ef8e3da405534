package runtime

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
)

// capNames is indexed by capability number (linux/capability.h).
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
	"CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// defaultCaps is containerd's default set (pkg/oci defaultUnixCaps), which
// is what a Kubernetes container gets before securityContext.capabilities.
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// effectiveCaps reads this process's effective capability set.
func effectiveCaps() (map[string]bool, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read own capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hex, ok := strings.CutPrefix(sc.Text(), "CapEff:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapEff %q: %w", hex, err)
		}
		caps := map[string]bool{}
		for i, name := range capNames {
			if mask&(1<<i) != 0 {
				caps[name] = true
			}
		}
		return caps, nil
	}
	return nil, fmt.Errorf("no CapEff in /proc/self/status: %w", sc.Err())
}

// capabilities computes a container's capability set the way containerd's
// CRI does (internal/cri/opts WithCapabilities): start from the default set
// (everything this process holds when privileged); add "ALL", drop "ALL",
// then the single additions, then the single drops. Names are Kubernetes
// spelling ("NET_ADMIN"); the CAP_ prefix and case are tolerated. A
// capability this process lacks itself cannot be granted: it is left out
// with a warning rather than failing the container (root here may lack
// CAP_SYS_RESOURCE).
func (r *Runtime) capabilities(id string, privileged bool, add, drop []string) ([]string, error) {
	var all []string
	for _, c := range capNames {
		if r.ownCaps[c] {
			all = append(all, c)
		}
	}
	if privileged {
		return all, nil
	}
	norm := func(list []string) (names []string, hasAll bool, err error) {
		for _, c := range list {
			u := strings.ToUpper(c)
			if u == "ALL" {
				hasAll = true
				continue
			}
			if !strings.HasPrefix(u, "CAP_") {
				u = "CAP_" + u
			}
			if !slices.Contains(capNames, u) {
				return nil, false, fmt.Errorf("unknown capability %q", c)
			}
			names = append(names, u)
		}
		return names, hasAll, nil
	}
	adds, addAll, err := norm(add)
	if err != nil {
		return nil, err
	}
	drops, dropAll, err := norm(drop)
	if err != nil {
		return nil, err
	}
	set := slices.Clone(defaultCaps)
	if addAll {
		set = slices.Clone(all)
	}
	if dropAll {
		set = nil
	}
	for _, c := range adds {
		if !slices.Contains(set, c) {
			set = append(set, c)
		}
	}
	set = slices.DeleteFunc(set, func(c string) bool { return slices.Contains(drops, c) })
	return slices.DeleteFunc(set, func(c string) bool {
		if r.ownCaps[c] {
			return false
		}
		slog.Warn("capability not granted: podrun does not hold it itself", "container", id, "capability", c)
		return true
	}), nil
}
