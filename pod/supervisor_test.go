package pod

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/kubectl"
)

func forever() behaviour { return behaviour{onTerm: 0} }
func quick(code int) behaviour {
	return behaviour{runFor: 20 * time.Millisecond, code: code, onTerm: 0}
}

func TestStartOrderInterleaved(t *testing.T) {
	h := newFakeHost(map[string]behaviour{
		"i1": quick(0), "s1": forever(), "i2": quick(0), "s2": forever(), "a1": quick(0),
	})
	p := testPod("Never", "i1 s1 i2 s2 | a1")
	s := runPod(t, h, p, nil)
	if got, want := h.events("start "), []string{"i1", "s1", "i2", "s2", "a1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("start order %v, want %v", got, want)
	}
	// The app completed; the sidecars were stopped in reverse order and the
	// pod Succeeded whatever their exit codes.
	if got := h.events("signal "); !reflect.DeepEqual(got, []string{"s2 terminated", "s1 terminated"}) {
		t.Errorf("signals %v, want s2 then s1", got)
	}
	if ph := s.Pod().Status.Phase; ph != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", ph)
	}
	if _, ok := h.when("teardown"); !ok {
		t.Error("sandbox not torn down")
	}
}

func TestTerminationOrder(t *testing.T) {
	// Every container traps TERM and takes 100 ms to exit: apps go first,
	// then sidecar-2, then sidecar-1, each after the previous has exited.
	trap := behaviour{onTerm: 100 * time.Millisecond}
	h := newFakeHost(map[string]behaviour{"s1": trap, "s2": trap, "a1": trap, "a2": trap})
	p := testPod("Always", "s1 s2 | a1 a2")
	s := runPod(t, h, p, func(s *Supervisor) {
		waitFor(t, "all running", func() bool { return len(h.events("start ")) == 4 })
		s.Delete(nil)
	})
	at := func(e string) time.Duration {
		d, ok := h.when(e)
		if !ok {
			t.Fatalf("no %q in %v", e, h.timeline)
		}
		return d
	}
	a1, a2 := at("signal a1 terminated"), at("signal a2 terminated")
	if d := a1 - a2; d > 50*time.Millisecond || d < -50*time.Millisecond {
		t.Errorf("apps signalled %v apart, want together", d)
	}
	appsGone := max(at("exit a1 0"), at("exit a2 0"))
	if s2 := at("signal s2 terminated"); s2 < appsGone {
		t.Errorf("sidecar-2 signalled at %v before the apps exited at %v", s2, appsGone)
	}
	if s1 := at("signal s1 terminated"); s1 < at("exit s2 0") {
		t.Errorf("sidecar-1 signalled at %v before sidecar-2 exited at %v", s1, at("exit s2 0"))
	}
	// All exited 0 on their handler: the deleted pod Succeeded.
	if ph := s.Pod().Status.Phase; ph != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", ph)
	}
}

func TestGraceExhaustedSIGKILL(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"a1": {onTerm: -1}})
	p := testPod("Always", "| a1")
	one := int64(1)
	p.Spec.TerminationGracePeriodSeconds = &one
	start := time.Now()
	s := runPod(t, h, p, func(s *Supervisor) {
		waitFor(t, "running", func() bool { return len(h.events("start ")) == 1 })
		s.Delete(nil)
	})
	// A 1 s grace period still gets the 2 s floor before SIGKILL.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("SIGKILL after %v, want the 2 s floor", d)
	}
	cs := s.Pod().Status.ContainerStatuses[0]
	if term := cs.State.Terminated; term == nil || term.ExitCode != 137 || term.Reason != "Error" {
		t.Errorf("state %+v, want terminated 137 Error", cs.State)
	}
	if ph := s.Pod().Status.Phase; ph != corev1.PodFailed {
		t.Errorf("phase %s, want Failed", ph)
	}
}

func TestInitFailureNeverFailsPod(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"s1": forever(), "i1": quick(3), "a1": forever()})
	s := runPod(t, h, testPod("Never", "s1 i1 | a1"), nil)
	st := s.Pod().Status
	if st.Phase != corev1.PodFailed {
		t.Errorf("phase %s, want Failed", st.Phase)
	}
	if got := h.events("start "); !reflect.DeepEqual(got, []string{"s1", "i1"}) {
		t.Errorf("started %v; the app must never start", got)
	}
	if _, ok := h.when("exit s1 0"); !ok {
		t.Errorf("sidecar not stopped: %v", h.timeline)
	}
	if row := kubectl.Row(s.Pod(), time.Now()); row.Status != "Init:Error" {
		t.Errorf("kubectl STATUS %q, want Init:Error", row.Status)
	}
}

func TestImagePullBackOffStaysPending(t *testing.T) {
	h := newFakeHost(nil)
	p := testPod("Never", "| a1")
	p.Spec.Containers[0].Image = "nonexistent"
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
	s := runPod(t, h, p, func(s *Supervisor) {
		waitFor(t, "ImagePullBackOff", func() bool {
			cs := s.Pod().Status.ContainerStatuses
			return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reasonImagePullBackOff
		})
		if ph := s.Pod().Status.Phase; ph != corev1.PodPending {
			t.Errorf("phase %s, want Pending", ph)
		}
		s.Delete(nil)
	})
	if got := h.events("pull "); len(got) != 1 {
		t.Errorf("pulls %v, want exactly one within the back-off", got)
	}
	var reasons []string
	for _, e := range s.Events() {
		reasons = append(reasons, e.Reason)
	}
	if r := strings.Join(reasons, " "); !strings.Contains(r, "Pulling Failed Failed BackOff") {
		t.Errorf("events %s, want Pulling, Failed (twice: the error, then ErrImagePull), BackOff", r)
	}
}

func TestKubectlColumnsThroughInit(t *testing.T) {
	// The KEP-753 example: 0/3 Init:0/3 → Init:1/3 → Init:2/3 → 3/3 Running.
	s := newPodState(testPod("Always", "i1 s1 s2 | a1"))
	s.sandbox, s.life = true, running
	var got []string
	row := func() {
		p := s.pod.DeepCopy()
		p.Status = s.status()
		r := kubectl.Row(p, time.Now())
		got = append(got, r.Ready+" "+r.Status)
	}
	row()
	observed(s, "i1=run")
	row()
	observed(s, "i1=exit0")
	row()
	observed(s, "s1=run")
	row()
	observed(s, "s2=run")
	row()
	observed(s, "a1=run")
	row()
	want := []string{"0/3 Init:0/3", "0/3 Init:0/3", "0/3 Init:1/3", "1/3 Init:2/3", "2/3 PodInitializing", "3/3 Running"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rows %q, want %q", got, want)
	}
}

func TestUpdateImageRestartsContainer(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"a1": forever(), "a2": forever()})
	p := testPod("Never", "| a1 a2")
	s := runPod(t, h, p, func(s *Supervisor) {
		waitFor(t, "running", func() bool { return len(h.events("start ")) == 2 })
		q := s.Pod().DeepCopy()
		q.Spec.Containers[0].Image = "busybox:2"
		s.Update(q)
		waitFor(t, "restart", func() bool { return len(h.events("start ")) == 3 })
		s.Delete(nil)
	})
	if got := h.events("start "); !reflect.DeepEqual(got, []string{"a1", "a2", "a1"}) {
		t.Errorf("starts %v: want a1 restarted alone (whatever the restart policy)", got)
	}
	if img := s.Pod().Spec.Containers[0].Image; img != "busybox:2" {
		t.Errorf("image %s", img)
	}
	var kill string
	for _, e := range s.Events() {
		if e.Reason == "Killing" && e.Container == "a1" {
			kill = e.Message
			break
		}
	}
	if kill != "Container a1 definition changed, will be restarted" {
		t.Errorf("kill event %q", kill)
	}
}

// objectsOf is a fixed Objects for Refresh.
type objectsOf map[string]*corev1.ConfigMap

func (o objectsOf) ConfigMap(_, name string) *corev1.ConfigMap { return o[name] }
func (o objectsOf) Secret(_, _ string) *corev1.Secret          { return nil }

func TestRefreshKeepsContainersRunning(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"a1": forever()})
	p := testPod("Always", "| a1")
	var objs Objects = objectsOf{"conf": {}}
	s := runPod(t, h, p, func(s *Supervisor) {
		waitFor(t, "running", func() bool { return len(h.events("start ")) == 1 })
		s.Refresh(objs)
		waitFor(t, "refresh", func() bool { return len(h.events("refresh volumes")) == 1 })
		h.mu.Lock()
		h.refresh = errors.New(`volume "conf": configMap "conf" not found in namespace "default"`)
		h.mu.Unlock()
		s.Refresh(objectsOf{})
		waitFor(t, "failed refresh", func() bool {
			for _, e := range s.Events() {
				if e.Reason == "FailedMount" {
					return true
				}
			}
			return false
		})
		s.Delete(nil)
	})
	if got := h.events("start "); len(got) != 1 {
		t.Errorf("starts %v: a refresh must not restart a container", got)
	}
	for _, e := range s.Events() {
		if e.Reason == "FailedMount" && e.Message != `MountVolume.SetUp failed: volume "conf": configMap "conf" not found in namespace "default"` {
			t.Errorf("FailedMount: %q", e.Message)
		}
	}
}
