package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKubectl drives the real kubectl against a daemon's Kubernetes API:
// the kubeconfig `podrun kubeconfig` writes, then apply, wait, get, logs
// and delete of examples/pod-sidecars.yaml.
func TestKubectl(t *testing.T) {
	startDaemonWith(t, "--kube-listen", "127.0.0.1:0")
	k := newKubectl(t, "1.32")
	if fi, err := os.Stat(k.kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the kubeconfig: %v %v", fi.Mode(), err)
	}
	for _, f := range []string{"ca.key", "server.key", "client.key", "token"} {
		if fi, err := os.Stat(filepath.Join(nodeFlag("root"), "kubeapi", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	run := k.run
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
