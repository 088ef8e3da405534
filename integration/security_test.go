package integration

import (
	"archive/tar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/image/imagetest"
	"github.com/podrun/podrun/internal/testutil"
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

// loadImage loads img into the suite's image store as ref.
func loadImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "image", "load", "-i", file, "--root", filepath.Join(tmp, "root")).CombinedOutput(); err != nil {
		t.Fatalf("image load: %v\n%s", err, out)
	}
}

func TestSupplementalGroupsPolicy(t *testing.T) {
	// The image's /etc/group lists "user" (uid 1000) in wheel (10): Merge
	// adds it to the process's groups, Strict does not.
	testutil.RequiresRoot(t)
	base, err := imagetest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := imagetest.Layer(func(tw *tar.Writer) error {
		b := []byte("root:x:0:\nwheel:x:10:user\nuser:x:1000:\nnogroup:x:65534:\n")
		if err := tw.WriteHeader(&tar.Header{Name: "etc/group", Mode: 0o644, Size: int64(len(b)), ModTime: imagetest.Epoch}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagetest.Image(base, v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=" + imagetest.Path}}, layer)
	if err != nil {
		t.Fatal(err)
	}
	loadImage(t, "groups-test:latest", img)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	var pods []any
	for _, policy := range []corev1.SupplementalGroupsPolicy{corev1.SupplementalGroupsPolicyMerge, corev1.SupplementalGroupsPolicyStrict} {
		s := newScenario(t, "groups-"+strings.ToLower(string(policy)), corev1.RestartPolicyNever)
		s.pod.Spec.Volumes[0].HostPath.Path = dir
		app := container(strings.ToLower(string(policy)), `log $(grep Groups: /proc/self/status)`)
		app.Image = "groups-test:latest"
		s.app(app)
		uid, fsGroup := int64(1000), int64(2000)
		s.pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, SupplementalGroups: []int64{3000}, FSGroup: &fsGroup,
			SupplementalGroupsPolicy: &policy}
		pods = append(pods, s.pod)
	}
	r := podrun(t, dir, pods, "--quiet")
	for who, want := range map[string]string{"merge": "Groups: 10 1000 2000 3000", "strict": "Groups: 1000 2000 3000"} {
		if len(r.ev.all(who, want)) != 1 {
			t.Errorf("%s: no %q:\n%s\n%s", who, want, r.ev, r.stderr)
		}
	}
}

func TestFSGroupVolumeOwnership(t *testing.T) {
	// runAsUser 1000, fsGroup 2000: a file written into the emptyDir is
	// group 2000 (the setgid directory), and a configMap file of mode 0600
	// is readable through the group.
	s := newScenario(t, "fsgroup", corev1.RestartPolicyNever)
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "secretish"},
		Data:       map[string]string{"key": "opened"},
	}
	app := container("app", `echo x > /data/f && log Wrote $(stat -c %g /data/f); log Read $(cat /conf/key)`)
	app.VolumeMounts = append(app.VolumeMounts,
		corev1.VolumeMount{Name: "data", MountPath: "/data"}, corev1.VolumeMount{Name: "conf", MountPath: "/conf"})
	s.app(app)
	mode := int32(0o600)
	s.pod.Spec.Volumes = append(s.pod.Spec.Volumes,
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "secretish"}, DefaultMode: &mode}}})
	uid, fsGroup := int64(1000), int64(2000)
	s.pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, FSGroup: &fsGroup}
	r := podrun(t, s.dir, []any{cm, s.pod}, "--quiet")
	for _, w := range []string{"Wrote 2000", "Read opened"} {
		if len(r.ev.all("app", w)) != 1 {
			t.Errorf("no %q:\n%s\n%s", w, r.ev, r.stderr)
		}
	}
}
