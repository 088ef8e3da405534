package integration

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

func TestRecursiveReadOnlyVolume(t *testing.T) {
	// A hostPath with a tmpfs mounted inside it: readOnly alone leaves the
	// submount writable, recursiveReadOnly: Enabled makes it read-only too.
	s := newScenario(t, "rro", corev1.RestartPolicyNever)
	vol := t.TempDir()
	sub := filepath.Join(vol, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	app := container("app", `touch /ro/sub/a && log PlainSubWritable
touch /rro/sub/b 2>/rro-err || log RroSub $(grep -c "Read-only file system" /rro-err)
touch /rro/top 2>/dev/null || log RroTopReadOnly`)
	enabled := corev1.RecursiveReadOnlyEnabled
	app.VolumeMounts = append(app.VolumeMounts,
		corev1.VolumeMount{Name: "vol", MountPath: "/ro", ReadOnly: true},
		corev1.VolumeMount{Name: "vol", MountPath: "/rro", ReadOnly: true, RecursiveReadOnly: &enabled})
	s.app(app)
	s.pod.Spec.Volumes = append(s.pod.Spec.Volumes, corev1.Volume{Name: "vol", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: vol}}})
	r := s.run("--quiet")
	for _, w := range []string{"PlainSubWritable", "RroSub 1", "RroTopReadOnly"} {
		if len(r.ev.all("app", w)) != 1 {
			t.Errorf("no %q:\n%s\n%s", w, r.ev, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(sub, "b")); err == nil {
		t.Error("written through the recursively read-only mount")
	}
}
