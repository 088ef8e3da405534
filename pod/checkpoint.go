package pod

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/probes"
)

// Checkpoint is what a Supervisor needs to take over a pod whose previous
// supervisor process died: the pod, what was decided about it, and every
// container instance it started. The shim writes it atomically after each
// change and restores from it after a crash.
type Checkpoint struct {
	Pod       *corev1.Pod `json:"pod"`
	StartTime time.Time   `json:"startTime"`
	PodIP     string      `json:"podIP,omitempty"`
	HostIP    string      `json:"hostIP,omitempty"`
	Sandbox   bool        `json:"sandbox,omitempty"`
	Lifecycle string      `json:"lifecycle,omitempty"` // a lifecycle
	Ending    string      `json:"ending,omitempty"`    // an ending, from terminating on
	// Deleting and Killed are version 1's (no Lifecycle).
	Deleting   bool                  `json:"deleting,omitempty"`
	Killed     bool                  `json:"killed,omitempty"`
	Reason     string                `json:"reason,omitempty"`
	Message    string                `json:"message,omitempty"`
	Phase      corev1.PodPhase       `json:"phase,omitempty"`
	Containers []ContainerRecord     `json:"containers"`
	Conditions []corev1.PodCondition `json:"conditions,omitempty"`
	Events     []Event               `json:"events,omitempty"`
}

// ContainerRecord is one container's history in a Checkpoint.
type ContainerRecord struct {
	Name       string          `json:"name"`
	Restarts   int32           `json:"restarts"`
	WaitReason string          `json:"waitReason,omitempty"`
	WaitMsg    string          `json:"waitMessage,omitempty"`
	ImageRef   string          `json:"imageRef,omitempty"`
	ImageID    string          `json:"imageID,omitempty"`
	Current    *InstanceRecord `json:"current,omitempty"`
	Previous   *InstanceRecord `json:"previous,omitempty"`
}

// InstanceRecord is one container instance in a Checkpoint.
type InstanceRecord struct {
	ID         string    `json:"id"`
	Hash       string    `json:"hash"`
	StartedAt  time.Time `json:"startedAt"`
	Env        []string  `json:"env,omitempty"`
	StopSignal string    `json:"stopSignal,omitempty"`
	State      string    `json:"state,omitempty"` // an instanceState; "" is running
	// Exited is version 1's (no State): set for every ended instance.
	Exited     bool          `json:"exited,omitempty"`
	ExitCode   int32         `json:"exitCode,omitempty"`
	Reason     string        `json:"reason,omitempty"`
	Message    string        `json:"message,omitempty"`
	FinishedAt time.Time     `json:"finishedAt,omitempty"`
	Startup    probes.Result `json:"startup,omitempty"`
	Liveness   probes.Result `json:"liveness,omitempty"`
	Readiness  probes.Result `json:"readiness,omitempty"`
}

// checkpoint captures the owner's state.
func (s *Supervisor) checkpoint() *Checkpoint {
	st := s.st
	cp := &Checkpoint{
		Pod: st.pod.DeepCopy(), StartTime: st.startTime, PodIP: st.podIP, HostIP: st.hostIP,
		Sandbox: st.sandbox, Lifecycle: st.life.String(), Ending: st.ending.String(), Reason: st.reason, Message: st.msg,
		Phase: st.prevPhase, Conditions: st.prevConditions, Events: s.rec.list(),
	}
	for _, c := range st.all() {
		r := ContainerRecord{Name: c.spec.Name, Restarts: c.restarts, ImageRef: c.imageRef, ImageID: c.imageID,
			Current: instanceRecord(c.cur), Previous: instanceRecord(c.prev)}
		if c.waiting != nil {
			r.WaitReason, r.WaitMsg = c.waiting.reason, c.waiting.message
		}
		cp.Containers = append(cp.Containers, r)
	}
	return cp
}

func instanceRecord(i *instance) *InstanceRecord {
	if i == nil {
		return nil
	}
	return &InstanceRecord{ID: i.id, Hash: i.hash, StartedAt: i.startedAt, Env: i.env, StopSignal: i.stopSignal,
		State: stateName(i.state), ExitCode: i.exitCode, Reason: i.reason, Message: i.message, FinishedAt: i.finishedAt,
		Startup: i.startup, Liveness: i.liveness, Readiness: i.readiness}
}

func (r *InstanceRecord) instance() *instance {
	if r == nil {
		return nil
	}
	return &instance{id: r.ID, hash: r.Hash, startedAt: r.StartedAt, env: r.Env, stopSignal: r.StopSignal,
		state: parseInstanceState(r), exitCode: r.ExitCode, reason: r.Reason, message: r.Message, finishedAt: r.FinishedAt,
		startup: r.Startup, liveness: r.Liveness, readiness: r.Readiness}
}

// Restore makes a Supervisor that takes over the pod of cp: it finds the
// sandbox and the containers that were running again through the Host.
// A container that is gone, or that exits while re-attached, is reported
// as the kubelet reports a container it lost: terminated,
// ContainerStatusUnknown, exit code 137.
func Restore(ctx context.Context, cp *Checkpoint, o Options) (*Supervisor, error) {
	s := New(cp.Pod, o)
	st := s.st
	st.startTime, st.podIP, st.hostIP = cp.StartTime, cp.PodIP, cp.HostIP
	st.life, st.ending = cp.lifecycle()
	st.reason, st.msg = cp.Reason, cp.Message
	st.prevPhase, st.prevConditions = cp.Phase, cp.Conditions
	s.rec.events = append(s.rec.events, cp.Events...)
	if cp.Sandbox {
		sb, err := o.Host.RestoreSandbox(ctx, st.pod, o.Objects, cp.PodIP)
		if err != nil {
			return nil, fmt.Errorf("restoring the sandbox of %s/%s: %w", st.pod.Namespace, st.pod.Name, err)
		}
		s.sb, st.sandbox, st.netShown = sb, true, true
	}
	for _, r := range cp.Containers {
		c := st.byName(r.Name)
		if c == nil {
			continue
		}
		c.restarts, c.imageRef, c.imageID = r.Restarts, r.ImageRef, r.ImageID
		if r.WaitReason != "" {
			c.waiting = &waitReason{reason: r.WaitReason, message: r.WaitMsg}
		}
		c.prev, c.cur = r.Previous.instance(), r.Current.instance()
		if !c.cur.running() {
			continue
		}
		i := c.cur
		i.removed, i.applied = make(chan struct{}), make(chan struct{})
		h, err := o.Host.AttachContainer(ctx, st.pod, c.spec, c.restarts, i.id)
		if err != nil {
			s.log.Warn("container lost while its supervisor was down", "container", c.spec.Name, "err", err)
			i.lose()
			i.finishedAt = time.Now()
			close(i.removed)
			close(i.applied)
			continue
		}
		i.handle = h
		s.restored = append(s.restored, target{c, i})
	}
	// A new shim answers before Run's first turn: an exec or a watch then
	// finds the pod as it was taken over, not a pod without status.
	s.publish()
	return s, nil
}

func stateName(s instanceState) string {
	if s == instRunning {
		return ""
	}
	return s.String()
}

func parseInstanceState(r *InstanceRecord) instanceState {
	for s := instExited; s <= instLost; s++ {
		if s.String() == r.State {
			return s
		}
	}
	switch {
	case !r.Exited:
		return instRunning
	case r.Reason == reasonStatusUnknown:
		return instLost
	case r.Reason == reasonStartError:
		return instStartFailed
	}
	return instExited
}

// lifecycle reads the pod's lifecycle back, also from a version 1
// checkpoint, which had the deleting and killed flags instead.
func (cp *Checkpoint) lifecycle() (lifecycle, ending) {
	for l := creating; l <= finished; l++ {
		if l.String() != cp.Lifecycle {
			continue
		}
		for e := endDeleted; e <= endDeadline; e++ {
			if e.String() == cp.Ending {
				return l, e
			}
		}
		return l, notEnding
	}
	switch {
	case cp.Deleting && cp.Reason == "DeadlineExceeded":
		return terminating, endDeadline
	case cp.Deleting:
		return terminating, endDeleted
	case cp.Killed:
		return terminating, endCompleted
	case cp.Sandbox:
		return running, notEnding
	}
	return creating, notEnding
}
