package volumes

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/testutil"
)

func TestRefresh(t *testing.T) {
	dir := volumesDir(t)
	objs := objects{cms: map[string]*corev1.ConfigMap{"team/conf": {Data: map[string]string{"a.conf": "A", "b.conf": "B"}}}}
	ref := corev1.LocalObjectReference{Name: "conf"}
	p := testPod(
		corev1.Volume{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref}}},
		corev1.Volume{Name: "proj", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref, Items: []corev1.KeyToPath{{Key: "a.conf", Path: "sub/a"}}}},
		}}}},
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	)
	if !testutil.RootEnabled() {
		p.Spec.Volumes = slices.Delete(p.Spec.Volumes, 1, 2) // a projected volume is a tmpfs mount
	}
	if _, err := Setup(dir, p, objs, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "scratch", "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := func(v string) string {
		t.Helper()
		l, err := os.Readlink(filepath.Join(dir, v, "..data"))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := link("cm")

	// Nothing changed: nothing is rewritten.
	if changed, err := Refresh(dir, p, objs); err != nil || len(changed) != 0 || link("cm") != before {
		t.Fatalf("unchanged refresh: changed %v, err %v, ..data %s -> %s", changed, err, before, link("cm"))
	}

	// A changed key and a removed one: one swap of ..data per volume.
	objs.cms["team/conf"] = &corev1.ConfigMap{Data: map[string]string{"a.conf": "A2"}}
	changed, err := Refresh(dir, p, objs)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cm"}
	if testutil.RootEnabled() {
		want = []string{"cm", "proj"}
		if got := read(t, filepath.Join(dir, "proj", "sub", "a")); got != "A2" {
			t.Errorf("projected sub/a = %q", got)
		}
	}
	if !slices.Equal(changed, want) {
		t.Errorf("changed %v, want %v", changed, want)
	}
	if link("cm") == before || read(t, filepath.Join(dir, "cm", "a.conf")) != "A2" {
		t.Errorf("a.conf not swapped in: ..data -> %s, a.conf %q", link("cm"), read(t, filepath.Join(dir, "cm", "a.conf")))
	}
	if _, err := os.Lstat(filepath.Join(dir, "cm", "b.conf")); err == nil {
		t.Error("b.conf left after its key went")
	}
	if _, err := os.Stat(filepath.Join(dir, "cm", before)); err == nil {
		t.Errorf("old data directory %s left", before)
	}
	if read(t, filepath.Join(dir, "scratch", "keep")) != "x" {
		t.Error("emptyDir content lost")
	}

	// The object gone: the volume keeps its last files, and the error says why.
	delete(objs.cms, "team/conf")
	after := link("cm")
	if _, err := Refresh(dir, p, objs); err == nil || !strings.Contains(err.Error(), `configMap "conf" not found`) {
		t.Errorf("refresh without the configMap: %v", err)
	}
	if link("cm") != after || read(t, filepath.Join(dir, "cm", "a.conf")) != "A2" {
		t.Error("a failed refresh changed the volume")
	}
}
