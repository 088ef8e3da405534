package pod

import (
	"context"
	"io"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/probes"
	"github.com/podrun/podrun/runtime"
)

// probeTarget is where a container instance's probes and hooks go.
func probeTarget(sb *Sandbox, c *ctr, inst *instance) probes.Target {
	t := probes.Target{Host: "127.0.0.1", Ports: c.spec.Ports, Env: c.spec.Env}
	if sb != nil {
		if sb.PodIP != "" {
			t.Host = sb.PodIP
		}
		t.Dial = sb.Dial
	}
	h, env := inst.handle, inst.env
	t.Exec = func(ctx context.Context, cmd []string, stdout, stderr io.Writer) (int, error) {
		return h.Exec(ctx, runtime.ExecSpec{Args: cmd, Env: env, Stdout: stdout, Stderr: stderr})
	}
	return t
}

func probeOf(c *corev1.Container, k probes.Kind) *corev1.Probe {
	switch k {
	case probes.Liveness:
		return c.LivenessProbe
	case probes.Readiness:
		return c.ReadinessProbe
	}
	return c.StartupProbe
}

func (s *Supervisor) startWorker(c *ctr, inst *instance, kind probes.Kind) {
	p := probeOf(c.spec, kind)
	if p == nil || (kind != probes.Readiness && s.st.life >= terminating && c.role == roleApp) {
		return
	}
	if s.workers[inst] == nil {
		s.workers[inst] = map[probes.Kind]*probes.Worker{}
	}
	if _, ok := s.workers[inst][kind]; ok {
		return
	}
	s.workers[inst][kind] = probes.StartWorker(context.Background(), probes.WorkerConfig{
		Kind:      kind,
		Probe:     p,
		Target:    probeTarget(s.sb, c, inst),
		StartedAt: inst.startedAt,
		Publish: func(r probes.Result) {
			s.send(evProbe{c: c, inst: inst, kind: kind, result: r})
		},
		Report: func(a probes.Attempt) {
			s.rec.record(c, warning, a.Reason(), "%s", a.Message())
		},
	})
}

// stopProbes stops every worker of the given kinds.
func (s *Supervisor) stopProbes(kinds ...probes.Kind) {
	for inst, ws := range s.workers {
		for _, k := range kinds {
			if w, ok := ws[k]; ok {
				w.Stop() // does not wait: the worker may be publishing to us
				delete(ws, k)
			}
		}
		if len(ws) == 0 {
			delete(s.workers, inst)
		}
	}
}

// stopAppLivenessAndStartup is the prober manager's StopLivenessAndStartup
// at the start of a pod's termination: it covers spec.containers only, so a
// sidecar keeps its liveness and startup probes while it drains (only
// RemovePod, once everything stopped, ends them).
func (s *Supervisor) stopAppLivenessAndStartup() {
	for _, c := range s.st.apps {
		ws := s.workers[c.cur]
		for _, k := range []probes.Kind{probes.Liveness, probes.Startup} {
			if w, ok := ws[k]; ok {
				w.Stop()
				delete(ws, k)
			}
		}
		if ws != nil && len(ws) == 0 {
			delete(s.workers, c.cur)
		}
	}
}

func (s *Supervisor) stopInstanceProbes(inst *instance) {
	for _, w := range s.workers[inst] {
		w.Stop()
	}
	delete(s.workers, inst)
}
