package podruntest_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/podrun/podrun/podruntest"
)

// A test of a web server behind its sidecar, as Kubernetes would start it.
// (TestMain must call podruntest.Main: see podruntest_test.go.)
func Example() {
	_ = func(t *testing.T) {
		t.Parallel()
		env := podruntest.New(t)
		env.Busybox(t)
		web := env.Start(t, proxyPod).Pod("web")
		web.Wait(podruntest.Ready(), 30*time.Second)

		resp, err := http.Get("http://" + web.Addr(9090) + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		t.Logf("%s", body)
	}
}

// A Job that must complete.
func ExampleJob_Wait() {
	_ = func(t *testing.T) {
		env := podruntest.New(t)
		env.Busybox(t)
		j := env.Start(t, job).Job("work")
		final := j.Wait(time.Minute)
		t.Logf("succeeded: %d", final.Status.Succeeded)
		for _, p := range j.Pods() {
			t.Logf("%s: %s", p.Name(), p.Logs("main"))
		}
	}
}

// Waiting for a line of output, then running a command in the container.
func ExamplePod_Exec() {
	_ = func(t *testing.T) {
		env := podruntest.New(t)
		env.Busybox(t)
		p := env.Start(t, `
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: busybox:podruntest
    command: [sh, -c, "echo up; exec sleep 3600"]
`).Pod("shell")
		p.Wait(podruntest.LogLine("sh", "^up$"), 30*time.Second)
		r := p.Exec("sh", "cat", "/etc/hostname")
		t.Logf("exit %d: %s", r.ExitCode, r.Stdout)
	}
}
