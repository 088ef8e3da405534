package podruntest_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/internal/testutil"
	"github.com/podrun/podrun/podruntest"
)

func TestMain(m *testing.M) { podruntest.Main(m) }

// env is the in-process environment with the busybox test image.
func env(t *testing.T) *podruntest.Env {
	t.Helper()
	testutil.RequiresRoot(t)
	t.Parallel()
	e := podruntest.New(t)
	e.Busybox(t)
	return e
}

// An app reached from the test only through its sidecar proxy: the app's
// httpd listens on the pod's loopback, the sidecar (a restartable init
// container, started before the app) forwards :9090 to it and logs each
// connection.
const proxyPod = `
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: proxy
    image: busybox:podruntest
    restartPolicy: Always
    command: [nc, -ll, -p, "9090", -e, sh, -c, "echo proxied >&2; exec nc 127.0.0.1 8080"]
  containers:
  - name: app
    image: busybox:podruntest
    command: [sh, -c, "mkdir -p /www && echo hello from the app > /www/index.html && exec httpd -f -v -p 127.0.0.1:8080 -h /www"]
    readinessProbe:
      exec: {command: [sh, -c, "printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 | grep -q 200"]}
      periodSeconds: 1
`

func TestSidecarProxy(t *testing.T) {
	e := env(t)
	p := e.Start(t, proxyPod).Pod("web")
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
	p.Wait(podruntest.LogLine("proxy", "^proxied$"), 5*time.Second)
	if ip := p.IP(); ip == "" {
		t.Error("no pod IP")
	}
}

const job = `
apiVersion: batch/v1
kind: Job
metadata:
  name: work
spec:
  completions: 2
  parallelism: 2
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:podruntest
        command: [sh, -c, "echo working on $(hostname); echo done"]
`

func TestJobSucceeds(t *testing.T) {
	e := env(t)
	j := e.Start(t, job).Job("work")
	got := j.Wait(60 * time.Second)
	if got.Status.Succeeded != 2 {
		t.Errorf("succeeded = %d, want 2", got.Status.Succeeded)
	}
	pods := j.Pods()
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}
	for _, p := range pods {
		if code := p.ExitCode("main"); code != 0 {
			t.Errorf("%s: exit code %d", p.Name(), code)
		}
		if logs := p.Logs("main"); !strings.HasSuffix(logs, "done\n") {
			t.Errorf("%s: log %q", p.Name(), logs)
		}
	}
}

// The app becomes ready only once it has created /tmp/ready: the test goes
// on only when the readiness probe says so.
func TestReadinessGates(t *testing.T) {
	e := env(t)
	p := e.StartPods(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "slow"},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr(int64(1)), Containers: []corev1.Container{{
			Name: "app", Image: podruntest.BusyboxImage,
			Command: []string{"sh", "-c", "echo warming up; sleep 1; touch /tmp/ready; echo ready; exec sleep 3600"},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/ready"}}},
				PeriodSeconds: 1,
			},
		}}},
	}).Pod("slow")
	p.Wait(podruntest.Started("app"), 30*time.Second)
	if r := p.Exec("app", "cat", "/tmp/ready"); r.ExitCode == 0 {
		t.Fatal("the app was ready at once: the test proves nothing")
	}
	p.Wait(podruntest.Ready(), 30*time.Second)
	r := p.Exec("app", "sh", "-c", "ls /tmp/ready; echo oops >&2; exit 3")
	if r.ExitCode != 3 || r.Stdout != "/tmp/ready\n" || r.Stderr != "oops\n" {
		t.Errorf("exec = %+v", r)
	}
	if logs := p.Logs("app"); logs != "warming up\nready\n" {
		t.Errorf("logs = %q", logs)
	}
}

// A wait that fails reports the pod's status line, its events and the tail
// of each container's log.
func TestFailedWaitReports(t *testing.T) {
	e := env(t)
	fake := &fakeTB{TB: t}
	s := e.Start(fake, `
apiVersion: v1
kind: Pod
metadata:
  name: never-ready
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:podruntest
    command: [sh, -c, "echo line one; echo line two; exec sleep 3600"]
    readinessProbe:
      exec: {command: ["false"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: fails
spec:
  restartPolicy: Never
  containers:
  - name: app
    image: busybox:podruntest
    command: [sh, -c, "echo bye; exit 7"]
`)
	p := s.Pod("never-ready")
	p.Wait(podruntest.LogLine("app", "two"), 30*time.Second)
	p.Wait(podruntest.Ready(), 2500*time.Millisecond)
	msg := fake.fatal
	if msg == "" {
		t.Fatal("a pod that is never ready was Ready")
	}
	for _, want := range []string{
		"pod " + s.Namespace + "/never-ready: waiting for Ready: timed out after 2.5s",
		"NAME", "READY", "STATUS", "RESTARTS",
		"never-ready", "0/1", "Running",
		"container app: running, ready=false, restarts=0",
		"events:", "Normal Started spec.containers{app}", "Warning Unhealthy spec.containers{app}", "Readiness probe failed",
		"log of app (last 20 lines):", "  | line one\n  | line two\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the report lacks %q:\n%s", want, msg)
		}
	}

	// A pod that failed will never succeed: the wait says so at once.
	f := s.Pod("fails")
	start := time.Now()
	err := f.WaitErr(podruntest.Succeeded(), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "the pod is Failed") || time.Since(start) > 30*time.Second {
		t.Fatalf("waiting for a failing pod to succeed: %v", err)
	}
	if !strings.Contains(err.Error(), "terminated (Error, exit code 7)") || !strings.Contains(err.Error(), "  | bye\n") {
		t.Errorf("the report lacks the exit or the log:\n%v", err)
	}
	if code := f.ExitCode("app"); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
}

// fakeTB records a Fatal instead of ending the test; the rest is t's.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Fatal(args ...any) { f.fatal = fmt.Sprint(args...) }

func ptr[T any](v T) *T { return &v }
