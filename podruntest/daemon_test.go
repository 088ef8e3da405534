package podruntest_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
	"github.com/podrun/podrun/internal/testutil"
	"github.com/podrun/podrun/podruntest"
)

// The same pod and Job as the in-process tests, on a podrun daemon of the
// test's own (directories, socket, bridge, subnet, cgroup root).
func TestDaemonBackend(t *testing.T) {
	testutil.RequiresRoot(t)
	t.Parallel()
	sock := startDaemon(t)
	e := podruntest.Daemon(sock)

	s := e.Start(t, proxyPod+"---\n"+job)
	p := s.Pod("web")
	p.Wait(podruntest.Ready(), 30*time.Second)
	resp, err := http.Get("http://" + p.Addr(9090) + "/")
	if err != nil {
		t.Fatalf("GET through the proxy: %v\n%s", err, p.Describe())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := strings.TrimSpace(string(body)); got != "hello from the app" {
		t.Errorf("body = %q", got)
	}
	p.Wait(podruntest.LogLine("proxy", "^proxied$"), 10*time.Second)
	if r := p.Exec("app", "sh", "-c", "echo out; echo err >&2; exit 4"); r.ExitCode != 4 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("exec = %+v", r)
	}
	if ns := p.Object().Namespace; ns != s.Namespace {
		t.Errorf("namespace %q, want %q", ns, s.Namespace)
	}

	j := s.Job("work").Wait(60 * time.Second)
	if j.Status.Succeeded != 2 {
		t.Errorf("succeeded = %d", j.Status.Succeeded)
	}
	for _, jp := range s.Job("work").Pods() {
		if logs := jp.Logs("main"); !strings.HasSuffix(logs, "done\n") {
			t.Errorf("%s: log %q", jp.Name(), logs)
		}
	}
}

// startDaemon builds podrun, loads the busybox test image into its store
// and runs `podrun daemon` until the test's end; it returns the socket.
func startDaemon(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin", "podrun")
	suffix := fmt.Sprint(rand.IntN(10000))
	runRoot := "/run/podruntest-d" + suffix
	node := []string{
		"--root", filepath.Join(tmp, "root"), "--run-root", runRoot, "--log-dir", filepath.Join(tmp, "logs"),
		"--bridge", "podruntd" + suffix, "--subnet", "10.254.32.0/24", "--cgroup-root", "podruntestd" + suffix,
	}
	t.Cleanup(func() { os.RemoveAll(runRoot) })
	archive := filepath.Join(tmp, "busybox.tar")
	for _, s := range [][]string{
		{"go", "build", "-tags", "seccomp", "-o", bin, "../cmd/podrun"},
		{"go", "run", "../hack/testimage", "-o", archive, "-t", podruntest.BusyboxImage},
		{bin, "image", "load", "-i", archive, "--root", filepath.Join(tmp, "root")},
	} {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	sock := filepath.Join(tmp, "podrun.sock")
	var out strings.Builder
	cmd := exec.Command(bin, append([]string{"daemon", "--socket", sock}, node...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// The shims of the deleted pods end on their own; the daemon
		// reaps them. Stopped before, it would leave them to init.
		for deadline := time.Now().Add(30 * time.Second); hasChildren(cmd.Process.Pid) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if t.Failed() {
			t.Logf("daemon output:\n%s", out.String())
		}
	})
	c := client.New(sock)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var list corev1.PodList
		if c.List(context.Background(), api.Pods, "", client.Selector{}, &list) == nil {
			return sock
		}
		select {
		case <-done:
			t.Fatalf("the daemon exited:\n%s", out.String())
		case <-time.After(20 * time.Millisecond): // until the socket answers
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon does not answer:\n%s", out.String())
		}
	}
}

// hasChildren reports whether the process has child processes.
func hasChildren(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		if b, _ := os.ReadFile(f); len(strings.TrimSpace(string(b))) > 0 {
			return true
		}
	}
	return false
}
