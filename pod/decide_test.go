package pod

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/probes"
)

// testPod builds a pod from a compact description: init containers named
// "i…" are regular, "s…" are sidecars; apps are listed after "|".
// Example: testPod("Never", "i1 s1 s2 | a1 a2").
func testPod(rp corev1.RestartPolicy, desc string) *corev1.Pod {
	inits, apps, _ := strings.Cut(desc, "|")
	p := &corev1.Pod{}
	p.Name, p.Namespace, p.UID = "p", "default", "uid-1"
	p.Spec.RestartPolicy = rp
	tgps := int64(30)
	p.Spec.TerminationGracePeriodSeconds = &tgps
	always := corev1.ContainerRestartPolicyAlways
	for _, n := range strings.Fields(inits) {
		c := corev1.Container{Name: n, Image: "busybox"}
		if strings.HasPrefix(n, "s") {
			c.RestartPolicy = &always
		}
		p.Spec.InitContainers = append(p.Spec.InitContainers, c)
	}
	for _, n := range strings.Fields(apps) {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: n, Image: "busybox"})
	}
	return p
}

// Instance shorthands.
func run(c *ctr) *instance {
	return &instance{hash: specHash(c.spec), readiness: probes.Failure, liveness: probes.Success}
}

func exit(c *ctr, code int32) *instance {
	i := run(c)
	i.state, i.exitCode = instExited, code
	return i
}

// observed sets state from "name=state" words: run, started (running, startup
// Success), exit0, exit1, oom, live-fail, startup-fail, changed (image).
func observed(s *podState, desc string) {
	for _, w := range strings.Fields(desc) {
		name, st, _ := strings.Cut(w, "=")
		c := s.byName(name)
		if c == nil {
			panic("no container " + name)
		}
		switch st {
		case "run":
			c.cur = run(c)
		case "started":
			c.cur = run(c)
			c.cur.startup = probes.Success
		case "exit0":
			c.cur = exit(c, 0)
		case "exit1":
			c.cur = exit(c, 1)
		case "oom":
			c.cur = exit(c, 137)
			c.cur.reason = reasonOOMKilled
		case "live-fail":
			c.cur = run(c)
			c.cur.liveness = probes.Failure
		case "startup-fail":
			c.cur = run(c)
			c.cur.startup = probes.Failure
		case "changed":
			c.cur = run(c)
			c.cur.hash = "old"
		default:
			panic("bad state " + st)
		}
	}
}

// summary renders a plan compactly for comparison.
func summary(s *podState, p plan) string {
	var parts []string
	if p.createSandbox {
		parts = append(parts, "sandbox")
	}
	if p.killPod {
		parts = append(parts, "killpod")
	}
	for _, k := range p.kill {
		parts = append(parts, "kill:"+k.c.spec.Name)
	}
	for _, i := range p.startInit {
		parts = append(parts, "start:"+s.init[i].spec.Name)
	}
	for _, i := range p.startApps {
		parts = append(parts, "start:"+s.apps[i].spec.Name)
	}
	return strings.Join(parts, " ")
}

func TestDecide(t *testing.T) {
	probe := &corev1.Probe{}
	// withProbe gives the named container a probe of one kind.
	withProbe := func(name string, kind func(*corev1.Container) **corev1.Probe) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
				for i := range cs {
					if cs[i].Name == name {
						*kind(&cs[i]) = probe
					}
				}
			}
		}
	}
	withStartup := func(name string) func(*corev1.Pod) {
		return withProbe(name, func(c *corev1.Container) **corev1.Probe { return &c.StartupProbe })
	}
	withLiveness := func(name string) func(*corev1.Pod) {
		return withProbe(name, func(c *corev1.Container) **corev1.Probe { return &c.LivenessProbe })
	}
	tests := []struct {
		rule     string
		rp       corev1.RestartPolicy
		pod      string
		mutate   func(*corev1.Pod)
		observed string
		nosb     bool // no sandbox yet
		deleting bool
		want     string
	}{
		// §1.1 start ordering
		{rule: "1.1 new pod: sandbox and the first init", rp: "Always", pod: "i1 s1 | a1", nosb: true, want: "sandbox start:i1"},
		{rule: "1.1 new pod without init: sandbox and every app in order", rp: "Always", pod: "| a1 a2", nosb: true, want: "sandbox start:a1 start:a2"},
		{rule: "1.1 no init status: start index 0", rp: "Always", pod: "i1 i2 | a1", want: "start:i1"},
		{rule: "1.1 a running regular init: wait", rp: "Always", pod: "i1 i2 | a1", observed: "i1=run", want: ""},
		{rule: "1.1 regular init exited 0: next one", rp: "Always", pod: "i1 i2 | a1", observed: "i1=exit0", want: "start:i2"},
		{rule: "1.1 last regular init exited 0: apps in spec order", rp: "Always", pod: "i1 i2 | a1 a2", observed: "i1=exit0 i2=exit0", want: "start:a1 start:a2"},
		{rule: "1.1 running sidecar without startup probe is started: next init", rp: "Always", pod: "s1 i1 | a1", observed: "s1=run", want: "start:i1"},
		{rule: "1.1 sidecar with startup probe, no result: wait", rp: "Always", pod: "s1 i1 | a1", mutate: withStartup("s1"), observed: "s1=run", want: ""},
		{rule: "1.1 sidecar with startup probe passed: next init", rp: "Always", pod: "s1 i1 | a1", mutate: withStartup("s1"), observed: "s1=started", want: "start:i1"},
		{rule: "1.1 sidecar startup probe failed: kill and restart, nothing else", rp: "Always", pod: "s1 i1 | a1", mutate: withStartup("s1"), observed: "s1=startup-fail", want: "kill:s1 start:s1"},
		{rule: "1.1 last init is a started sidecar: apps start", rp: "Never", pod: "i1 s1 | a1", observed: "i1=exit0 s1=run", want: "start:a1"},
		{rule: "1.1 interleaved: i1 s1 i2 s2, s1 started and i2 done: start s2", rp: "Always", pod: "i1 s1 i2 s2 | a1", observed: "i1=exit0 s1=run i2=exit0", want: "start:s2"},
		{rule: "1.1 sidecars keep running with the apps: nothing to do", rp: "Always", pod: "s1 s2 | a1", observed: "s1=run s2=run a1=run", want: ""},
		{rule: "1.1 completed regular init is never re-run once apps exist", rp: "Always", pod: "i1 | a1", observed: "a1=run", want: ""},
		{rule: "1.1 sidecar without status after init (GC'd): start it", rp: "Always", pod: "s1 | a1", observed: "a1=run", want: "start:s1"},
		{rule: "1.1 sidecar liveness failure: kill and restart; next init still starts", rp: "Always", pod: "s1 i1 | a1", mutate: withLiveness("s1"), observed: "s1=live-fail", want: "kill:s1 start:s1 start:i1"},
		{rule: "1.1 running sidecar with changed image: restart it alone", rp: "Always", pod: "s1 | a1", observed: "s1=changed a1=run", want: "kill:s1 start:s1"},
		// §1.2 a regular init fails
		{rule: "1.2 init failure under Never: kill the pod", rp: "Never", pod: "s1 i1 | a1", observed: "s1=run i1=exit1", want: "killpod"},
		{rule: "1.2 init OOMKilled under Never counts as failed", rp: "Never", pod: "i1 | a1", observed: "i1=oom", want: "killpod"},
		{rule: "1.2 init failure under OnFailure: restart only it", rp: "OnFailure", pod: "s1 i1 | a1", observed: "s1=run i1=exit1", want: "start:i1"},
		{rule: "1.2 init failure under Always: restart only it", rp: "Always", pod: "s1 i1 | a1", observed: "s1=run i1=exit1", want: "start:i1"},
		// §1.3 a sidecar exits
		{rule: "1.3 sidecar exits during init under Never: restarted, next init waits", rp: "Never", pod: "s1 i1 | a1", observed: "s1=exit0", want: "start:s1"},
		{rule: "1.3 sidecar exit 1 behaves like exit 0", rp: "Never", pod: "s1 i1 | a1", observed: "s1=exit1", want: "start:s1"},
		{rule: "1.3 sidecar exits after init while an app runs: restarted", rp: "Never", pod: "s1 | a1", observed: "s1=exit1 a1=run", want: "start:s1"},
		{rule: "1.3 every app done and no restart: sidecars stopped", rp: "Never", pod: "s1 | a1", observed: "s1=run a1=exit0", want: "killpod"},
		// Exited apps do not prove initialization (§1.1 rule 1), so the
		// kubelet's computeInitContainerActions would restart an exited
		// sidecar here; it never gets there because the phase is already
		// terminal (TestPhase), and SyncPod stops for terminal pods.
		{rule: "1.1 exited apps do not count as initialized", rp: "Never", pod: "s1 | a1", observed: "s1=exit0 a1=exit0", want: "start:s1"},
		// §2.1 who is restarted
		{rule: "2.1 app exited under Never: not restarted", rp: "Never", pod: "| a1 a2", observed: "a1=exit1 a2=run", want: ""},
		{rule: "2.1 app exited 0 under OnFailure: not restarted", rp: "OnFailure", pod: "| a1 a2", observed: "a1=exit0 a2=run", want: ""},
		{rule: "2.1 app exited 1 under OnFailure: restarted", rp: "OnFailure", pod: "| a1", observed: "a1=exit1", want: "start:a1"},
		{rule: "2.1 app exited 0 under Always: restarted", rp: "Always", pod: "| a1", observed: "a1=exit0", want: "start:a1"},
		{rule: "2.1 liveness failure under Always: kill and restart", rp: "Always", pod: "| a1", mutate: withLiveness("a1"), observed: "a1=live-fail", want: "kill:a1 start:a1"},
		{rule: "2.1 liveness failure under Never: kill, no restart, pod completes", rp: "Never", pod: "| a1", mutate: withLiveness("a1"), observed: "a1=live-fail", want: "killpod kill:a1"},
		{rule: "2.1 startup failure of an app: kill and restart", rp: "OnFailure", pod: "| a1", mutate: withStartup("a1"), observed: "a1=startup-fail", want: "kill:a1 start:a1"},
		{rule: "2.1 image change restarts regardless of policy", rp: "Never", pod: "| a1", observed: "a1=changed", want: "kill:a1 start:a1"},
		// §5.5 and §6
		{rule: "5.5 deletion: kill the pod, start nothing", rp: "Always", pod: "s1 | a1", observed: "s1=run a1=exit1", deleting: true, want: "killpod"},
		{rule: "5.5 deletion with nothing running: nothing to do", rp: "Always", pod: "| a1", observed: "a1=exit1", deleting: true, want: ""},
		{rule: "6 apps done under Never with sidecars running: kill the pod", rp: "Never", pod: "s1 s2 | a1", observed: "s1=run s2=run a1=exit0", want: "killpod"},
		{rule: "6 apps done under OnFailure: kill the pod, no sidecar restart", rp: "OnFailure", pod: "s1 | a1", observed: "s1=run a1=exit0", want: "killpod"},
		{rule: "6 RP Always never completes", rp: "Always", pod: "s1 | a1", observed: "s1=run a1=exit0", want: "start:a1"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			p := testPod(tt.rp, tt.pod)
			if tt.mutate != nil {
				tt.mutate(p)
			}
			s := newPodState(p)
			s.sandbox = !tt.nosb
			if s.sandbox {
				s.life = running
			}
			if tt.deleting {
				s.life, s.ending = terminating, endDeleted
			}
			observed(s, tt.observed)
			if got := summary(s, decide(s)); got != tt.want {
				t.Errorf("decide = %q, want %q", got, tt.want)
			}
		})
	}
}

// phaseOf renders the status of an observed state and returns its phase.
func phaseOf(rp corev1.RestartPolicy, pod, obs string, tweak func(*podState)) corev1.PodPhase {
	s := newPodState(testPod(rp, pod))
	s.sandbox, s.life = true, running
	observed(s, obs)
	if tweak != nil {
		tweak(s)
	}
	return s.status().Phase
}

func TestPhase(t *testing.T) {
	backoff := func(name string) func(*podState) {
		return func(s *podState) {
			c := s.byName(name)
			c.waiting = &waitReason{reason: reasonCrashLoopBackOff}
		}
	}
	tests := []struct {
		rule, pod, obs string
		rp             corev1.RestartPolicy
		tweak          func(*podState)
		want           corev1.PodPhase
	}{
		{rule: "nothing started yet", rp: "Always", pod: "i1 | a1", want: "Pending"},
		{rule: "regular init running", rp: "Always", pod: "i1 | a1", obs: "i1=run", want: "Pending"},
		{rule: "init failed under Never", rp: "Never", pod: "s1 i1 | a1", obs: "s1=run i1=exit1", want: "Failed"},
		{rule: "init failed under OnFailure, waiting in back-off: Pending", rp: "OnFailure", pod: "i1 | a1", obs: "i1=exit1", tweak: backoff("i1"), want: "Pending"},
		{rule: "sidecar running, not started, no app created", rp: "Always", pod: "s1 | a1", obs: "s1=run", tweak: func(s *podState) { s.init[0].spec.StartupProbe = &corev1.Probe{} }, want: "Pending"},
		{rule: "all running", rp: "Always", pod: "i1 s1 | a1", obs: "i1=exit0 s1=run a1=run", want: "Running"},
		{rule: "app done, sidecar still running: Running (§6)", rp: "Never", pod: "s1 | a1", obs: "s1=run a1=exit0", want: "Running"},
		{rule: "app done, sidecar exited 1: Succeeded, sidecar code ignored", rp: "Never", pod: "s1 | a1", obs: "s1=exit1 a1=exit0", want: "Succeeded"},
		{rule: "app failed under Never", rp: "Never", pod: "| a1", obs: "a1=exit1", want: "Failed"},
		{rule: "app failed under OnFailure: restarting, Running", rp: "OnFailure", pod: "| a1", obs: "a1=exit1", want: "Running"},
		{rule: "all stopped under Always: Running (restarting)", rp: "Always", pod: "| a1", obs: "a1=exit1", want: "Running"},
		{rule: "deleted, all stopped with 0: Succeeded", rp: "Always", pod: "| a1 a2", obs: "a1=exit0 a2=exit0", tweak: func(s *podState) { s.life, s.ending = terminating, endDeleted }, want: "Succeeded"},
		{rule: "deleted, one app 143: Failed", rp: "Always", pod: "| a1 a2", obs: "a1=exit0 a2=exit1", tweak: func(s *podState) { s.life, s.ending = terminating, endDeleted }, want: "Failed"},
		{rule: "image pull back-off keeps Pending even under Never", rp: "Never", pod: "| a1", tweak: func(s *podState) {
			s.apps[0].waiting = &waitReason{reason: reasonImagePullBackOff}
		}, want: "Pending"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			if got := phaseOf(tt.rp, tt.pod, tt.obs, tt.tweak); got != tt.want {
				t.Errorf("phase = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestConditionsAndStatuses(t *testing.T) {
	s := newPodState(testPod("Always", "i1 s1 s2 | b a"))
	s.sandbox, s.life = true, running
	observed(s, "i1=exit0 s1=run")
	st := s.status()
	cond := map[corev1.PodConditionType]corev1.PodCondition{}
	var order []string
	for _, c := range st.Conditions {
		cond[c.Type] = c
		order = append(order, string(c.Type))
	}
	if got := strings.Join(order, ","); got != "PodReadyToStartContainers,Initialized,Ready,ContainersReady,PodScheduled" {
		t.Errorf("condition order %s", got)
	}
	if c := cond[corev1.PodInitialized]; c.Status != "False" || c.Message != "containers with incomplete status: [s2]" {
		t.Errorf("Initialized = %+v", c)
	}
	if c := cond[corev1.ContainersReady]; c.Message != "containers with unready status: [s2 b a]" {
		t.Errorf("ContainersReady = %+v", c)
	}
	// app statuses sorted by name, init in spec order
	var names []string
	for _, cs := range st.ContainerStatuses {
		names = append(names, cs.Name)
	}
	if !reflect.DeepEqual(names, []string{"a", "b"}) {
		t.Errorf("app status order %v", names)
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != reasonPodInitializing {
		t.Errorf("app waiting = %+v, want PodInitializing", w)
	}
	if !st.InitContainerStatuses[0].Ready || !*st.InitContainerStatuses[1].Started || !st.InitContainerStatuses[1].Ready {
		t.Errorf("init statuses %+v", st.InitContainerStatuses)
	}

	// a sidecar with a readiness probe is started but not ready until it passes
	s.init[1].spec.ReadinessProbe = &corev1.Probe{}
	if s.init[1].ready() || !s.init[1].started() {
		t.Error("sidecar with failing readiness: want started, not ready")
	}
	s.init[1].cur.readiness = probes.Success
	if !s.init[1].ready() {
		t.Error("sidecar readiness passed: want ready")
	}
}

func TestCrashLoopStatus(t *testing.T) {
	s := newPodState(testPod("Always", "| a"))
	s.sandbox, s.life = true, running
	c := s.apps[0]
	c.prev = exit(c, 1)
	c.cur = exit(c, 2)
	c.restarts = 1
	c.waiting = &waitReason{reason: reasonCrashLoopBackOff, message: "back-off 10s"}
	cs := s.status().ContainerStatuses[0]
	if cs.State.Waiting == nil || cs.State.Waiting.Reason != reasonCrashLoopBackOff {
		t.Fatalf("state %+v, want waiting CrashLoopBackOff", cs.State)
	}
	if cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 2 {
		t.Errorf("lastState %+v, want the latest exit (2)", cs.LastTerminationState)
	}
}

func TestBackoffDelays(t *testing.T) {
	// The kubelet's sequence between a crash and the next start: 0, 10, 20, 40 … 300 s.
	b := newBackoff()
	now := time.Unix(1000, 0)
	var delays []string
	for i := 0; i < 8; i++ {
		finished := now
		until, in := b.inBackoffSince("k", finished, now)
		d := time.Duration(0)
		if in {
			d = until.Sub(now)
			now = until
		}
		b.next("k", finished, now)
		delays = append(delays, fmt.Sprint(d))
		now = now.Add(time.Second) // it runs a second, then crashes
	}
	want := "0s 10s 20s 40s 1m20s 2m40s 5m0s 5m0s"
	if got := strings.Join(delays, " "); got != want {
		t.Errorf("delays %s, want %s", got, want)
	}
	// Quiet for more than 10 minutes after the last update: reset.
	until, in := b.inBackoffSince("k", now.Add(11*time.Minute), now.Add(11*time.Minute))
	if in {
		t.Errorf("still in back-off until %v after 11 quiet minutes", until)
	}
}
