package volumes

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/testutil"
)

func TestFSGroupOwnership(t *testing.T) {
	testutil.RequiresRoot(t)
	dir := volumesDir(t)
	objs := objects{cms: map[string]*corev1.ConfigMap{"team/conf": {Data: map[string]string{"a.conf": "A"}}}}
	p := testPod(
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}, DefaultMode: ptr(int32(0o600))}}},
	)
	host := filepath.Join(t.TempDir(), "host-file")
	if err := os.WriteFile(host, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Setup(dir, p, objs, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Without fsGroup nothing changes hands.
	expectOwner(t, s.Path("scratch"), 0, 0o777)
	// What a container leaves in the emptyDir before the sandbox is set up
	// again (a restored shim): files, a directory, a symlink out.
	scratch := s.Path("scratch")
	if err := os.MkdirAll(filepath.Join(scratch, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(scratch, "sub", "f"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(scratch, "out")); err != nil {
		t.Fatal(err)
	}
	p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptr(int64(2000))}
	if _, err := Setup(dir, p, objs, nil); err != nil {
		t.Fatal(err)
	}
	expectOwner(t, scratch, 2000, fs.ModeSetgid|0o777)
	expectOwner(t, filepath.Join(scratch, "sub"), 2000, fs.ModeSetgid|0o770)
	expectOwner(t, filepath.Join(scratch, "sub", "f"), 2000, 0o660)
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(scratch, "out"), &st); err != nil || st.Gid != 2000 {
		t.Errorf("symlink gid %d, %v; want 2000", st.Gid, err)
	}
	expectOwner(t, host, 0, 0o600) // never followed
	// A read-only volume: g+r only.
	conf := s.Path("conf")
	expectOwner(t, filepath.Join(conf, "a.conf"), 2000, 0o640)
	data, err := os.Readlink(filepath.Join(conf, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	expectOwner(t, filepath.Join(conf, data), 2000, fs.ModeSetgid|0o755)
}

// expectOwner checks the group and mode (permissions and setgid) of path.
func expectOwner(t *testing.T, path string, gid uint32, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if g := fi.Sys().(*syscall.Stat_t).Gid; g != gid || fi.Mode()&(fs.ModePerm|fs.ModeSetgid) != mode {
		t.Errorf("%s: gid %d, mode %v; want %d, %v", path, g, fi.Mode()&(fs.ModePerm|fs.ModeSetgid), gid, mode)
	}
}
