package runtime

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	// Device rules (v1 devices.allow/deny, v2 eBPF) need this registration.
	_ "github.com/opencontainers/cgroups/devices"
	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/cgroups/systemd"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	"golang.org/x/sys/unix"
)

// procDefaults are the container process's settings that Exec inherits,
// like CRI exec does. Kept in the libcontainer config's labels so that a
// re-attached Container (Load) has them too.
type procDefaults struct {
	Env    []string `json:"env"`
	Cwd    string   `json:"cwd"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

const procLabel = "podrun.process="

func (d procDefaults) label() string {
	b, _ := json.Marshal(d) // plain strings and numbers: cannot fail
	return procLabel + string(b)
}

func procDefaultsFrom(cfg *configs.Config) procDefaults {
	var d procDefaults
	for _, l := range cfg.Labels {
		if v, ok := strings.CutPrefix(l, procLabel); ok {
			_ = json.Unmarshal([]byte(v), &d)
		}
	}
	if d.Cwd == "" {
		d.Cwd = "/"
	}
	return d
}

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const mountFlags = unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV

// maskedPaths are containerd's (pkg/oci defaultLinuxMaskedPaths).
var maskedPaths = sync.OnceValue(func() []string {
	paths := []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/sys/firmware", "/sys/devices/virtual/powercap", "/proc/scsi",
	}
	throttle, _ := filepath.Glob("/sys/devices/system/cpu/cpu[0-9]*/thermal_throttle")
	return append(paths, throttle...)
})

var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// config translates a Spec into libcontainer's configuration, with
// containerd's CRI defaults for everything the Spec does not say.
func (r *Runtime) config(s *Spec) (*configs.Config, procDefaults, error) {
	var d procDefaults
	if err := checkSpec(s); err != nil {
		return nil, d, err
	}
	sb := s.Sandbox.st.Spec
	caps, err := r.capabilities(s.ID, s.Privileged, s.CapAdd, s.CapDrop)
	if err != nil {
		return nil, d, err
	}
	filter, err := seccompConfig(s, caps)
	if err != nil {
		return nil, d, err
	}
	mounts, rootProp, err := containerMounts(s, sb.HostIPC)
	if err != nil {
		return nil, d, err
	}
	aaProfile, err := appArmorConfig(s)
	if err != nil {
		return nil, d, err
	}
	res := &cgroups.Resources{}
	if s.Resources != nil {
		c := *s.Resources
		res = &c
	}
	var devs []*devices.Device
	if res.Devices, devs, err = deviceRules(s.Privileged); err != nil {
		return nil, d, err
	}
	oom := s.OOMScoreAdj
	if oom != nil && *oom < 0 && !r.sysResource {
		slog.Warn("negative oom_score_adj needs CAP_SYS_RESOURCE, which podrun lacks: left at the default",
			"container", s.ID, "oomScoreAdj", *oom)
		oom = nil
	}
	d = processDefaults(s)
	cfg := &configs.Config{
		Rootfs:          s.Rootfs,
		Readonlyfs:      s.ReadOnlyRootfs,
		RootPropagation: rootProp,
		Mounts:          mounts,
		Devices:         devs,
		Namespaces:      sandboxNamespaces(s.Sandbox),
		Capabilities:    &configs.Capabilities{Bounding: caps, Effective: caps, Permitted: caps},
		Cgroups:         cgroupConfig(s.CgroupPath, s.CgroupSystemd, res),
		Rlimits:         []configs.Rlimit{{Type: unix.RLIMIT_NOFILE, Hard: r.nofile, Soft: r.nofile}},
		OomScoreAdj:     oom,
		Sysctl:          s.Sysctls,
		NoNewPrivileges: s.NoNewPrivileges,
		Seccomp:         filter,
		AppArmorProfile: aaProfile,
		Labels:          []string{d.label()},
	}
	if !s.Privileged {
		cfg.MaskPaths = maskedPaths()
		cfg.ReadonlyPaths = readonlyPaths
	}
	return cfg, d, nil
}

// checkSpec refuses a Spec libcontainer would fail on later, and less
// clearly.
func checkSpec(s *Spec) error {
	if err := validID(s.ID); err != nil {
		return err
	}
	switch {
	case s.Sandbox == nil:
		return fmt.Errorf("no Sandbox")
	case !filepath.IsAbs(s.Rootfs):
		return fmt.Errorf("rootfs %q: must be absolute", s.Rootfs)
	case !filepath.IsAbs(s.CgroupPath):
		return fmt.Errorf("cgroup path %q: must be absolute", s.CgroupPath)
	case s.CgroupSystemd && !systemdScopePath(s.CgroupPath):
		return fmt.Errorf("cgroup path %q: a systemd scope's path is <slice path>/<prefix>-<name>.scope", s.CgroupPath)
	case len(s.Args) == 0:
		return fmt.Errorf("no command (Args)")
	case s.Cwd != "" && !filepath.IsAbs(s.Cwd):
		return fmt.Errorf("working directory %q: must be absolute", s.Cwd)
	}
	if fi, err := os.Stat(s.Rootfs); err != nil || !fi.IsDir() {
		return fmt.Errorf("rootfs %q: not a directory (%v)", s.Rootfs, err)
	}
	st := s.Sandbox.st
	if st.Spec.SharePID {
		// Joining the pinned PID namespace of a dead pause would fail deep
		// in runc init with ENOMEM from fork.
		if _, start, err := procStat(st.PausePid); err != nil || start != st.PauseStart {
			return fmt.Errorf("sandbox %s: its pause process (pid %d) is gone", st.Spec.ID, st.PausePid)
		}
	}
	return nil
}

// sandboxNamespaces are the container's: its own mount namespace, the sandbox's
// pinned PID, network, UTS and IPC namespaces unless the pod uses the
// host's, and on cgroup v2 its own cgroup namespace.
func sandboxNamespaces(sandbox *Sandbox) configs.Namespaces {
	sb := sandbox.st.Spec
	ns := configs.Namespaces{{Type: configs.NEWNS}}
	if !sb.HostPID {
		ns = append(ns, configs.Namespace{Type: configs.NEWPID, Path: sandbox.nsPath("pid")})
	}
	if !sb.HostNetwork {
		ns = append(ns,
			configs.Namespace{Type: configs.NEWNET, Path: sb.NetNS},
			configs.Namespace{Type: configs.NEWUTS, Path: sandbox.nsPath("uts")})
	}
	if !sb.HostIPC {
		ns = append(ns, configs.Namespace{Type: configs.NEWIPC, Path: sandbox.nsPath("ipc")})
	}
	if cgroups.IsCgroup2UnifiedMode() {
		// containerd's CRI default on v2: the container sees its own cgroup as /.
		ns = append(ns, configs.Namespace{Type: configs.NEWCGROUP})
	}
	return ns
}

// deviceRules are the device cgroup rules and nodes: every host device for
// a privileged container, else runc's default set.
func deviceRules(privileged bool) ([]*devices.Rule, []*devices.Device, error) {
	if privileged {
		devs, err := hostDevices()
		return []*devices.Rule{{Type: devices.WildcardDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "rwm", Allow: true}}, devs, err
	}
	rules := []*devices.Rule{{Type: devices.WildcardDevice, Major: devices.Wildcard, Minor: devices.Wildcard, Permissions: "rwm", Allow: false}}
	var devs []*devices.Device
	for _, ad := range specconv.AllowedDevices {
		rules = append(rules, &ad.Rule)
		if ad.Path != "" {
			devs = append(devs, ad)
		}
	}
	return rules, devs, nil
}

// processDefaults are what the container's process and every exec get:
// the environment with containerd's additions (PATH, HOSTNAME, TERM), the
// working directory and the user.
func processDefaults(s *Spec) procDefaults {
	sb := s.Sandbox.st.Spec
	env := slices.Clone(s.Env)
	if !hasEnv(env, "PATH") {
		env = append(env, defaultPath)
	}
	if !hasEnv(env, "HOSTNAME") {
		// As containerd's CRI: the pod's hostname, the node's with hostNetwork.
		host := sb.Hostname
		if sb.HostNetwork || host == "" {
			host, _ = os.Hostname()
		}
		env = append(env, "HOSTNAME="+host)
	}
	if s.TTY && !hasEnv(env, "TERM") {
		env = append(env, "TERM=xterm")
	}
	d := procDefaults{Env: env, Cwd: s.Cwd, UID: s.UID, GID: s.GID, Groups: s.AdditionalGIDs}
	if d.Cwd == "" {
		d.Cwd = "/"
	}
	return d
}

func hasEnv(env []string, name string) bool {
	return slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
}

// containerMounts returns containerd's CRI default mounts followed by the
// Spec's bind mounts, and the rootfs propagation those need.
func containerMounts(s *Spec, hostIPC bool) ([]*configs.Mount, int, error) {
	sysFlags, cgFlags := mountFlags|unix.MS_RDONLY, mountFlags|unix.MS_RELATIME|unix.MS_RDONLY
	if s.Privileged {
		sysFlags, cgFlags = mountFlags, mountFlags|unix.MS_RELATIME
	}
	shm := &configs.Mount{Source: "shm", Destination: "/dev/shm", Device: "tmpfs", Flags: mountFlags, Data: "mode=1777,size=65536k"}
	if hostIPC {
		// The host's IPC namespace goes with the host's POSIX shared memory.
		shm = &configs.Mount{Source: "/dev/shm", Destination: "/dev/shm", Device: "bind", Flags: unix.MS_BIND | unix.MS_REC}
	}
	mounts := []*configs.Mount{
		{Source: "proc", Destination: "/proc", Device: "proc", Flags: mountFlags},
		{Source: "tmpfs", Destination: "/dev", Device: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_STRICTATIME, Data: "mode=755,size=65536k"},
		{Source: "devpts", Destination: "/dev/pts", Device: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
	}
	// /dev/shm once: the pod's shared one when the Spec mounts it there
	// (containerd's sandbox shm), else this default.
	if !slices.ContainsFunc(s.Mounts, func(m Mount) bool { return filepath.Clean(m.Destination) == "/dev/shm" }) {
		mounts = append(mounts, shm)
	}
	mounts = append(mounts, []*configs.Mount{
		{Source: "mqueue", Destination: "/dev/mqueue", Device: "mqueue", Flags: mountFlags},
		{Source: "sysfs", Destination: "/sys", Device: "sysfs", Flags: sysFlags},
		{Source: "cgroup", Destination: "/sys/fs/cgroup", Device: "cgroup", Flags: cgFlags},
	}...)
	// runc's default rootfs propagation is rslave; a Bidirectional volume
	// needs a shared rootfs to propagate back (containerd's CRI does the same).
	rootProp := unix.MS_SLAVE | unix.MS_REC
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Destination) {
			return nil, 0, fmt.Errorf("mount %q -> %q: both paths must be absolute", m.Source, m.Destination)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return nil, 0, fmt.Errorf("mount source: %w", err)
		}
		var prop int
		switch m.Propagation {
		case "", "private", "rprivate":
			prop = unix.MS_PRIVATE
		case "slave", "rslave":
			prop = unix.MS_SLAVE
		case "shared", "rshared":
			prop = unix.MS_SHARED
			rootProp = unix.MS_SHARED | unix.MS_REC
		default:
			return nil, 0, fmt.Errorf("mount %q: unknown propagation %q (want private, rslave or rshared)", m.Destination, m.Propagation)
		}
		if strings.HasPrefix(m.Propagation, "r") || m.Propagation == "" {
			prop |= unix.MS_REC
		}
		flags := unix.MS_BIND | unix.MS_REC
		if m.ReadOnly {
			flags |= unix.MS_RDONLY
		}
		cm := &configs.Mount{
			Source: m.Source, Destination: m.Destination, Device: "bind",
			Flags: flags, PropagationFlags: []int{prop},
		}
		if m.RecursiveReadOnly {
			// containerd's CRI refuses rro on a writable or propagating mount.
			if !m.ReadOnly || prop&^unix.MS_REC != unix.MS_PRIVATE {
				return nil, 0, fmt.Errorf("mount %q: a recursive read-only mount must be read-only and private", m.Destination)
			}
			if !RecursiveReadOnlySupported() {
				return nil, 0, fmt.Errorf("mount %q: recursive read-only mounts need mount_setattr (Linux 5.12)", m.Destination)
			}
			cm.RecAttr = &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		}
		mounts = append(mounts, cm)
	}
	return mounts, rootProp, nil
}

// hostDevices lists the device nodes under the host's /dev, which a
// privileged container gets (containerd's oci.WithHostDevices).
func hostDevices() ([]*devices.Device, error) {
	var devs []*devices.Device
	err := filepath.WalkDir("/dev", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // a node that vanished meanwhile
		}
		if e.IsDir() {
			switch e.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				return filepath.SkipDir
			}
			return nil
		}
		if path == "/dev/console" {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return nil
		}
		var t devices.Type
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			t = devices.CharDevice
		case unix.S_IFBLK:
			t = devices.BlockDevice
		default:
			return nil
		}
		devs = append(devs, &devices.Device{
			Rule: devices.Rule{Type: t, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), Permissions: "rwm", Allow: true},
			Path: path, FileMode: fs.FileMode(st.Mode &^ unix.S_IFMT), Uid: st.Uid, Gid: st.Gid,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices: %w", err)
	}
	return devs, nil
}

// cgroupConfig is libcontainer's cgroup of a leaf at the absolute path p:
// the path itself for cgroupfs; for systemd the scope p names
// (.../<parent>.slice/<prefix>-<name>.scope), which libcontainer starts
// through D-Bus with the resources as unit properties.
func cgroupConfig(p string, systemd bool, res *cgroups.Resources) *cgroups.Cgroup {
	if !systemd {
		return &cgroups.Cgroup{Path: p, Resources: res}
	}
	prefix, name, _ := strings.Cut(strings.TrimSuffix(path.Base(p), ".scope"), "-")
	return &cgroups.Cgroup{Systemd: true, Parent: path.Base(path.Dir(p)), ScopePrefix: prefix, Name: name, Resources: res}
}

// cgroupPathOf is the inverse of cgroupConfig: the leaf's absolute cgroup
// path, for a container re-attached from libcontainer's state.
func cgroupPathOf(c *cgroups.Cgroup) string {
	if !c.Systemd {
		return c.Path
	}
	slice, err := systemd.ExpandSlice(c.Parent)
	if err != nil {
		return ""
	}
	return path.Join(slice, c.ScopePrefix+"-"+c.Name+".scope")
}

func systemdScopePath(p string) bool {
	unit := path.Base(p)
	return strings.HasSuffix(unit, ".scope") && strings.Contains(unit, "-") && strings.HasSuffix(path.Dir(p), ".slice")
}
