package cgroups

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	corev1 "k8s.io/api/core/v1"
)

// Tree is podrun's cgroup hierarchy, shaped like the kubelet's kubepods tree
// (cgroupfs driver) under its own root:
//
//	/<Root>/pod<uid>                       Guaranteed pods
//	/<Root>/burstable/pod<uid>             Burstable pods
//	/<Root>/besteffort/pod<uid>            BestEffort pods
//	<pod path>/<container name>            container leaves, made by the runtime
//
// Paths are absolute cgroup paths, the same in every hierarchy: on cgroup v1
// each exists under every mounted hierarchy (FS/cpu/..., FS/memory/...), on
// v2 once under FS. The zero Tree is podrun's real one.
//
// Several processes may create and remove pods under the same root at once:
// creation retries when a shared parent vanishes under it, removal leaves a
// shared parent that is still in use.
type Tree struct {
	// Root is the top-level cgroup, one path element; "podrun" when empty.
	Root string
	// FS is where the cgroup filesystem is mounted; "/sys/fs/cgroup" when
	// empty. On v1 it holds one directory per hierarchy.
	FS string
	// PidsLimit is each pod cgroup's pids.max; 0 or less leaves it
	// unlimited, like the kubelet's default podPidsLimit.
	PidsLimit int64
	// Driver is DriverSystemd or DriverCgroupfs (also when empty). Under
	// systemd the tree is made of units, with the same shape:
	//
	//	/<Root>.slice/<Root>-pod<uid>.slice                          Guaranteed
	//	/<Root>.slice/<Root>-burstable.slice/<Root>-burstable-pod<uid>.slice
	//	/<Root>.slice/<Root>-besteffort.slice/<Root>-besteffort-pod<uid>.slice
	//	<pod slice path>/<pod slice name>-<container>.scope          containers
	//
	// (dashes of the UID as underscores), and the runtime makes the
	// container scopes through systemd too (see runtime.Spec).
	Driver string

	// emulate says FS is a plain directory standing in for a cgroupfs, as
	// in tests: interface files are created on write and deleted before
	// rmdir, which the kernel would do itself.
	emulate bool
}

const (
	burstableDir  = "burstable"
	bestEffortDir = "besteffort"
	podPrefix     = "pod"
)

func (t Tree) root() string {
	if t.Root == "" {
		return "podrun"
	}
	return t.Root
}

func (t Tree) fs() string {
	if t.FS == "" {
		return "/sys/fs/cgroup"
	}
	return t.FS
}

// PodPath returns the pod's cgroup path, e.g. /podrun/burstable/pod<uid>
// (systemd: /podrun.slice/podrun-burstable.slice/podrun-burstable-pod<uid>.slice).
func (t Tree) PodPath(pod *corev1.Pod) string {
	if t.systemd() {
		return t.qosPath(QOSClass(pod)) + "/" + t.podSlice(pod)
	}
	return t.qosPath(QOSClass(pod)) + "/" + podPrefix + string(pod.UID)
}

// ContainerPath returns the cgroup path of a container's leaf, for the
// runtime to create with ContainerResources: <pod path>/<container>, or
// under systemd the scope <pod path>/<pod slice name>-<container>.scope.
func (t Tree) ContainerPath(pod *corev1.Pod, container string) string {
	if t.systemd() {
		return t.PodPath(pod) + "/" + strings.TrimSuffix(t.podSlice(pod), ".slice") + "-" + container + ".scope"
	}
	return t.PodPath(pod) + "/" + container
}

// Systemd says whether the tree's cgroups are systemd units: the runtime
// must then create the container scopes through systemd too.
func (t Tree) Systemd() bool { return t.systemd() }

// DriverName is the driver in use, as podrun info shows it.
func (t Tree) DriverName() string {
	if t.systemd() {
		return DriverSystemd
	}
	return DriverCgroupfs
}

func (t Tree) qosPath(class corev1.PodQOSClass) string {
	if t.systemd() {
		root := "/" + t.rootSlice()
		if class == corev1.PodQOSGuaranteed {
			return root
		}
		return root + "/" + t.qosSlice(class)
	}
	switch class {
	case corev1.PodQOSGuaranteed:
		return "/" + t.root()
	case corev1.PodQOSBurstable:
		return "/" + t.root() + "/" + burstableDir
	}
	return "/" + t.root() + "/" + bestEffortDir
}

func (t Tree) check(pod *corev1.Pod) error {
	if r := t.root(); strings.Contains(r, "/") || r == "." || r == ".." {
		return fmt.Errorf("cgroup root %q: must be a single path element", r)
	}
	if uid := string(pod.UID); uid == "" || strings.Contains(uid, "/") || uid == "." || uid == ".." {
		return fmt.Errorf("pod %s/%s: UID %q cannot name a cgroup", pod.Namespace, pod.Name, uid)
	}
	if t.systemd() {
		return t.checkSystemd(pod)
	}
	return nil
}

// v2 reports whether FS is a cgroup v2 (unified) mount.
func (t Tree) v2() bool {
	_, err := os.Stat(filepath.Join(t.fs(), "cgroup.controllers"))
	return err == nil
}

// dir returns where a cgroup path lives for a controller: FS/<controller>/path
// on v1, FS/path on v2.
func (t Tree) dir(controller, path string) string {
	if t.v2() {
		return filepath.Join(t.fs(), path)
	}
	return filepath.Join(t.fs(), controller, path)
}

func (t Tree) exists(controller string, elem ...string) bool {
	_, err := os.Stat(t.dir(controller, filepath.Join(elem...)))
	return err == nil
}

func (t Tree) hasController(name string) bool {
	if !t.v2() {
		fi, err := os.Stat(filepath.Join(t.fs(), name))
		return err == nil && fi.IsDir()
	}
	b, err := os.ReadFile(filepath.Join(t.fs(), "cgroup.controllers"))
	return err == nil && slices.Contains(strings.Fields(string(b)), name)
}

// hierarchies returns the mount points a cgroup path has a directory in:
// FS on v2; on v1 every hierarchy under FS (libcontainer creates container
// leaves in all of them), skipping aliases such as cpu -> cpu,cpuacct.
func (t Tree) hierarchies() ([]string, error) {
	if t.v2() {
		return []string{t.fs()}, nil
	}
	entries, err := os.ReadDir(t.fs())
	if err != nil {
		return nil, fmt.Errorf("list cgroup hierarchies: %w", err)
	}
	var hs []string
	for _, e := range entries {
		if e.IsDir() {
			hs = append(hs, filepath.Join(t.fs(), e.Name()))
		}
	}
	if len(hs) == 0 {
		return nil, fmt.Errorf("no cgroup hierarchies under %s", t.fs())
	}
	return hs, nil
}

// CreatePod creates the pod's cgroup and its parents, and limits it with
// PodResources. Calling it again for an existing pod re-applies the values.
// When it fails on a pod cgroup it created, it removes it again.
func (t Tree) CreatePod(pod *corev1.Pod) (retErr error) {
	if err := t.check(pod); err != nil {
		return err
	}
	if t.systemd() {
		return t.createPodUnits(pod)
	}
	hs, err := t.hierarchies()
	if err != nil {
		return err
	}
	path := t.PodPath(pod)
	fresh := true
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h, path)); err == nil {
			fresh = false
		}
	}
	defer func() {
		if retErr != nil && fresh {
			if err := t.remove(path); err != nil {
				slog.Warn("cgroups: undo pod cgroup", "path", path, "err", err)
			}
		}
	}()
	for _, h := range hs {
		if err := t.mkdirChain(h, path); err != nil {
			return fmt.Errorf("create pod cgroup %s: %w", path, err)
		}
	}
	if t.v2() {
		t.enableControllers(path)
	}
	if QOSClass(pod) == corev1.PodQOSBestEffort {
		// The kubelet gives the besteffort parent the minimum weight too.
		if err := t.apply(t.qosPath(corev1.PodQOSBestEffort), &cgroups.Resources{CpuShares: minShares, CpuWeight: sharesToWeight(minShares)}); err != nil {
			return fmt.Errorf("limit besteffort cgroup: %w", err)
		}
	}
	if err := t.apply(path, t.PodResources(pod)); err != nil {
		return fmt.Errorf("limit pod cgroup %s: %w", path, err)
	}
	return nil
}

// mkdirChain creates path under the hierarchy h level by level. A level that
// vanishes meanwhile (another podrun removed a parent it thought unused)
// makes it start over.
func (t Tree) mkdirChain(h, path string) error {
	elems := strings.Split(strings.Trim(path, "/"), "/")
	for attempt := 0; ; attempt++ {
		err := func() error {
			dir := h
			for _, e := range elems {
				dir = filepath.Join(dir, e)
				if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
			return nil
		}()
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return err
		}
	}
}

// enableControllers turns on, in every level from FS down to path, the
// controllers FS offers, so that the pod and its container leaves get their
// interface files. Failures are left to surface as missing files on write:
// FS itself may be managed by someone else.
func (t Tree) enableControllers(path string) {
	b, err := os.ReadFile(filepath.Join(t.fs(), "cgroup.controllers"))
	if err != nil {
		return
	}
	ctrls := strings.Fields(string(b))
	if len(ctrls) == 0 {
		return
	}
	dir := t.fs()
	for _, e := range append([]string{""}, strings.Split(strings.Trim(path, "/"), "/")...) {
		dir = filepath.Join(dir, e)
		if t.write(dir, "cgroup.subtree_control", "+"+strings.Join(ctrls, " +")) == nil {
			continue
		}
		for _, c := range ctrls {
			_ = t.write(dir, "cgroup.subtree_control", "+"+c)
		}
	}
}

// apply writes the values PodResources sets (cpu, memory, pids, hugetlb).
func (t Tree) apply(path string, r *cgroups.Resources) error {
	type kv struct{ ctrl, file, val string }
	var w []kv
	if t.v2() {
		if r.CpuWeight != 0 {
			w = append(w, kv{"cpu", "cpu.weight", strconv.FormatUint(r.CpuWeight, 10)})
		}
		if r.CpuQuota != 0 || r.CpuPeriod != 0 {
			q := "max"
			if r.CpuQuota > 0 {
				q = strconv.FormatInt(r.CpuQuota, 10)
			}
			w = append(w, kv{"cpu", "cpu.max", q + " " + strconv.FormatUint(cmp.Or(r.CpuPeriod, quotaPeriod), 10)})
		}
		if r.Memory != 0 {
			w = append(w, kv{"memory", "memory.max", limitString(r.Memory)})
		}
		if r.PidsLimit != nil {
			w = append(w, kv{"pids", "pids.max", limitString(*r.PidsLimit)})
		}
		for _, h := range r.HugetlbLimit {
			w = append(w, kv{"hugetlb", "hugetlb." + h.Pagesize + ".max", strconv.FormatUint(h.Limit, 10)})
		}
	} else {
		if r.CpuShares != 0 {
			w = append(w, kv{"cpu", "cpu.shares", strconv.FormatUint(r.CpuShares, 10)})
		}
		if r.CpuPeriod != 0 {
			w = append(w, kv{"cpu", "cpu.cfs_period_us", strconv.FormatUint(r.CpuPeriod, 10)})
		}
		if r.CpuQuota != 0 {
			w = append(w, kv{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(r.CpuQuota, 10)})
		}
		if r.Memory != 0 {
			w = append(w, kv{"memory", "memory.limit_in_bytes", strconv.FormatInt(r.Memory, 10)})
		}
		if r.PidsLimit != nil {
			w = append(w, kv{"pids", "pids.max", limitString(*r.PidsLimit)})
		}
		for _, h := range r.HugetlbLimit {
			w = append(w, kv{"hugetlb", "hugetlb." + h.Pagesize + ".limit_in_bytes", strconv.FormatUint(h.Limit, 10)})
		}
	}
	for _, x := range w {
		if err := t.write(t.dir(x.ctrl, path), x.file, x.val); err != nil {
			return err
		}
	}
	return nil
}

func limitString(v int64) string {
	if v <= 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}

func (t Tree) write(dir, file, val string) error {
	flags := os.O_WRONLY | os.O_TRUNC
	if t.emulate {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(filepath.Join(dir, file), flags, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(val)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", val, filepath.Join(dir, file), err)
	}
	return nil
}

// RemovePod kills whatever still runs in the pod's cgroup (SIGKILL, then
// waits until it is empty), removes it with every container leaf left in it,
// and removes the QoS parent and the root when no other pod uses them. A pod
// without a cgroup is not an error.
func (t Tree) RemovePod(pod *corev1.Pod) error {
	if err := t.check(pod); err != nil {
		return err
	}
	if t.systemd() {
		return t.removePodUnits(QOSClass(pod), t.podSlice(pod))
	}
	return t.remove(t.PodPath(pod))
}

// GC removes, like RemovePod, the cgroup of every pod under the root whose
// UID live does not report, then the parents no pod uses any more. live must
// report pods still being created too, or their cgroups go.
func (t Tree) GC(live func(uid string) bool) error {
	if t.systemd() {
		return t.gcUnits(live)
	}
	hs, err := t.hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, parent := range []string{t.qosPath(corev1.PodQOSGuaranteed), t.qosPath(corev1.PodQOSBurstable), t.qosPath(corev1.PodQOSBestEffort)} {
		seen := map[string]bool{}
		for _, h := range hs {
			entries, err := os.ReadDir(filepath.Join(h, parent))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("list %s: %w", filepath.Join(h, parent), err))
			}
			for _, e := range entries {
				uid, ok := strings.CutPrefix(e.Name(), podPrefix)
				if !e.IsDir() || !ok || seen[uid] || live(uid) {
					continue
				}
				seen[uid] = true
				slog.Info("cgroups: removing cgroup of a pod that is gone", "uid", uid, "path", parent+"/"+e.Name())
				if err := t.remove(parent + "/" + e.Name()); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for _, h := range hs {
		for _, class := range []corev1.PodQOSClass{corev1.PodQOSBurstable, corev1.PodQOSBestEffort} {
			if err := t.removeUnused(h, t.qosPath(class)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// remove empties and removes a pod cgroup in every hierarchy, then the
// parents left unused.
func (t Tree) remove(path string) error {
	hs, err := t.hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range hs {
		dir := filepath.Join(h, path)
		if err := t.killAll(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := t.rmdirTree(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := t.removeUnused(h, filepath.Dir(path)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeUnused removes dir and its parents up to and including the root,
// stopping at the first one still in use (another pod's cgroup in it).
func (t Tree) removeUnused(h, dir string) error {
	for ; dir != "/" && dir != "." && dir != ""; dir = filepath.Dir(dir) {
		err := t.rmdir(filepath.Join(h, dir))
		switch {
		case err == nil, errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, syscall.EBUSY), errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, fs.ErrExist):
			return nil
		default:
			return fmt.Errorf("remove cgroup %s: %w", filepath.Join(h, dir), err)
		}
	}
	return nil
}

// rmdirTree removes dir and every cgroup below it, deepest first.
func (t Tree) rmdirTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := t.rmdirTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	// A cgroup just emptied can stay busy for a moment while the kernel
	// takes its last task down.
	delay := time.Millisecond
	for tries := 0; ; tries++ {
		err := t.rmdir(dir)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if !errors.Is(err, syscall.EBUSY) || tries == 10 {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 100*time.Millisecond)
	}
}

func (t Tree) rmdir(dir string) error {
	if t.emulate {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !e.IsDir() {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	return syscall.Rmdir(dir)
}

// killTimeout bounds how long killAll waits for SIGKILLed processes to
// leave; only a task stuck in the kernel (D state) takes longer.
const killTimeout = 10 * time.Second

// killAll SIGKILLs every process in dir and the cgroups below it, and waits
// until none is left. It repeats the kill, since a process may fork while
// the first round is under way; on v2, cgroup.kill does it in one go.
func (t Tree) killAll(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
		if err := t.write(dir, "cgroup.kill", "1"); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(killTimeout)
	delay := time.Millisecond
	for {
		pids, err := procs(dir)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has processes %v %s after SIGKILL", dir, pids, killTimeout)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("kill process %d in cgroup %s: %w", pid, dir, err)
			}
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// procs lists the processes in dir and every cgroup below it.
func procs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("parse %s: %w", filepath.Join(p, "cgroup.procs"), err)
			}
			pids = append(pids, pid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list processes in cgroup %s: %w", dir, err)
	}
	return pids, nil
}
