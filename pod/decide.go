package pod

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/probes"
)

// plan is what one sync does, in this order: kill (the pod, or single
// containers), create the sandbox, start init containers in order, start app
// containers in order. It is the kubelet's podActions.
type plan struct {
	createSandbox bool
	killPod       bool
	ending        ending // why, when killPod ends the pod on its own
	kill          []killOrder
	startInit     []int // indices into spec.initContainers, in spec order
	startApps     []int // indices into spec.containers, in spec order
}

func (p plan) empty() bool {
	return !p.createSandbox && !p.killPod && len(p.kill) == 0 && len(p.startInit) == 0 && len(p.startApps) == 0
}

// killOrder kills one running container outside of pod termination.
type killOrder struct {
	c       *ctr
	inst    *instance
	message string
	// grace is the failed probe's own terminationGracePeriodSeconds, if
	// set; otherwise the pod's applies.
	grace *int64
}

// decide computes the next sync of a pod from its spec and observed state,
// with the kubelet's computePodActions rules (SEMANTICS §1, §2, §6). It is
// pure: it reads s and returns what to do. Back-off is checked when a start
// is carried out, as the kubelet does.
func decide(s *podState) plan {
	var p plan
	switch s.life {
	case finished:
		return p
	case terminating:
		// Nothing starts, everything running stops (§5.5).
		if s.anyRunning() {
			p.killPod = true
		}
		return p
	}
	if !s.sandbox {
		p.createSandbox = true
		if len(s.init) > 0 {
			p.startInit = []int{0}
		} else {
			for i := range s.apps {
				p.startApps = append(p.startApps, i)
			}
		}
		return p
	}
	initialized := s.decideInit(&p)
	if p.killPod || !initialized {
		return p
	}

	keep := 0
	rp := s.pod.Spec.RestartPolicy
	for i, c := range s.apps {
		if !c.cur.running() {
			if s.shouldStart(c) {
				p.startApps = append(p.startApps, i)
			}
			continue
		}
		restart := rp != corev1.RestartPolicyNever
		var k killOrder
		switch {
		case c.cur.hash != specHash(c.spec):
			k = killOrder{message: fmt.Sprintf("Container %s definition changed", c.spec.Name)}
			restart = true // regardless of the restart policy
		case c.spec.LivenessProbe != nil && c.cur.liveness == probes.Failure:
			k = killOrder{message: fmt.Sprintf("Container %s failed liveness probe", c.spec.Name),
				grace: c.spec.LivenessProbe.TerminationGracePeriodSeconds}
		case c.spec.StartupProbe != nil && c.cur.startup == probes.Failure:
			k = killOrder{message: fmt.Sprintf("Container %s failed startup probe", c.spec.Name),
				grace: c.spec.StartupProbe.TerminationGracePeriodSeconds}
		default:
			keep++
			continue
		}
		if restart {
			k.message += ", will be restarted"
			p.startApps = append(p.startApps, i)
		}
		k.c, k.inst = c, c.cur
		p.kill = append(p.kill, k)
	}
	if keep == 0 && len(p.startApps) == 0 {
		// Every app is done and none will restart: the pod completes (§6).
		// Clearing the init starts keeps sidecars from holding it alive.
		p.killPod, p.ending = true, endCompleted
		p.startInit = nil
	}
	return p
}

// shouldStart says whether a container that is not running starts (again).
func (s *podState) shouldStart(c *ctr) bool {
	return c.cur == nil || ShouldRestart(s.pod.Spec.RestartPolicy, c.spec, c.role != roleApp, c.cur.exitCode)
}

// decideInit is the kubelet's computeInitContainerActions: it walks the init
// containers from last to first and returns whether the pod is initialized.
func (s *podState) decideInit(p *plan) bool {
	if len(s.init) == 0 {
		return true
	}
	// Only a created or running app proves initialization: after a sandbox
	// loss every app is exited and init must run again.
	initialized := false
	for _, c := range s.apps {
		if c.cur.running() {
			initialized = true
			break
		}
	}
	prevInit := initialized
	var starts []int
	last := len(s.init) - 1
	for i := last; i >= 0; i-- {
		c := s.init[i]
		if c.cur == nil {
			if prevInit && c.role == roleSidecar {
				starts = append(starts, i)
			}
			continue
		}
		if prevInit && c.role == roleInit {
			continue // a completed regular init never runs again
		}
		switch {
		case c.cur.running() && c.role == roleInit:
			// wait for it to finish
		case c.cur.running():
			if c.spec.StartupProbe != nil && c.cur.startup != probes.Success {
				if c.cur.startup == probes.Failure {
					p.kill = append(p.kill, killOrder{c: c, inst: c.cur, message: fmt.Sprintf("Init container %s failed startup probe", c.spec.Name),
						grace: c.spec.StartupProbe.TerminationGracePeriodSeconds})
					starts = append(starts, i)
				}
				break // no result yet: wait
			}
			if i == last {
				initialized = true
			} else if !prevInit {
				starts = append(starts, i+1) // started for the first time: next one
			}
			if c.cur.hash != specHash(c.spec) {
				p.kill = append(p.kill, killOrder{c: c, inst: c.cur,
					message: fmt.Sprintf("Init container %s definition changed", c.spec.Name)})
				starts = append(starts, i)
				break
			}
			if c.spec.LivenessProbe != nil && c.cur.liveness == probes.Failure {
				p.kill = append(p.kill, killOrder{c: c, inst: c.cur, message: fmt.Sprintf("Init container %s failed liveness probe", c.spec.Name),
					grace: c.spec.LivenessProbe.TerminationGracePeriodSeconds})
				starts = append(starts, i)
			}
		case c.role == roleSidecar: // exited: sidecars restart under every policy
			starts = append(starts, i)
		case c.cur.failed():
			if s.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				p.killPod, p.ending = true, endInitFailed
				p.startInit = nil
				return false
			}
			starts = append(starts, i)
		default: // a regular init exited 0
			if i == last {
				initialized = true
			} else {
				starts = append(starts, i+1)
			}
		}
		prevInit = true
	}
	if !prevInit {
		starts = append(starts, 0)
	}
	for l, r := 0, len(starts)-1; l < r; l, r = l+1, r-1 {
		starts[l], starts[r] = starts[r], starts[l]
	}
	p.startInit = starts
	return initialized
}
