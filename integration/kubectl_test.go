package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKubectl drives the real kubectl against a daemon's Kubernetes API:
// the kubeconfig `podrun kubeconfig` writes, then apply, wait, get, logs
// and delete of examples/pod-sidecars.yaml.
func TestKubectl(t *testing.T) {
	kubectl := "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("no kubectl 1.32: %v", err)
	}
	startDaemonWith(t, "--kube-listen", "127.0.0.1:0")
	root := nodeFlag("root")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(root, "kubeapi", "server")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not serve the Kubernetes API")
		}
		time.Sleep(20 * time.Millisecond)
	}
	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	if out, err := exec.Command(bin, "kubeconfig", "--root", root, "--path", kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("podrun kubeconfig: %v\n%s", err, out)
	}
	if fi, err := os.Stat(kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the kubeconfig: %v %v", fi.Mode(), err)
	}
	for _, f := range []string{"ca.key", "server.key", "client.key", "token"} {
		if fi, err := os.Stat(filepath.Join(root, "kubeapi", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("apply", "-f", "../examples/pod-sidecars.yaml"); strings.TrimSpace(out) != "pod/sidecars created" {
		t.Fatalf("apply: %s", out)
	}
	if out := run("apply", "-f", "../examples/pod-sidecars.yaml"); strings.TrimSpace(out) != "pod/sidecars unchanged" {
		t.Errorf("apply again: %s", out)
	}
	run("wait", "--for=condition=Ready", "pod/sidecars", "--timeout=60s")
	out := run("get", "pods")
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); len(f) < 3 || f[0] != "sidecars" || f[1] != "3/3" || f[2] != "Running" {
		t.Errorf("get pods:\n%s", out)
	}
	if out := run("logs", "sidecars", "-c", "app"); !strings.Contains(out, "app Started") {
		t.Errorf("logs: %q", out)
	}
	if out := run("get", "nodes"); !strings.Contains(out, "Ready") {
		t.Errorf("get nodes: %s", out)
	}
	if out := run("delete", "pod", "sidecars"); strings.TrimSpace(out) != `pod "sidecars" deleted` {
		t.Errorf("delete: %s", out)
	}
	if out := run("get", "pods", "-o", "name"); strings.Contains(out, "sidecars") {
		t.Errorf("after delete: %s", out)
	}
}
