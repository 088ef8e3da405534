package integration

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/internal/testutil"
)

func TestSerialInitContainers(t *testing.T) {
	s := newScenario(t, "serial-init", corev1.RestartPolicyNever).
		init(container("init-1", runExit("0.3", 0))).
		init(container("init-2", runExit("0.3", 0))).
		init(container("init-3", runExit("0.3", 0))).
		app(container("app", runExit("0", 0)))
	r := s.run()
	r.ev.order(t, "init-1 Starting", "init-1 Exiting", "init-2 Starting", "init-2 Exiting",
		"init-3 Starting", "init-3 Exiting", "app Starting")
	if p := r.pod(t); p.Status.Phase != corev1.PodSucceeded || r.code != 0 {
		t.Errorf("phase %s, exit %d; want Succeeded, 0", p.Status.Phase, r.code)
	}
}

func TestInterleavedInitAndSidecars(t *testing.T) {
	s := newScenario(t, "interleaved", corev1.RestartPolicyNever).
		init(container("init-1", runExit("0.2", 0))).
		sidecar(container("sidecar-1", serve)).
		init(container("init-2", runExit("0.2", 0))).
		sidecar(container("sidecar-2", serve)).
		app(container("app", runExit("0.5", 0)))
	r := s.run()
	r.ev.order(t, "init-1 Exiting", "sidecar-1 Started", "init-2 Starting", "init-2 Exiting",
		"sidecar-2 Started", "app Starting", "app Exiting", "sidecar-2 Exiting", "sidecar-1 Exiting")
	// The sidecars ran alongside the later init and the app.
	if r.ev.first(t, "sidecar-1", "Exiting") < r.ev.first(t, "app", "Exiting") {
		t.Error("sidecar-1 stopped before the app finished")
	}
	p := r.pod(t)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", p.Status.Phase)
	}
	for _, n := range []string{"sidecar-1", "sidecar-2"} {
		if st := status(p, n); st.RestartCount != 0 {
			t.Errorf("%s restarted %d times", n, st.RestartCount)
		}
	}
}

func TestSidecarRestartsBeforeAndAfterApps(t *testing.T) {
	// Run 1 exits 0 while a later init container still runs, run 2 exits 1
	// once the app has started, run 3 stays: the sidecar is restarted in
	// both phases (the second time after a 10 s back-off), the app never.
	flaky := `n=$(cat /log/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /log/n
trap 'log Exiting; exit 0' TERM; log Starting
case $n in
1) sleep 0.2; exit 0 ;;
2) until grep -q "app Starting" /log/events; do sleep 0.1; done; sleep 0.5; exit 1 ;;
esac
log Started; while true; do sleep 1 & wait; done`
	s := newScenario(t, "sidecar-restarts", corev1.RestartPolicyNever).
		sidecar(container("sidecar", flaky)).
		init(container("init", runExit("1", 0))).
		app(container("app", `log Starting; sleep 14; log Exiting`))
	r := s.run()
	starts := r.ev.all("sidecar", "Starting")
	if len(starts) < 3 {
		t.Fatalf("sidecar started %d times, want 3", len(starts))
	}
	app := r.ev.first(t, "app", "Starting")
	if starts[1] > app {
		t.Errorf("the first restart (%.2f) came after the app started (%.2f)", starts[1], app)
	}
	if starts[2] < app {
		t.Errorf("the second restart (%.2f) came before the app started (%.2f)", starts[2], app)
	}
	if n := len(r.ev.all("app", "Starting")); n != 1 {
		t.Errorf("app started %d times", n)
	}
	p := r.pod(t)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", p.Status.Phase)
	}
	if st := status(p, "sidecar"); st.RestartCount < 2 {
		t.Errorf("sidecar restartCount %d, want ≥ 2", st.RestartCount)
	}
}

func TestInitFailure(t *testing.T) {
	t.Run("Never", func(t *testing.T) {
		s := newScenario(t, "init-fail-never", corev1.RestartPolicyNever).
			sidecar(container("sidecar", serve)).
			init(container("init", runExit("0.1", 1))).
			app(container("app", serve))
		r := s.run()
		p := r.pod(t)
		if p.Status.Phase != corev1.PodFailed || r.code != 1 {
			t.Errorf("phase %s, exit %d; want Failed, 1", p.Status.Phase, r.code)
		}
		if n := len(r.ev.all("app", "Starting")); n != 0 {
			t.Error("the app started")
		}
		r.ev.order(t, "init Exiting", "sidecar Exiting")
		if term := status(p, "init").State.Terminated; term == nil || term.ExitCode != 1 {
			t.Errorf("init state %+v, want terminated 1", status(p, "init").State)
		}
	})
	for _, rp := range []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyAlways} {
		t.Run(string(rp), func(t *testing.T) {
			s := newScenario(t, "init-fail-"+strings.ToLower(string(rp)), rp).
				sidecar(container("sidecar", serve)).
				init(container("init", runExit("0.1", 1))).
				app(container("app", serve))
			bg := s.start()
			bg.waitEvent("init", "Exiting")
			bg.waitStderr("Init:CrashLoopBackOff")
			r := bg.interrupt()
			p := r.pod(t)
			if p.Status.Phase != corev1.PodFailed { // deleted while Pending: TerminatePod
				t.Errorf("phase %s, want Failed", p.Status.Phase)
			}
			if st := status(p, "init"); st.RestartCount < 1 {
				t.Errorf("init restartCount %d, want ≥ 1", st.RestartCount)
			}
			if n := len(r.ev.all("app", "Starting")); n != 0 {
				t.Error("the app started")
			}
			if len(r.ev.all("sidecar", "Starting")) != 1 {
				t.Error("the sidecar was restarted: it should keep running")
			}
		})
	}
}

func TestJobCompletesWithSidecar(t *testing.T) {
	s := newScenario(t, "unused", corev1.RestartPolicyNever) // for its log volume
	// The sidecar exits 3 on TERM: its code must not matter.
	always := corev1.ContainerRestartPolicyAlways
	side := container("sidecar", `trap 'log Exiting; exit 3' TERM; log Starting; log Started; while true; do sleep 1 & wait; done`)
	side.RestartPolicy = &always
	backoff := int32(0)
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: "job-with-sidecar"},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:  corev1.RestartPolicyNever,
				InitContainers: []corev1.Container{side},
				Containers:     []corev1.Container{container("app", runExit("0.3", 0))},
				Volumes:        s.pod.Spec.Volumes,
			}},
		},
	}
	r := podrun(t, s.dir, []any{job})
	p := r.pod(t)
	if p.Status.Phase != corev1.PodSucceeded || r.code != 0 {
		t.Errorf("phase %s, exit %d; want Succeeded, 0", p.Status.Phase, r.code)
	}
	if term := status(p, "sidecar").State.Terminated; term == nil || term.ExitCode != 3 {
		t.Errorf("sidecar state %+v, want terminated with 3", status(p, "sidecar").State)
	}
	if !strings.Contains(r.stderr, "job.batch/job-with-sidecar: Complete") {
		t.Errorf("the Job did not complete:\n%s", r.stderr)
	}
}

func TestTerminationOrder(t *testing.T) {
	s := newScenario(t, "termination-order", corev1.RestartPolicyAlways).
		sidecar(container("sidecar-1", serveSlowStop)).
		sidecar(container("sidecar-2", serveSlowStop)).
		app(container("app", serveSlowStop))
	bg := s.start()
	bg.waitEvent("app", "Started")
	r := bg.interrupt()
	if r.code != 130 {
		t.Errorf("exit %d, want 130", r.code)
	}
	r.ev.order(t, "app Exiting", "sidecar-2 Exiting", "sidecar-1 Exiting")
	// Each stops 1 s after its SIGTERM, and the next is signalled only once
	// the previous has exited.
	gap := func(a, b string) float64 {
		an, aw, _ := strings.Cut(a, " ")
		bn, bw, _ := strings.Cut(b, " ")
		return r.ev.first(t, bn, bw) - r.ev.first(t, an, aw)
	}
	for _, g := range [][2]string{{"app Exiting", "sidecar-2 Exiting"}, {"sidecar-2 Exiting", "sidecar-1 Exiting"}} {
		if d := gap(g[0], g[1]); d < 0.9 || d > 2.5 {
			t.Errorf("%s → %s: %.2f s, want about 1 s", g[0], g[1], d)
		}
	}
	if p := r.pod(t); p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded (every container exited 0 on TERM)", p.Status.Phase)
	}
}

func TestGraceExhaustedSIGKILL(t *testing.T) {
	// PID 1 without a TERM handler ignores SIGTERM: SIGKILL after the grace
	// period, here 1 s raised to the 2 s floor.
	s := newScenario(t, "grace", corev1.RestartPolicyAlways).
		app(container("app", `log Started; while true; do sleep 1; done`))
	one := int64(1)
	s.pod.Spec.TerminationGracePeriodSeconds = &one
	bg := s.start()
	bg.waitEvent("app", "Started")
	sent := time.Now()
	r := bg.interrupt()
	if d := time.Since(sent); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("terminated after %v, want about 2 s", d)
	}
	term := status(r.pod(t), "app").State.Terminated
	if term == nil || term.ExitCode != 137 || term.Reason != "Error" {
		t.Errorf("app state %+v, want terminated 137 Error", status(r.pod(t), "app").State)
	}
}

func TestCrashLoopBackOffDelays(t *testing.T) {
	s := newScenario(t, "crashloop", corev1.RestartPolicyAlways).
		app(container("app", `log Starting; exit 1`))
	bg := s.start()
	bg.waitEventN("app", "Starting", 4)
	r := bg.interrupt()
	starts := r.ev.all("app", "Starting")
	want := []float64{0, 10, 20} // the kubelet's delays between a crash and the next start
	for i, w := range want {
		d := starts[i+1] - starts[i]
		if d < w-0.5 || d > w+1.5 {
			t.Errorf("delay %d: %.2f s, want %.0f s", i+1, d, w)
		}
	}
	if !strings.Contains(r.stderr, "CrashLoopBackOff") {
		t.Errorf("no CrashLoopBackOff status:\n%s", r.stderr)
	}
	if st := status(r.pod(t), "app"); st.RestartCount != 3 {
		t.Errorf("restartCount %d, want 3", st.RestartCount)
	}
}

func TestImageNotFound(t *testing.T) {
	// A registry on a loopback port nobody listens on: the pull fails at
	// once and no packet leaves the machine.
	c := container("app", serve)
	c.Image = "127.0.0.1:1/podrun/nothing:1"
	s := newScenario(t, "no-image", corev1.RestartPolicyNever).app(c)
	bg := s.start()
	bg.waitStderr("ImagePullBackOff")
	r := bg.interrupt()
	if p := r.pod(t); p.Status.Phase != corev1.PodFailed { // deleted while Pending: TerminatePod
		t.Errorf("phase %s, want Failed", p.Status.Phase)
	}
	if !strings.Contains(r.stderr, "ErrImagePull") && !strings.Contains(r.stderr, "Failed to pull image") {
		t.Errorf("no pull failure reported:\n%s", r.stderr)
	}
}

func TestExampleJobDemo(t *testing.T) {
	testutil.RequiresRoot(t)
	r := podrunFiles(t, "../examples/job-logshipper.yaml")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if p := r.pod(t); p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", p.Status.Phase)
	}
}
