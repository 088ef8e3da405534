package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	corev1 "k8s.io/api/core/v1"
)

// The cgroup drivers, named as the kubelet's --cgroup-driver names them.
const (
	// DriverCgroupfs writes cgroupfs directly (podrun/burstable/pod<uid>).
	DriverCgroupfs = "cgroupfs"
	// DriverSystemd has systemd create every cgroup as a unit through its
	// D-Bus API, with the limits as unit properties:
	// podrun.slice/podrun-burstable.slice/podrun-burstable-pod<uid>.slice,
	// one scope per container in it.
	DriverSystemd = "systemd"
)

// DefaultDriver is systemd when systemd is PID 1 (/run/systemd/system is a
// directory, as sd_booted checks), cgroupfs otherwise: the kubelet's
// recommendation, since two managers of one hierarchy fight over it.
func DefaultDriver() string {
	if fi, err := os.Lstat("/run/systemd/system"); err == nil && fi.IsDir() {
		return DriverSystemd
	}
	return DriverCgroupfs
}

// CheckDriver refuses a driver name podrun does not know, or systemd on a
// host systemd does not run.
func CheckDriver(name string) error {
	switch name {
	case DriverCgroupfs:
		return nil
	case DriverSystemd:
		if DefaultDriver() != DriverSystemd {
			return errors.New("cgroup driver systemd: systemd is not running on this host (no /run/systemd/system); use cgroupfs")
		}
		return nil
	}
	return fmt.Errorf("cgroup driver %q: want %s or %s", name, DriverSystemd, DriverCgroupfs)
}

func (t Tree) systemd() bool { return t.Driver == DriverSystemd && !t.emulate }

// Unit names. systemd reads "-" in a slice name as nesting
// (a-b.slice is in a.slice), so a UID's dashes become underscores, as the
// kubelet's systemd driver escapes them.
func (t Tree) rootSlice() string { return t.root() + ".slice" }

func (t Tree) qosSlice(class corev1.PodQOSClass) string {
	switch class {
	case corev1.PodQOSGuaranteed:
		return t.rootSlice()
	case corev1.PodQOSBurstable:
		return t.root() + "-" + burstableDir + ".slice"
	}
	return t.root() + "-" + bestEffortDir + ".slice"
}

func (t Tree) podSlice(pod *corev1.Pod) string {
	return strings.TrimSuffix(t.qosSlice(QOSClass(pod)), ".slice") + "-" + podPrefix + escapeUID(string(pod.UID)) + ".slice"
}

func escapeUID(uid string) string   { return strings.ReplaceAll(uid, "-", "_") }
func unescapeUID(uid string) string { return strings.ReplaceAll(uid, "_", "-") }

// checkSystemd refuses names systemd would read differently.
func (t Tree) checkSystemd(pod *corev1.Pod) error {
	if strings.Contains(t.root(), "-") {
		return fmt.Errorf("cgroup root %q: must not contain '-' under the systemd driver (systemd reads it as slice nesting)", t.root())
	}
	for _, r := range string(pod.UID) {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("pod %s/%s: UID %q cannot name a systemd slice (letters, digits and '-' only)", pod.Namespace, pod.Name, pod.UID)
		}
	}
	return nil
}

// unitMu serialises the systemd driver's unit changes in this process: a
// QoS slice stopped as unused while another pod starts in it would take
// that pod down.
var unitMu sync.Mutex

// createPodUnits starts the root, QoS and pod slices (each already running
// is left as it is) and sets the pod's limits as properties of its slice,
// which systemd also writes to cgroupfs, as the kubelet's systemd driver
// does.
func (t Tree) createPodUnits(pod *corev1.Pod) error {
	unitMu.Lock()
	defer unitMu.Unlock()
	class := QOSClass(pod)
	if err := t.startSlice(t.rootSlice(), "-.slice", nil); err != nil {
		return err
	}
	if class == corev1.PodQOSBurstable {
		if err := t.startSlice(t.qosSlice(class), t.rootSlice(), nil); err != nil {
			return err
		}
	}
	if class == corev1.PodQOSBestEffort {
		// The kubelet gives the besteffort parent the minimum weight too.
		r := &cgroups.Resources{CpuShares: minShares}
		if t.v2() {
			r.CpuWeight = sharesToWeight(minShares)
		}
		if err := t.startSlice(t.qosSlice(class), t.rootSlice(), r); err != nil {
			return err
		}
	}
	slice := t.podSlice(pod)
	if err := t.startSlice(slice, t.qosSlice(class), nil); err != nil {
		return err
	}
	if t.v2() {
		// systemd enables only the controllers it manages; hugetlb is not one.
		t.enableControllers(t.PodPath(pod))
	}
	m, err := t.sliceManager(slice, t.qosSlice(class), t.PodResources(pod))
	if err != nil {
		return err
	}
	if err := m.Set(t.PodResources(pod)); err != nil {
		return fmt.Errorf("limit pod slice %s: %w", slice, err)
	}
	return nil
}

func (t Tree) sliceManager(name, parent string, r *cgroups.Resources) (cgroups.Manager, error) {
	if r == nil {
		r = &cgroups.Resources{}
	}
	r.SkipDevices = true
	m, err := manager.New(&cgroups.Cgroup{Systemd: true, Name: name, Parent: parent, Resources: r})
	if err != nil {
		return nil, fmt.Errorf("systemd slice %s: %w", name, err)
	}
	return m, nil
}

// startSlice starts the slice name in parent (a no-op when it runs) and,
// with r, sets r as its properties.
func (t Tree) startSlice(name, parent string, r *cgroups.Resources) error {
	m, err := t.sliceManager(name, parent, r)
	if err != nil {
		return err
	}
	if err := m.Apply(-1); err != nil {
		return fmt.Errorf("start systemd slice %s: %w", name, err)
	}
	if r != nil {
		if err := m.Set(r); err != nil {
			return fmt.Errorf("limit systemd slice %s: %w", name, err)
		}
	}
	return nil
}

// removePodUnits kills whatever still runs in the pod's slice, stops it
// (and with it every scope left in it), removes what systemd left of its
// cgroups, then stops the QoS and root slices when no other pod is in them.
func (t Tree) removePodUnits(class corev1.PodQOSClass, slice string) error {
	unitMu.Lock()
	defer unitMu.Unlock()
	hs, err := t.hierarchies()
	if err != nil {
		return err
	}
	path := t.qosPath(class) + "/" + slice
	for _, h := range hs {
		if err := t.killAll(filepath.Join(h, path)); err != nil {
			return err
		}
	}
	if err := t.stopSlice(slice, t.qosSlice(class)); err != nil {
		return err
	}
	for _, h := range hs {
		if err := t.rmdirTree(filepath.Join(h, path)); err != nil {
			return err
		}
	}
	return t.stopUnusedSlices()
}

func (t Tree) stopSlice(name, parent string) error {
	m, err := t.sliceManager(name, parent, nil)
	if err != nil {
		return err
	}
	if err := m.Destroy(); err != nil {
		return fmt.Errorf("stop systemd slice %s: %w", name, err)
	}
	return nil
}

// stopUnusedSlices stops the QoS slices that hold no pod, then the root
// slice when it holds nothing either.
func (t Tree) stopUnusedSlices() error {
	for _, class := range []corev1.PodQOSClass{corev1.PodQOSBurstable, corev1.PodQOSBestEffort} {
		if t.hasChildren(t.qosPath(class)) {
			continue
		}
		if err := t.stopSlice(t.qosSlice(class), t.rootSlice()); err != nil {
			return err
		}
	}
	if t.hasChildren(t.qosPath(corev1.PodQOSGuaranteed)) {
		return nil
	}
	return t.stopSlice(t.rootSlice(), "-.slice")
}

// hasChildren says whether the cgroup at path has a child cgroup in any
// hierarchy.
func (t Tree) hasChildren(path string) bool {
	hs, err := t.hierarchies()
	if err != nil {
		return true
	}
	for _, h := range hs {
		entries, err := os.ReadDir(filepath.Join(h, path))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true
		}
		for _, e := range entries {
			if e.IsDir() {
				return true
			}
		}
	}
	return false
}

// gcUnits is GC under the systemd driver.
func (t Tree) gcUnits(live func(uid string) bool) error {
	hs, err := t.hierarchies()
	if err != nil {
		return err
	}
	var errs []error
	for _, class := range []corev1.PodQOSClass{corev1.PodQOSGuaranteed, corev1.PodQOSBurstable, corev1.PodQOSBestEffort} {
		prefix := strings.TrimSuffix(t.qosSlice(class), ".slice") + "-" + podPrefix
		seen := map[string]bool{}
		for _, h := range hs {
			entries, err := os.ReadDir(filepath.Join(h, t.qosPath(class)))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("list %s: %w", filepath.Join(h, t.qosPath(class)), err))
			}
			for _, e := range entries {
				esc, ok := strings.CutPrefix(e.Name(), prefix)
				if !e.IsDir() || !ok || !strings.HasSuffix(esc, ".slice") || seen[e.Name()] {
					continue
				}
				seen[e.Name()] = true
				if uid := unescapeUID(strings.TrimSuffix(esc, ".slice")); !live(uid) {
					slog.Info("cgroups: stopping the slice of a pod that is gone", "uid", uid, "unit", e.Name())
					errs = append(errs, t.removePodUnits(class, e.Name()))
				}
			}
		}
	}
	if len(errs) == 0 {
		unitMu.Lock()
		errs = append(errs, t.stopUnusedSlices())
		unitMu.Unlock()
	}
	return errors.Join(errs...)
}
