package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func execProbe(cmd string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", cmd}}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   5, // not the subject: a loaded machine must not time probes out
		SuccessThreshold: 1,
	}
}

func TestStartupProbeDelaysNextContainer(t *testing.T) {
	// The sidecar creates /tmp/started 5 s after it starts; its startup
	// probe passes only then, and only then may the app start.
	side := container("sidecar", `trap 'log Exiting; exit 0' TERM; log Starting; sleep 5; touch /tmp/started; log Ready; while true; do sleep 1 & wait; done`)
	side.StartupProbe = execProbe("test -f /tmp/started", 1, 30)
	s := newScenario(t, "startup-probe", corev1.RestartPolicyNever).
		sidecar(side).
		app(container("app", runExit("0", 0)))
	r := s.run()
	start, app := r.ev.first(t, "sidecar", "Starting"), r.ev.first(t, "app", "Starting")
	ready := r.ev.first(t, "sidecar", "Ready")
	if app < ready {
		t.Errorf("the app started at %.2f, before the sidecar's startup probe could pass (%.2f)", app, ready)
	}
	if d := app - start; d < 5 || d > 7.5 {
		t.Errorf("the app started %.2f s after the sidecar, want 5 to 6 s (probe period 1 s)", d)
	}
	if p := r.pod(t); p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s", p.Status.Phase)
	}
}

func TestFailingStartupProbeBlocksInit(t *testing.T) {
	side := container("sidecar", serve)
	side.StartupProbe = execProbe("exit 1", 1, 2)
	s := newScenario(t, "startup-fails", corev1.RestartPolicyAlways).
		sidecar(side).
		app(container("app", serve))
	bg := s.start()
	// Killed after 2 failures and restarted; the second time after a back-off.
	bg.waitEventN("sidecar", "Starting", 2)
	bg.waitStderr("Startup probe failed")
	r := bg.interrupt()
	p := r.pod(t)
	if p.Status.Phase != corev1.PodFailed { // deleted while Pending: TerminatePod
		t.Errorf("phase %s, want Failed", p.Status.Phase)
	}
	if len(r.ev.all("app", "Starting")) != 0 {
		t.Error("the app started")
	}
	if st := status(p, "sidecar"); st.RestartCount < 1 {
		t.Errorf("sidecar restartCount %d, want ≥ 1", st.RestartCount)
	}
}

func TestLivenessFailureRestartsAfterPreStop(t *testing.T) {
	// The probe fails once /tmp/sick exists; the app makes it after 1 s.
	app := container("app", `trap 'log Exiting; exit 0' TERM; log Starting
[ -f /log/once ] || { touch /log/once; (sleep 1; touch /tmp/sick) & }
while true; do sleep 1 & wait; done`)
	app.LivenessProbe = execProbe("test ! -f /tmp/sick", 1, 2)
	app.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"sh", "-c", prelude + "log PreStop"}}}}
	s := newScenario(t, "liveness", corev1.RestartPolicyAlways).app(app)
	bg := s.start()
	bg.waitEventN("app", "Starting", 2)
	r := bg.interrupt()
	r.ev.order(t, "app Starting", "app PreStop", "app Exiting")
	starts := r.ev.all("app", "Starting")
	if starts[1] < r.ev.first(t, "app", "Exiting") {
		t.Error("restarted before the old instance exited")
	}
	if !strings.Contains(r.stderr, "Liveness probe failed") {
		t.Errorf("no Unhealthy event:\n%s", r.stderr)
	}
	if st := status(r.pod(t), "app"); st.RestartCount < 1 {
		t.Errorf("restartCount %d", st.RestartCount)
	}
}

func TestHTTPReadinessOnPodLoopback(t *testing.T) {
	// httpd listens only on the pod's 127.0.0.1; /ready appears after 2 s.
	app := container("web", `trap 'log Exiting; exit 0' TERM; mkdir -p /www; log Starting
httpd -f -p 127.0.0.1:8080 -h /www & (sleep 2; echo ok > /www/ready; log Ready) &
while true; do sleep 1 & wait; done`)
	app.ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080), Host: "127.0.0.1"}},
		PeriodSeconds: 1, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 1,
	}
	s := newScenario(t, "http-readiness", corev1.RestartPolicyAlways).app(app)
	bg := s.start()
	bg.waitStderr("0/1     Running")
	bg.waitStderr("1/1     Running")
	r := bg.interrupt()
	if !strings.Contains(r.stderr, "Readiness probe failed") {
		t.Errorf("no failed readiness before the file appeared:\n%s", r.stderr)
	}
}

func TestExecProbeTimeoutLeavesNothing(t *testing.T) {
	// A readiness probe that sleeps past its 1 s timeout fails, and its
	// processes are killed: no "sleep 3031" may survive in the container
	// (a duration no other process on the machine sleeps).
	app := container("app", `trap 'log Exiting; exit 0' TERM; log Starting; while true; do sleep 1 & wait; done`)
	app.ReadinessProbe = execProbe("sleep 3031 & sleep 3031", 2, 1)
	app.ReadinessProbe.TimeoutSeconds = 1
	s := newScenario(t, "probe-timeout", corev1.RestartPolicyAlways).app(app)
	bg := s.start()
	bg.waitStderr("Readiness probe failed")
	// The probe processes would show in the pod's cgroup: check with ps.
	r := bg.interrupt()
	if !strings.Contains(r.stderr, "timed out") && !strings.Contains(r.stderr, "timeout") {
		t.Errorf("the failure does not say it timed out:\n%s", r.stderr)
	}
	if n := countProcs("sleep 3031"); n != 0 {
		t.Errorf("%d probe processes survived", n)
	}
}

func TestPostStartBeforeNextContainer(t *testing.T) {
	side := container("sidecar", serve)
	side.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
		Command: []string{"sh", "-c", prelude + "log PostStartBegin; sleep 2; log PostStartEnd"}}}}
	s := newScenario(t, "poststart", corev1.RestartPolicyNever).
		sidecar(side).
		app(container("app", runExit("0", 0)))
	r := s.run()
	r.ev.order(t, "sidecar PostStartBegin", "sidecar PostStartEnd", "app Starting")
	if p := r.pod(t); p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s", p.Status.Phase)
	}
}

func TestPreStopsTogetherSignalsInOrder(t *testing.T) {
	preStop := func(name string) *corev1.Lifecycle {
		return &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{"sh", "-c", prelude + "NAME=" + name + "; log PreStop; sleep 2"}}}}
	}
	s1, s2, app := container("sidecar-1", serve), container("sidecar-2", serve), container("app", serve)
	s1.Lifecycle, s2.Lifecycle, app.Lifecycle = preStop("sidecar-1"), preStop("sidecar-2"), preStop("app")
	// readiness keeps being probed during termination, liveness does not
	app.ReadinessProbe = execProbe(prelude+"log Readiness", 1, 1)
	app.LivenessProbe = execProbe(prelude+"log Liveness", 1, 1)
	s := newScenario(t, "prestop", corev1.RestartPolicyAlways).sidecar(s1).sidecar(s2).app(app)
	bg := s.start()
	bg.waitEvent("app", "Liveness")
	r := bg.interrupt()
	first := map[string]float64{}
	for _, n := range []string{"app", "sidecar-1", "sidecar-2"} {
		first[n] = r.ev.first(t, n, "PreStop")
	}
	for n, at := range first {
		if d := at - first["app"]; d < -0.5 || d > 0.5 {
			t.Errorf("%s's preStop started %.2f s after the app's, want together", n, d)
		}
	}
	r.ev.order(t, "app Exiting", "sidecar-2 Exiting", "sidecar-1 Exiting")
	// The preStops take 2 s: during them readiness ran, liveness did not.
	var readinessDuring, livenessDuring int
	for _, at := range r.ev.all("app", "Readiness") {
		if at > first["app"] {
			readinessDuring++
		}
	}
	for _, at := range r.ev.all("app", "Liveness") {
		if at > first["app"]+0.1 {
			livenessDuring++
		}
	}
	if livenessDuring != 0 {
		t.Errorf("liveness probed %d times during termination", livenessDuring)
	}
	if readinessDuring == 0 {
		t.Errorf("readiness never probed during the preStop")
	}
}

// countProcs counts the host's processes whose command line contains s.
func countProcs(s string) int {
	n := 0
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			n++
		}
	}
	return n
}
