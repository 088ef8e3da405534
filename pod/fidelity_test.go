package pod

import (
	"context"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	s := New(p, o)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	go func() { _ = s.Run(ctx) }()
	if during != nil {
		during(s)
	}
	select {
	case <-s.Done():
	case <-time.After(25 * time.Second):
		t.Fatalf("pod did not finish; timeline %v", h.timeline)
	}
	return s, l
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
