package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
)

// Objects looks up the configMaps and secrets a pod's volumes name. A nil
// result means the object does not exist.
type Objects interface {
	ConfigMap(namespace, name string) *corev1.ConfigMap
	Secret(namespace, name string) *corev1.Secret
}

// Set is a pod's volumes on the host, as Setup made them.
type Set struct {
	paths    map[string]string
	readOnly map[string]bool
}

// Path returns the host path to bind-mount for the named volume, or "" if
// the pod has no such volume.
func (s *Set) Path(name string) string { return s.paths[name] }

// ReadOnly reports whether the named volume must be mounted read-only
// whatever the volumeMount says: the kubelet mounts configMap, secret,
// downwardAPI and projected volumes read-only.
func (s *Set) ReadOnly(name string) bool { return s.readOnly[name] }

// Setup makes every volume of the pod under dir, the pod's volumes
// directory, one entry per volume name:
//   - emptyDir: a directory (mode 0777), or for medium Memory a tmpfs of
//     memSize(v) bytes (no size option when 0). HugePages media are refused.
//   - hostPath: nothing under dir; the path is checked against its type the
//     way the kubelet checks it, DirectoryOrCreate and FileOrCreate creating
//     it (0755 directories, parents included; a 0644 file, whose parent must
//     exist).
//   - configMap (on disk), secret, downwardAPI and projected (each on a
//     tmpfs of memSize(v) bytes, as the kubelet keeps them in memory): files
//     written like the kubelet's AtomicWriter, user-visible names being
//     symlinks into ..data, itself a symlink to a timestamped directory.
//
// Other volume types, and projected serviceAccountToken, clusterTrustBundle
// and podCertificate sources, are refused. A missing configMap or secret,
// or a missing key listed in items, is an error unless the source is
// optional. The volumes live as long as the pod: Setup runs once before its
// first container, and Teardown after its last.
//
// With the pod's fsGroup, every volume but a hostPath is given to that
// group (setOwnership, the kubelet's SetVolumeOwnership), each time Setup
// runs; fsGroupChangePolicy changes nothing for these volume types, as on
// the kubelet.
//
// Setup on a dir an earlier Setup of the same pod made keeps the emptyDir
// content and rewrites the projections. On error it removes what it created.
func Setup(dir string, pod *corev1.Pod, objs Objects, memSize func(v *corev1.Volume) int64) (_ *Set, retErr error) {
	_, err := os.Lstat(dir)
	fresh := errors.Is(err, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create volumes directory: %w", err)
	}
	var undo []string
	defer func() {
		if retErr == nil {
			return
		}
		if fresh {
			undo = []string{dir}
		}
		for _, p := range undo {
			if err := Teardown(p); err != nil {
				slog.Warn("volumes: undo", "path", p, "err", err)
			}
		}
	}()
	s := &Set{paths: map[string]string{}, readOnly: map[string]bool{}}
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		p := filepath.Join(dir, v.Name)
		if strings.ContainsRune(v.Name, '/') || v.Name == "" || strings.HasPrefix(v.Name, ".") {
			return nil, fmt.Errorf("volume %q: invalid name", v.Name)
		}
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			undo = append(undo, p)
		}
		size := func() int64 {
			if memSize == nil {
				return 0
			}
			return memSize(v)
		}
		var err error
		switch src := v.VolumeSource; {
		case src.EmptyDir != nil:
			err = emptyDir(p, src.EmptyDir.Medium, size)
		case src.HostPath != nil:
			p, err = hostPath(src.HostPath)
		case src.ConfigMap != nil:
			err = project(p, false, size, func() (map[string]file, error) { return configMapFiles(pod, src.ConfigMap, objs) })
		case src.Secret != nil:
			err = project(p, true, size, func() (map[string]file, error) { return secretFiles(pod, src.Secret, objs) })
		case src.DownwardAPI != nil:
			err = project(p, true, size, func() (map[string]file, error) {
				return downwardAPIFiles(pod, src.DownwardAPI.Items, src.DownwardAPI.DefaultMode, dir)
			})
		case src.Projected != nil:
			err = project(p, true, size, func() (map[string]file, error) { return projectedFiles(pod, src.Projected, objs, dir) })
		default:
			err = fmt.Errorf("%s volumes are not supported", sourceType(&src))
		}
		if err != nil {
			return nil, fmt.Errorf("volume %q: %w", v.Name, err)
		}
		s.paths[v.Name] = p
		s.readOnly[v.Name] = v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
		if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil && v.HostPath == nil {
			// As the kubelet, which logs a failure and goes on.
			if err := setOwnership(p, int(*sc.FSGroup), s.readOnly[v.Name]); err != nil {
				slog.Warn("volumes: fsGroup", "volume", v.Name, "err", err)
			}
		}
	}
	return s, nil
}

// sourceType names the volume source that is set, as the API spells it.
func sourceType(src *corev1.VolumeSource) string {
	v := reflect.ValueOf(src).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			return name
		}
	}
	return "untyped"
}

func emptyDir(p string, medium corev1.StorageMedium, size func() int64) error {
	switch {
	case medium == corev1.StorageMediumDefault:
		// 0777 whatever the umask, so that containers running as any user
		// can write, as on the kubelet.
		if err := os.Mkdir(p, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return os.Chmod(p, 0o777)
	case medium == corev1.StorageMediumMemory:
		return tmpfs(p, size())
	case strings.HasPrefix(string(medium), string(corev1.StorageMediumHugePages)):
		return fmt.Errorf("emptyDir medium %s is not supported: podrun mounts no hugetlbfs", medium)
	}
	return fmt.Errorf("unknown emptyDir medium %q", medium)
}

// tmpfs mounts a tmpfs of size bytes (the kernel's default when 0) at p,
// unless one is there already. Its root keeps tmpfs's mode, 1777, as on
// the kubelet.
func tmpfs(p string, size int64) error {
	if err := os.Mkdir(p, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	mounted, err := mountsUnder(p)
	if err != nil {
		return err
	}
	if r, err := resolve(p); err == nil && slices.Contains(mounted, r) {
		return nil
	}
	opts := ""
	if size > 0 {
		opts = fmt.Sprintf("size=%d", size)
	}
	if err := syscall.Mount("tmpfs", p, "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("mount tmpfs (%s) at %s: %w", opts, p, err)
	}
	return nil
}

// hostPath checks the path against its type like the kubelet's hostPath
// plugin (checkTypeInternal), following symlinks, and returns it.
func hostPath(src *corev1.HostPathVolumeSource) (string, error) {
	p := src.Path
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("hostPath %q: must be an absolute path", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." {
			return "", fmt.Errorf("invalid hostPath %q: must not contain '..'", p)
		}
	}
	typ := corev1.HostPathUnset
	if src.Type != nil {
		typ = *src.Type
	}
	fi, statErr := os.Stat(p)
	exists := statErr == nil
	mode := func() fs.FileMode {
		if !exists {
			return 0
		}
		return fi.Mode()
	}()
	fail := func(what string) (string, error) {
		return "", fmt.Errorf("hostPath type check failed: %s is not %s", p, what)
	}
	switch typ {
	case corev1.HostPathUnset:
	case corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory:
		if !exists && typ == corev1.HostPathDirectoryOrCreate {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return "", fmt.Errorf("create hostPath directory %s: %w", p, err)
			}
			return p, nil
		}
		if !mode.IsDir() {
			return fail("a directory")
		}
	case corev1.HostPathFileOrCreate, corev1.HostPathFile:
		if !exists && typ == corev1.HostPathFileOrCreate {
			f, err := os.OpenFile(p, os.O_CREATE, 0o644)
			if err != nil {
				return "", fmt.Errorf("create hostPath file %s: %w", p, err)
			}
			return p, f.Close()
		}
		// As on the kubelet, anything that exists and is not a directory
		// passes for a file.
		if !exists || mode.IsDir() {
			return fail("a file")
		}
	case corev1.HostPathSocket:
		if mode&fs.ModeSocket == 0 {
			return fail("a socket file")
		}
	case corev1.HostPathCharDev:
		if mode&fs.ModeCharDevice == 0 || mode&fs.ModeDevice == 0 {
			return fail("a character device")
		}
	case corev1.HostPathBlockDev:
		if mode&fs.ModeDevice == 0 || mode&fs.ModeCharDevice != 0 {
			return fail("a block device")
		}
	default:
		return "", fmt.Errorf("%s is an invalid hostPath type", typ)
	}
	return p, nil
}

// project writes a projection's files into p, on a tmpfs when inMemory.
// The files are computed first, so that a missing object fails before
// anything is mounted.
func project(p string, inMemory bool, size func() int64, files func() (map[string]file, error)) error {
	payload, err := files()
	if err != nil {
		return err
	}
	if inMemory {
		if err := tmpfs(p, size()); err != nil {
			return err
		}
	} else if err := emptyDir(p, corev1.StorageMediumDefault, nil); err != nil {
		return err
	}
	return writeAtomic(p, payload)
}

// Teardown unmounts every mount under dir and removes dir with everything
// in it. It needs nothing but dir, so it works after a crash, and a missing
// dir is not an error. It refuses to remove anything while a mount under
// dir remains.
func Teardown(dir string) error {
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		m := mounts[i]
		err := syscall.Unmount(m, 0)
		if errors.Is(err, syscall.EBUSY) {
			// Still held by a process or another namespace: detach it here;
			// the kernel frees it when the last user goes.
			err = syscall.Unmount(m, syscall.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	if left, err := mountsUnder(dir); err != nil {
		return err
	} else if len(left) > 0 {
		return fmt.Errorf("remove volumes %s: still mounted: %v", dir, left)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove volumes %s: %w", dir, err)
	}
	return nil
}
