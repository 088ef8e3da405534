package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/image/imagetest"
	"github.com/podrun/podrun/internal/testutil"
)

// suiteArchive is the busybox archive the suite loaded (harness_test.go).
func suiteArchive() string {
	if a := os.Getenv("PODRUN_TEST_IMAGE"); a != "" {
		return a
	}
	return filepath.Join(tmp, "busybox.tar")
}

// TestImageLoadStdin: `docker save x | podrun image load` reads the archive
// from a pipe, with no -i and with -i -.
func TestImageLoadStdin(t *testing.T) {
	testutil.RequiresRoot(t)
	archive, err := os.ReadFile(suiteArchive())
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"image", "load"}, {"image", "load", "-i", "-"}} {
		root := t.TempDir()
		cmd := exec.Command(bin, append(args, "--root", root)...)
		cmd.Stdin = bytes.NewReader(archive) // a pipe, as from docker save
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "Loaded image: docker.io/library/busybox:latest") {
			t.Errorf("%v: %q", args, out)
		}
		ls, err := exec.Command(bin, "image", "ls", "--root", root).CombinedOutput()
		if err != nil || !strings.Contains(string(ls), "docker.io/library/busybox") {
			t.Errorf("image ls after %v: %v\n%s", args, err, ls)
		}
	}
}

// podmanService is `podman system service` on a socket of the test, with
// its storage (vfs: no mounts) under a temporary directory, in a mount
// namespace of its own whose /run and /var/lib are empty tmpfs: podman
// writes /run/containers and /var/lib/containers/cache whatever --root
// says, and the test leaves nothing behind.
type podmanService struct {
	sock string
	http *http.Client
}

func startPodman(t *testing.T) *podmanService {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		if os.Getenv("PODRUN_TEST_BIN") != "" {
			// The VM guests (hack/vmtest) run a prebuilt suite and have no podman.
			t.Skip("no podman in this guest: the image load --from-daemon tests run on the build machine")
		}
		t.Fatal("the image load --from-daemon tests need podman (apt-get install podman; make test installs it)")
	}
	// podman refuses a runroot path of more than 50 characters, which a
	// t.TempDir() of a long test name passes.
	dir, err := os.MkdirTemp("", "pm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	podman := fmt.Sprintf("podman --root %[1]s/root --runroot %[1]s/runroot --tmpdir %[1]s/tmp --storage-driver vfs"+
		" --cgroup-manager cgroupfs --events-backend file system service --time=0 unix://%[2]s", dir, sock)
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib && exec "+podman)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	s := &podmanService{sock: sock, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}}
	for {
		if resp, err := s.http.Get("http://podman/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("podman system service exited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// do calls the Docker Engine API podman serves and fails the test unless
// it answers 2xx.
func (s *podmanService) do(t *testing.T, method, path string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://podman"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := s.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s: %s", method, path, resp.Status, b.String())
	}
}

// TestImageLoadFromPodman: an image built into podman (here: loaded, then
// tagged, as a build would leave it) is loaded into podrun by name through
// podman's Docker-compatible socket, DOCKER_HOST pointing at it, and a pod
// runs on it.
func TestImageLoadFromPodman(t *testing.T) {
	testutil.RequiresRoot(t)
	pm := startPodman(t)
	archive, err := os.ReadFile(suiteArchive())
	if err != nil {
		t.Fatal(err)
	}
	pm.do(t, http.MethodPost, "/images/load", archive)
	pm.do(t, http.MethodPost, "/images/busybox:latest/tag?repo=podrun-it/fromdaemon&tag=1", nil)

	root := nodeFlag("root")
	load := exec.Command(bin, "image", "load", "--root", root, "--from-daemon", "podrun-it/fromdaemon:1")
	load.Env = append(os.Environ(), "DOCKER_HOST=unix://"+pm.sock)
	out, err := load.Output()
	if err != nil {
		t.Fatalf("image load --from-daemon: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(bin, "image", "rm", "--root", root, "podrun-it/fromdaemon:1").Run() })
	if want := "Loaded image: docker.io/podrun-it/fromdaemon:1 (from unix://" + pm.sock + ")\n"; string(out) != want {
		t.Errorf("image load --from-daemon printed %q, want %q", out, want)
	}

	// A name the daemon does not have is an error naming it.
	bad := exec.Command(bin, "image", "load", "--root", root, "--from-daemon", "podrun-it/nosuch:1")
	bad.Env = load.Env
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "podrun-it/nosuch:1") {
		t.Errorf("loading a missing image: %v\n%s", err, out)
	}

	p := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{Name: "fromdaemon"},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{
			Name: "app", Image: "podrun-it/fromdaemon:1", ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", "echo from-podman"},
		}}},
	}
	r := podrun(t, t.TempDir(), []any{p})
	got := r.pod(t)
	if got.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod on the loaded image: %s\n%s", got.Status.Phase, r.stderr)
	}
	if cs := status(got, "app"); cs == nil || cs.Image != "docker.io/podrun-it/fromdaemon:1" {
		t.Errorf("container status image: %+v", cs)
	}
}

// markedArchive is the test busybox with MARK=<mark> in its config (a new
// image ID, the same layer), saved as ref.
func markedArchive(t *testing.T, ref, mark string) []byte {
	t.Helper()
	img, err := imagetest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Env = append(cfg.Config.Env, "MARK="+mark)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := tarball.Write(tag, img, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestRunWatchImageMoved: under podrun run --watch, an image loaded from
// podman whose tag podman then gives to a new build is loaded again and
// the pod using it replaced, its container now on the new image.
func TestRunWatchImageMoved(t *testing.T) {
	testutil.RequiresRoot(t)
	pm := startPodman(t)
	const ref = "podrun-it/moving:1"
	pm.do(t, http.MethodPost, "/images/load", markedArchive(t, ref, "1"))
	t.Setenv("DOCKER_HOST", "unix://"+pm.sock)
	t.Cleanup(func() { _ = exec.Command(bin, "image", "rm", "--root", nodeFlag("root"), ref).Run() })

	s := newScenario(t, "moving", corev1.RestartPolicyAlways)
	app := container("app", `trap 'exit 0' TERM; log "start $MARK"; while true; do sleep 1 & wait; done`)
	app.Image, app.ImagePullPolicy = ref, corev1.PullNever
	s.app(app)
	bg := s.start("--watch")
	bg.waitEvent("app", "start 1") // podrun lacked the image: loaded from podman first
	bg.waitStderr("run --watch: following")

	pm.do(t, http.MethodPost, "/images/load", markedArchive(t, ref, "2"))
	bg.waitEvent("app", "start 2")
	r := bg.interrupt()
	r.ev.order(t, "app start 1", "app start 2")
	if !strings.Contains(r.stderr, "Pod/default/moving uses ["+ref+"], which moved") {
		t.Errorf("no note of the moved image:\n%s", r.stderr)
	}
}

// TestDaemonApplyWatchImageMoved: under podrun apply --watch, a bare pod
// on an image loaded from podman is replaced once the tag moves there.
func TestDaemonApplyWatchImageMoved(t *testing.T) {
	d := startDaemon(t)
	pm := startPodman(t)
	const ref = "podrun-it/applymoving:1"
	pm.do(t, http.MethodPost, "/images/load", markedArchive(t, ref, "1"))
	t.Setenv("DOCKER_HOST", "unix://"+pm.sock)
	root := nodeFlag("root")
	t.Cleanup(func() { _ = exec.Command(bin, "image", "rm", "--root", root, ref).Run() })
	if out, err := exec.Command(bin, "image", "load", "--root", root, "--from-daemon", ref).CombinedOutput(); err != nil {
		t.Fatalf("image load --from-daemon: %v\n%s", err, out)
	}

	s := newScenario(t, "applymoving", corev1.RestartPolicyAlways)
	app := container("app", `trap 'exit 0' TERM; log "start $MARK"; while true; do sleep 1 & wait; done`)
	app.Image, app.ImagePullPolicy = ref, corev1.PullNever
	s.app(app)
	file := filepath.Join(s.dir, "manifest.yaml")
	save(t, file, s.pod)
	cmd := exec.Command(bin, "apply", "--socket", d.sock, "--root", root, "--watch", "-f", file)
	out, done := startWatch(t, cmd)
	first := d.waitPod("applymoving", "Running", running)
	s.waitLog("app", "start 1")

	pm.do(t, http.MethodPost, "/images/load", markedArchive(t, ref, "2"))
	s.waitLog("app", "start 2")
	second := d.waitPod("applymoving", "replaced", func(p *corev1.Pod) bool { return p.UID != first.UID && running(p) })
	if id := status(second, "app").ImageID; id == status(first, "app").ImageID {
		t.Errorf("the new pod runs the old image %s", id)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-done
	if !strings.Contains(out.String(), "moved to") || !strings.Contains(out.String(), "pod/applymoving replaced") {
		t.Errorf("apply --watch printed:\n%s", out.String())
	}
	d.must("delete", "pod", "applymoving", "--now")
}
