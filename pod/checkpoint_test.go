package pod

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// restoreFrom takes a pod over from cp on h and runs it until it finishes.
func restoreFrom(t *testing.T, h *fakeHost, cp *Checkpoint, during func(s *Supervisor)) *Supervisor {
	t.Helper()
	s, err := Restore(context.Background(), cp, Options{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	return supervise(t, h, s, during)
}

func runningCheckpoint(p *corev1.Pod, life, ending string) *Checkpoint {
	return &Checkpoint{Pod: p, StartTime: time.Now(), PodIP: "10.0.0.2", Sandbox: true, Lifecycle: life, Ending: ending,
		Containers: []ContainerRecord{{Name: "a1", ImageRef: busybox.Ref, Current: &InstanceRecord{ID: "a1-7", Hash: "a1\x00busybox", StartedAt: time.Now()}}}}
}

func appStatus(s *Supervisor) corev1.ContainerStatus {
	return statusOf(s.Pod().Status.ContainerStatuses, "a1")
}

func TestRestoreReattachesARunningContainer(t *testing.T) {
	h := newFakeHost(nil)
	h.running("a1", "a1-7", behaviour{onTerm: 0})
	s := restoreFrom(t, h, runningCheckpoint(testPod("Never", "| a1"), "running", ""), func(s *Supervisor) {
		waitFor(t, "a1 running", func() bool { return appStatus(s).State.Running != nil })
		if cs := appStatus(s); cs.ContainerID != containerID("a1-7") || cs.RestartCount != 0 {
			t.Errorf("re-attached as %s with %d restarts", cs.ContainerID, cs.RestartCount)
		}
		s.Delete(nil)
	})
	if got := h.events("start "); len(got) != 0 {
		t.Errorf("started %v: a running container must be re-attached, not started again", got)
	}
	if got := h.events("signal "); len(got) == 0 || got[0] != "a1 terminated" {
		t.Errorf("signals %v, want the re-attached a1 stopped", got)
	}
	if ph := s.Pod().Status.Phase; ph != corev1.PodSucceeded {
		t.Errorf("phase %s after the deletion, want Succeeded (exit 0)", ph)
	}
}

func TestRestoreReportsLostContainers(t *testing.T) {
	for _, tc := range []struct {
		name string
		host func(h *fakeHost)
	}{
		{"gone while its supervisor was down", func(*fakeHost) {}},
		{"exited while its supervisor was down", func(h *fakeHost) { h.running("a1", "a1-7", behaviour{runFor: time.Millisecond, unknown: true}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHost(nil)
			tc.host(h)
			s := restoreFrom(t, h, runningCheckpoint(testPod("Never", "| a1"), "running", ""), nil)
			term := appStatus(s).State.Terminated
			if term == nil || term.Reason != reasonStatusUnknown || term.ExitCode != 137 {
				t.Fatalf("a1 state %+v, want terminated ContainerStatusUnknown 137", appStatus(s).State)
			}
			if ph := s.Pod().Status.Phase; ph != corev1.PodFailed {
				t.Errorf("phase %s, want Failed", ph)
			}
		})
	}
}

func TestRestoreFinishesADeletionInFlight(t *testing.T) {
	h := newFakeHost(nil)
	h.running("a1", "a1-7", behaviour{onTerm: 0})
	p := testPod("Always", "| a1")
	grace := int64(5)
	p.DeletionGracePeriodSeconds = &grace
	s := restoreFrom(t, h, runningCheckpoint(p, "terminating", "deleted"), nil)
	if ph := s.Pod().Status.Phase; ph != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded (a1 exited 0 on SIGTERM)", ph)
	}
	if got := h.events("signal "); len(got) == 0 || got[0] != "a1 terminated" {
		t.Errorf("signals %v: the deletion must go on after the restore", got)
	}
	if got := h.events("start "); len(got) != 0 {
		t.Errorf("started %v during a deletion", got)
	}
	if _, ok := h.when("teardown"); !ok {
		t.Error("sandbox not torn down")
	}
}

func TestVersion1CheckpointsAreRead(t *testing.T) {
	for _, tc := range []struct {
		cp     Checkpoint
		life   lifecycle
		ending ending
	}{
		{Checkpoint{Sandbox: true}, running, notEnding},
		{Checkpoint{}, creating, notEnding},
		{Checkpoint{Sandbox: true, Deleting: true}, terminating, endDeleted},
		{Checkpoint{Sandbox: true, Deleting: true, Killed: true, Reason: "DeadlineExceeded"}, terminating, endDeadline},
		{Checkpoint{Sandbox: true, Killed: true}, terminating, endCompleted},
		{Checkpoint{Sandbox: true, Lifecycle: "terminating", Ending: "initFailed"}, terminating, endInitFailed},
	} {
		if l, e := tc.cp.lifecycle(); l != tc.life || e != tc.ending {
			t.Errorf("%+v: %s/%s, want %s/%s", tc.cp, l, e, tc.life, tc.ending)
		}
	}
	for _, tc := range []struct {
		r    InstanceRecord
		want instanceState
	}{
		{InstanceRecord{}, instRunning}, {InstanceRecord{Exited: true}, instExited},
		{InstanceRecord{Exited: true, Reason: reasonStatusUnknown}, instLost},
		{InstanceRecord{Exited: true, Reason: reasonStartError}, instStartFailed}, {InstanceRecord{State: "lost"}, instLost},
	} {
		if got := parseInstanceState(&tc.r); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.r, got, tc.want)
		}
	}
}

// TestRestoredPodIsShownBeforeRun: a new shim serves execs and watches as
// soon as it has restored the pod, before its supervisor's first turn.
func TestRestoredPodIsShownBeforeRun(t *testing.T) {
	h := newFakeHost(nil)
	h.running("a1", "a1-7", behaviour{onTerm: 0})
	s, err := Restore(context.Background(), runningCheckpoint(testPod("Never", "| a1"), "running", ""), Options{Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if cs := appStatus(s); cs.State.Running == nil || cs.ContainerID != containerID("a1-7") {
		t.Errorf("a1 before Run: %+v, want running as a1-7", cs)
	}
	if _, ok := s.Running("a1"); !ok {
		t.Error("a1 cannot be exec'd into before Run")
	}
	supervise(t, h, s, func(s *Supervisor) { s.Delete(nil) })
}
