package pod

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/runtime"
)

// statusLog records every status the supervisor publishes.
type statusLog struct {
	mu   sync.Mutex
	pods []*corev1.Pod
	at   []time.Time
}

func (l *statusLog) add(p *corev1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pods = append(l.pods, p)
	l.at = append(l.at, time.Now())
}

func (l *statusLog) all() []*corev1.Pod {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*corev1.Pod(nil), l.pods...)
}

// runLogged is runPod with every published status recorded.
func runLogged(t *testing.T, h *fakeHost, p *corev1.Pod, o Options, during func(s *Supervisor)) (*Supervisor, *statusLog) {
	t.Helper()
	l := &statusLog{}
	o.Host, o.OnStatus = h, l.add
	return supervise(t, h, New(p, o), during), l
}

// A postStart hook gates the container's status, its probes and the pod IP
// (kuberuntime_container.go startContainer runs the hook inside the sync;
// the status is generated at the start of the next one; prober/worker.go
// doProbe skips a container whose status is not Running).
func TestPostStartGatesStatusProbesAndIP(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"a1": quick(0)})
	h.script["a1"] = behaviour{runFor: 1500 * time.Millisecond, onTerm: 0}
	p := testPod("Never", "| a1")
	a := &p.Spec.Containers[0]
	a.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}}
	a.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
		PeriodSeconds: 1, FailureThreshold: 1}
	_, l := runLogged(t, h, p, Options{}, nil)
	started, _ := h.when("start a1")
	sawRunning := false
	for _, q := range l.all() {
		cs := q.Status.ContainerStatuses[0]
		if cs.State.Running != nil {
			if !sawRunning && (cs.Started != nil && *cs.Started) {
				t.Errorf("first Running status already started: the startup probe ran during postStart")
			}
			sawRunning = true
			if q.Status.PodIP == "" {
				t.Errorf("Running without a pod IP")
			}
			continue
		}
		if !sawRunning {
			if q.Status.PodIP != "" {
				t.Errorf("pod IP %s published before postStart returned", q.Status.PodIP)
			}
			if w := cs.State.Waiting; cs.State.Terminated == nil && (w == nil || w.Reason != reasonCreating) {
				t.Errorf("before the hook returned: state %+v, want Waiting ContainerCreating", cs.State)
			}
		}
	}
	if !sawRunning {
		t.Fatalf("never Running; started at %v", started)
	}
}

func cond(p *corev1.Pod, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

// activeDeadlineSeconds fails the pod for good (active_deadline.go; the
// Failed phase of generateAPIPodStatus, Ready False/PodFailed at once),
// with a Normal event; the API sees the terminal phase and its reason only
// once nothing runs (mergePodStatus).
func TestActiveDeadlineFailsPod(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"a1": {onTerm: 300 * time.Millisecond}})
	p := testPod("Always", "| a1")
	one := int64(1)
	p.Spec.ActiveDeadlineSeconds = &one
	s, l := runLogged(t, h, p, Options{}, nil)
	draining := 0
	for _, q := range l.all() {
		if r := cond(q, corev1.PodReady); r.Reason != "PodFailed" || q.Status.Phase == corev1.PodFailed {
			continue
		}
		draining++
		if q.Status.Phase != corev1.PodRunning || q.Status.Reason != "" {
			t.Errorf("during the drain: phase %s reason %q, want Running and no reason", q.Status.Phase, q.Status.Reason)
		}
		if r := cond(q, corev1.ContainersReady); r.Status != corev1.ConditionFalse || r.Reason != "PodFailed" {
			t.Errorf("during the drain: ContainersReady %+v", r)
		}
	}
	if draining == 0 {
		t.Error("no status showed Ready=False(PodFailed) during the drain")
	}
	final := s.Pod()
	if final.Status.Phase != corev1.PodFailed || final.Status.Reason != "DeadlineExceeded" {
		t.Errorf("final phase %s reason %q, want Failed DeadlineExceeded", final.Status.Phase, final.Status.Reason)
	}
	found := false
	for _, e := range s.Events() {
		if e.Reason == "DeadlineExceeded" {
			found = true
			if e.Type != EventNormal {
				t.Errorf("DeadlineExceeded event is %s, want Normal", e.Type)
			}
		}
	}
	if !found {
		t.Error("no DeadlineExceeded event")
	}
}

// A deadline during init fails the pod too.
func TestActiveDeadlineDuringInit(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"i1": forever()})
	p := testPod("Always", "i1 | a1")
	one := int64(1)
	p.Spec.ActiveDeadlineSeconds = &one
	s, _ := runLogged(t, h, p, Options{}, nil)
	if st := s.Pod().Status; st.Phase != corev1.PodFailed || st.Reason != "DeadlineExceeded" {
		t.Errorf("phase %s reason %q, want Failed DeadlineExceeded", st.Phase, st.Reason)
	}
}

// TerminatePod: a pod still Pending when its termination ends is Failed;
// once initialized, containers that never terminated are reported
// ContainerStatusUnknown (137); before that only the first init container.
func TestTerminatePodTerminalPhase(t *testing.T) {
	for _, tc := range []struct {
		desc, bad string
		want      map[string]string // container: final state
	}{
		{"| a1", "a1", map[string]string{"a1": "terminated ContainerStatusUnknown 137"}},
		{"i1 i2 | a1", "i1", map[string]string{"i1": "terminated ContainerStatusUnknown 137",
			"i2": "waiting PodInitializing", "a1": "waiting PodInitializing"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			h := newFakeHost(map[string]behaviour{})
			p := testPod("Always", tc.desc)
			for _, c := range podspec.Containers(&p.Spec) {
				if c.Name == tc.bad {
					c.Image = "nope"
				}
			}
			s, _ := runLogged(t, h, p, Options{}, func(s *Supervisor) {
				waitFor(t, "a pull", func() bool { return len(h.events("pull ")) > 0 })
				time.Sleep(50 * time.Millisecond)
				s.Delete(nil)
			})
			st := s.Pod().Status
			if st.Phase != corev1.PodFailed {
				t.Errorf("phase %s, want Failed", st.Phase)
			}
			for _, cs := range podspec.Statuses(&st) {
				got := ""
				switch {
				case cs.State.Terminated != nil:
					got = fmt.Sprintf("terminated %s %d", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
				case cs.State.Waiting != nil:
					got = "waiting " + cs.State.Waiting.Reason
				default:
					got = "running"
				}
				if got != tc.want[cs.Name] {
					t.Errorf("%s: %s, want %s", cs.Name, got, tc.want[cs.Name])
				}
			}
		})
	}
}

// convertToAPIContainerStatuses shows a sidecar in back-off as Waiting only
// when the pod's restartPolicy would restart it (ShouldContainerBeRestarted)
// and it did not exit 0; otherwise it keeps its terminated state.
func TestSidecarBackoffState(t *testing.T) {
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		code   int
		want   string
	}{
		{"Always", 1, "waiting CrashLoopBackOff"},
		{"OnFailure", 1, "waiting CrashLoopBackOff"},
		{"Always", 0, "terminated"},
		{"OnFailure", 0, "terminated"},
		{"Never", 1, "terminated"},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.policy, tc.code), func(t *testing.T) {
			h := newFakeHost(map[string]behaviour{"s1": quick(tc.code), "a1": forever()})
			p := testPod(tc.policy, "s1 | a1")
			s, _ := runLogged(t, h, p, Options{}, func(s *Supervisor) {
				// started, exited, restarted at once, exited: now in a 10 s back-off
				waitFor(t, "the back-off", func() bool {
					for _, e := range s.Events() {
						if e.Reason == "BackOff" {
							return true
						}
					}
					return false
				})
				time.Sleep(50 * time.Millisecond)
				cs := s.Pod().Status.InitContainerStatuses[0]
				got := "running"
				switch {
				case cs.State.Waiting != nil:
					got = "waiting " + cs.State.Waiting.Reason
				case cs.State.Terminated != nil:
					got = "terminated"
				}
				if got != tc.want {
					t.Errorf("sidecar in back-off: %s, want %s", got, tc.want)
				}
				s.Delete(nil)
			})
			_ = s
		})
	}
}

// A zero grace period is 1 s for the pod's termination
// (calculateEffectiveGracePeriod): the sidecar still waits for the app.
func TestZeroGraceIsOneSecond(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"s1": forever(), "a1": {onTerm: 300 * time.Millisecond}})
	p := testPod("Always", "s1 | a1")
	zero := int64(0)
	p.Spec.TerminationGracePeriodSeconds = &zero
	runLogged(t, h, p, Options{}, func(s *Supervisor) {
		waitFor(t, "both running", func() bool { return len(h.events("start ")) == 2 })
		s.Delete(nil)
	})
	appExit, ok1 := h.when("exit a1 0")
	side, ok2 := h.when("signal s1 terminated")
	if !ok1 || !ok2 || side < appExit {
		t.Errorf("sidecar signalled at %v, app exited at %v: want after (timeline %v)", side, appExit, h.timeline)
	}
}

// Admission (kubelet.go rejectPod): a refused pod is Failed with the
// handler's reason, "Pod was rejected: <message>", and nothing is created.
func TestAdmission(t *testing.T) {
	sysctlPod := func(hostNet bool, names ...string) *corev1.Pod {
		p := testPod("Always", "| a1")
		p.Spec.HostNetwork = hostNet
		p.Spec.SecurityContext = &corev1.PodSecurityContext{}
		for _, n := range names {
			p.Spec.SecurityContext.Sysctls = append(p.Spec.SecurityContext.Sysctls, corev1.Sysctl{Name: n, Value: "1"})
		}
		return p
	}
	apparmor := testPod("Always", "| a1")
	apparmor.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{
		AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}
	annotated := testPod("Always", "| a1")
	annotated.Annotations = map[string]string{corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "a1": "runtime/default"}
	unconfined := testPod("Always", "| a1")
	unconfined.Annotations = map[string]string{corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "a1": "unconfined"}
	// Refused only on a host without AppArmor; with it, admitted.
	aaReason, aaMessage := runtime.AppArmorReason, "Pod was rejected: "+runtime.AppArmorRefusal()
	if runtime.AppArmorEnabled() {
		aaReason, aaMessage = "", ""
	}
	for _, tc := range []struct {
		name    string
		p       *corev1.Pod
		unsafe  []string
		reason  string
		message string
	}{
		{"safe", sysctlPod(false, "net.ipv4.tcp_rmem", "kernel.shm_rmid_forced"), nil, "", ""},
		{"unsafe", sysctlPod(false, "net.core.somaxconn"), nil, "SysctlForbidden",
			`Pod was rejected: forbidden sysctl: "net.core.somaxconn" not allowlisted`},
		{"allowed", sysctlPod(false, "net.core.somaxconn"), []string{"net.core.*"}, "", ""},
		{"host-net", sysctlPod(true, "net.ipv4.tcp_syncookies"), nil, "SysctlForbidden",
			`Pod was rejected: forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host Net enabled`},
		{"slashes", sysctlPod(false, "net/ipv4/tcp_syncookies"), nil, "", ""},
		{"apparmor", apparmor, nil, aaReason, aaMessage},
		{"apparmor-annotation", annotated, nil, aaReason, aaMessage},
		{"unconfined", unconfined, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(map[string]behaviour{"a1": quick(0)})
			tc.p.Spec.RestartPolicy = corev1.RestartPolicyNever
			s, _ := runLogged(t, h, tc.p, Options{AllowedUnsafeSysctls: tc.unsafe}, nil)
			st := s.Pod().Status
			if tc.reason == "" {
				if st.Phase != corev1.PodSucceeded {
					t.Errorf("phase %s (%s: %s), want Succeeded", st.Phase, st.Reason, st.Message)
				}
				return
			}
			if st.Phase != corev1.PodFailed || st.Reason != tc.reason || st.Message != tc.message {
				t.Errorf("status %s %q %q, want Failed %q %q", st.Phase, st.Reason, st.Message, tc.reason, tc.message)
			}
			if _, ok := h.when("sandbox"); ok {
				t.Error("a refused pod got a sandbox")
			}
		})
	}
	if err := CheckSysctlPatterns([]string{"vm.swappiness"}); err == nil {
		t.Error("a non-namespaced unsafe sysctl was accepted")
	}
}

// envHost is a fakeHost whose image has an ENV and that keeps the requests.
type envHost struct {
	*fakeHost
	mu   sync.Mutex
	reqs []*ContainerRequest
}

func (h *envHost) LookupImage(ref string) (*image.Image, error) {
	img := *busybox
	img.Config.Env = []string{"FROMIMAGE=1", "SHARED=image"}
	return &img, nil
}

func (h *envHost) StartContainer(ctx context.Context, r *ContainerRequest) (Container, error) {
	h.mu.Lock()
	h.reqs = append(h.reqs, r)
	h.mu.Unlock()
	return h.fakeHost.StartContainer(ctx, r)
}

// subPathExpr expands with the container's environment only
// (kubelet_pods.go makeMounts gets makeEnvironmentVariables' result, which
// has no image ENV): the request carries it apart from the full env.
func TestSpecEnvWithoutImageEnv(t *testing.T) {
	h := &envHost{fakeHost: newFakeHost(map[string]behaviour{"a1": quick(0)})}
	p := testPod("Never", "| a1")
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "SHARED", Value: "spec"}}
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	s := New(p, Options{Host: h})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Run(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.reqs) != 1 {
		t.Fatalf("%d starts", len(h.reqs))
	}
	r := h.reqs[0]
	if !slices.Contains(r.Env, "FROMIMAGE=1") || !slices.Contains(r.Env, "SHARED=spec") {
		t.Errorf("env %v lacks the image's FROMIMAGE or the spec's SHARED", r.Env)
	}
	if slices.Contains(r.SpecEnv, "FROMIMAGE=1") || !slices.Contains(r.SpecEnv, "SHARED=spec") {
		t.Errorf("spec env %v: want SHARED=spec and no image ENV", r.SpecEnv)
	}
}
