package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
	"github.com/podrun/podrun/internal/testutil"
)

// systemctl runs systemctl and fails the test when it fails.
func systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("systemctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// podrunUnits lists the loaded podrun units systemd shows (active, failed
// or with a job), as `systemctl list-units 'podrun*'` does.
func podrunUnits(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(systemctl(t, "list-units", "--plain", "--no-legend", "podrun*"))
}

// The daemon as contrib/systemd/podrun.service runs it, with the systemd
// cgroup driver: a sidecar and an app with limits run; `systemctl
// daemon-reload` changes none of their cgroup values; `systemctl restart
// podrun` restarts no container (same IDs, no restart counted, same
// shims); after the delete no podrun unit and no cgroup is left.
func TestSystemdService(t *testing.T) {
	testutil.RequiresRoot(t)
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		t.Skip("systemd is not PID 1 on this machine")
	}
	if err := exec.Command("systemctl", "cat", "podrun.service").Run(); err == nil {
		t.Skip("a podrun.service is installed on this machine: this test would replace it")
	}
	if left := podrunUnits(t); left != "" {
		t.Fatalf("podrun units before the test: %s", left)
	}
	unit, err := os.ReadFile("../contrib/systemd/podrun.service")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "podrun.sock")
	exe := "ExecStart=" + bin + " --log-level debug daemon --socket " + sock + ` --kube-listen ""  ` + strings.Join(nodeArg, " ")
	text := strings.Replace(string(unit), "ExecStart=/usr/local/bin/podrun daemon", exe, 1)
	if text == string(unit) {
		t.Fatal("contrib/systemd/podrun.service has no ExecStart=/usr/local/bin/podrun daemon line")
	}
	const unitFile = "/run/systemd/system/podrun.service"
	if err := os.WriteFile(unitFile, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &daemonProc{t: t, sock: sock, cl: client.New(sock), out: &syncBuffer{}}
	t.Cleanup(func() {
		d.deleteAll()
		_ = exec.Command("systemctl", "stop", "podrun.service").Run()
		if t.Failed() {
			out, _ := exec.Command("journalctl", "-u", "podrun.service", "--no-pager", "-n", "200").CombinedOutput()
			t.Logf("journal of podrun.service:\n%s", out)
		}
		os.Remove(unitFile)
		systemctl(t, "daemon-reload")
		_ = exec.Command("systemctl", "reset-failed", "podrun.service").Run()
		if left := podrunUnits(t); left != "" {
			t.Errorf("podrun units left: %s", left)
		}
		os.RemoveAll(filepath.Join(nodeFlag("root"), "api"))
	})
	systemctl(t, "daemon-reload")
	systemctl(t, "start", "podrun.service")
	d.waitServing()

	app := container("app", serve)
	app.Resources = limits("500m", "64Mi")
	side := container("sidecar", serve)
	side.Resources = limits("250m", "32Mi")
	s := newScenario(t, "limits", corev1.RestartPolicyAlways).sidecar(side).app(app)
	d.apply(s.pod)
	before := d.waitPod("limits", "Running", running)
	uid := string(before.UID)
	cpuPod, memPod := podCgroup(t, "cpu"), podCgroup(t, "memory")
	if !strings.HasSuffix(cpuPod, ".slice") {
		t.Fatalf("pod cgroup %s: not a systemd slice", cpuPod)
	}
	checks := cgroupLimitChecks(cpuPod, memPod)
	checkFiles(t, checks)
	shims := shimPIDs(uid)
	if len(shims) != 1 {
		t.Fatalf("shims of the pod: %v", shims)
	}

	systemctl(t, "daemon-reload")
	t.Log("after systemctl daemon-reload:")
	waitOOMGroups(t, checks)
	checkFiles(t, checks)

	systemctl(t, "restart", "podrun.service")
	d.waitServing()
	after := d.waitPod("limits", "Running", running)
	for _, name := range []string{"sidecar", "app"} {
		b, a := status(before, name), status(after, name)
		if a.ContainerID != b.ContainerID || a.RestartCount != 0 {
			t.Errorf("%s after the restart: container %s, restartCount %d; before: %s", name, a.ContainerID, a.RestartCount, b.ContainerID)
		}
	}
	if got := shimPIDs(uid); len(got) != 1 || got[0] != shims[0] {
		t.Errorf("the pod's shim after the restart: %v, was %v", got, shims)
	}
	t.Log("after systemctl restart podrun:")
	checkFiles(t, checks)

	d.must("delete", "pod", "limits")
	d.waitGone("limits")
	if m := podCgroupsLeft(uid); len(m) != 0 {
		t.Errorf("cgroups left: %v", m)
	}
	if left := podrunUnits(t); left != "podrun.service loaded active running "+serviceDescription(string(unit)) {
		t.Errorf("podrun units with the daemon running and no pod: %q", left)
	}
}

// serviceDescription is the unit file's Description=.
func serviceDescription(unit string) string {
	for _, l := range strings.Split(unit, "\n") {
		if d, ok := strings.CutPrefix(l, "Description="); ok {
			return d
		}
	}
	return ""
}

// waitServing waits until the daemon answers on its socket.
func (d *daemonProc) waitServing() {
	d.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var list corev1.PodList
		err := d.cl.List(context.Background(), api.Pods, "", client.Selector{}, &list)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the daemon does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
