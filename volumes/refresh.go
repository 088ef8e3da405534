package volumes

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// Refresh brings the pod's configMap, secret and projected volumes under
// dir (the volumes directory Setup made) up to date with objs, as the
// kubelet's volume manager remounts them while the pod runs: a volume whose
// files would change is rewritten in one swap of its ..data link (writeAtomic),
// so that a container reads either the old files or the new ones, never a
// mix; an unchanged one is not touched. A volume whose object is gone (and
// not optional), or lacks a listed key, keeps its files and is reported in
// the error, as the kubelet's failed SetUp leaves the last payload. It
// returns the names of the volumes it rewrote.
//
// A subPath mount of one of these volumes is a bind mount of the file or
// directory it resolved to when the container started: it keeps the old
// content, as on the kubelet. downwardAPI volumes are left as they are: a
// pod's labels and annotations do not change on podrun.
func Refresh(dir string, pod *corev1.Pod, objs Objects) ([]string, error) {
	var changed []string
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		var files func() (map[string]file, error)
		switch src := v.VolumeSource; {
		case src.ConfigMap != nil:
			files = func() (map[string]file, error) { return configMapFiles(pod, src.ConfigMap, objs) }
		case src.Secret != nil:
			files = func() (map[string]file, error) { return secretFiles(pod, src.Secret, objs) }
		case src.Projected != nil:
			files = func() (map[string]file, error) { return projectedFiles(pod, src.Projected, objs, dir) }
		default:
			continue
		}
		p := filepath.Join(dir, v.Name)
		did, err := refreshOne(p, files)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			continue
		}
		if !did {
			continue
		}
		changed = append(changed, v.Name)
		if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
			if err := setOwnership(p, int(*sc.FSGroup), true); err != nil {
				errs = append(errs, fmt.Errorf("volume %q: %w", v.Name, err))
			}
		}
	}
	return changed, errors.Join(errs...)
}

// refreshOne rewrites the projection at p when its payload differs from
// the files ..data holds.
func refreshOne(p string, files func() (map[string]file, error)) (bool, error) {
	if _, err := os.Lstat(filepath.Join(p, dataDir)); err != nil {
		return false, fmt.Errorf("not set up: %w", err)
	}
	payload, err := files()
	if err != nil {
		return false, err
	}
	same, err := holds(filepath.Join(p, dataDir), payload)
	if err != nil || same {
		return false, err
	}
	return true, writeAtomic(p, payload)
}

// holds reports whether the tree at data has exactly the payload's files
// with their content. Like the AtomicWriter, it compares content and
// paths, not modes: fsGroup changes the modes on disk, and the modes a
// payload asks for come from the pod's spec, which does not change.
func holds(link string, payload map[string]file) (bool, error) {
	ts, err := os.Readlink(link)
	if err != nil {
		return false, err
	}
	data := filepath.Join(filepath.Dir(link), ts)
	clean := make(map[string]file, len(payload))
	for p, f := range payload {
		clean[filepath.Clean(p)] = f
	}
	payload = clean
	n := 0
	same := true
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !same {
			return err
		}
		rel, err := filepath.Rel(data, path)
		if err != nil {
			return err
		}
		f, ok := payload[rel]
		if !ok {
			same = false
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		same = bytes.Equal(b, f.data)
		n++
		return nil
	})
	if err != nil {
		return false, err
	}
	return same && n == len(payload), nil
}
