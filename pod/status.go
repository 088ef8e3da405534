package pod

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/podrun/podrun/internal/podspec"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podState is everything the supervisor observed about one pod. Only the
// pod's owner goroutine touches it; decide and status read it.
type podState struct {
	pod  *corev1.Pod
	init []*ctr
	apps []*ctr

	life    lifecycle
	ending  ending // why it terminates, from terminating on
	sandbox bool   // observed: its namespaces, network, cgroup and volumes exist
	// netShown: the sync that created the sandbox has ended. The kubelet
	// generates a pod's status at the start of each sync, so the pod IP and
	// PodReadyToStartContainers appear with the first status after that
	// sync (after the postStart hooks it ran), not at sandbox creation.
	netShown bool
	rejected bool // refused at admission

	startTime      time.Time
	podIP          string
	hostIP         string
	qos            corev1.PodQOSClass
	reason, msg    string // pod-level status reason (DeadlineExceeded)
	prevConditions []corev1.PodCondition
	prevPhase      corev1.PodPhase
}

func newPodState(p *corev1.Pod) *podState {
	s := &podState{pod: p}
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		r := roleInit
		if podspec.IsSidecar(c) {
			r = roleSidecar
		}
		s.init = append(s.init, &ctr{spec: c, role: r})
	}
	for i := range p.Spec.Containers {
		s.apps = append(s.apps, &ctr{spec: &p.Spec.Containers[i], role: roleApp})
	}
	return s
}

func (s *podState) all() []*ctr { return append(append([]*ctr{}, s.init...), s.apps...) }

func (s *podState) byName(name string) *ctr {
	for _, c := range s.all() {
		if c.spec.Name == name {
			return c
		}
	}
	return nil
}

func (s *podState) anyRunning() bool {
	for _, c := range s.all() {
		if c.cur.running() {
			return true
		}
	}
	return false
}

func (s *podState) hasSidecars() bool {
	for _, c := range s.init {
		if c.role == roleSidecar {
			return true
		}
	}
	return false
}

// containerID is how statuses show a container ID (CRI's <runtime>://<id>).
func containerID(id string) string { return "podrun://" + id }

// status renders the pod's status the way the kubelet's
// generateAPIPodStatus does (SEMANTICS §7).
func (s *podState) status() corev1.PodStatus {
	if s.rejected {
		// rejectPod sets only these.
		st := corev1.PodStatus{Phase: corev1.PodFailed, Reason: s.reason, Message: s.msg, QOSClass: s.qos}
		if !s.startTime.IsZero() {
			t := metav1.NewTime(s.startTime)
			st.StartTime = &t
		}
		return st
	}
	st := corev1.PodStatus{
		HostIP:   s.hostIP,
		PodIP:    s.shownIP(),
		QOSClass: s.qos,
		Reason:   s.reason,
		Message:  s.msg,
	}
	if s.hostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: s.hostIP}}
	}
	if st.PodIP != "" {
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	if !s.startTime.IsZero() {
		t := metav1.NewTime(s.startTime)
		st.StartTime = &t
	}
	hasInit := len(s.init) > 0
	for _, c := range s.init {
		st.InitContainerStatuses = append(st.InitContainerStatuses, s.containerStatus(c, hasInit))
	}
	for _, c := range s.apps {
		st.ContainerStatuses = append(st.ContainerStatuses, s.containerStatus(c, hasInit))
	}
	// Apps are sorted by name, init containers stay in spec order (§12.12).
	sort.SliceStable(st.ContainerStatuses, func(i, j int) bool {
		return st.ContainerStatuses[i].Name < st.ContainerStatuses[j].Name
	})

	st.Phase = s.phase(st)
	if s.prevPhase == corev1.PodSucceeded || s.prevPhase == corev1.PodFailed {
		st.Phase = s.prevPhase // a terminal phase never changes back
	}
	if s.ending == endDeadline {
		// The active deadline handler's ShouldEvict: Failed for good, from
		// the first status after the deadline on (generateAPIPodStatus).
		st.Phase = corev1.PodFailed
	}
	st.Conditions = s.conditions(st)
	if s.life == finished {
		terminatePod(&st, len(s.init) > 0)
	}
	return st
}

const msgNotLocated = "The container could not be located when the pod was terminated"

// terminatePod is the status manager's TerminatePod, applied to the last
// status once the pod's termination is done: once the pod has initialized,
// every app container that did not terminate is reported terminated with
// ContainerStatusUnknown (137), and so is every init container that did
// not terminate up to the last one that ever left Waiting (at least the
// first); a phase still Pending or Running becomes Failed. The conditions
// stay as generated before.
func terminatePod(st *corev1.PodStatus, hasInit bool) {
	unknown := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		Reason: reasonStatusUnknown, Message: msgNotLocated, ExitCode: 137}}
	if hasInitialized(st, hasInit) {
		for i := range st.ContainerStatuses {
			if st.ContainerStatuses[i].State.Terminated == nil {
				st.ContainerStatuses[i].State = *unknown.DeepCopy()
			}
		}
	}
	n := 0 // initializedContainers: up to the last that left Waiting, at least one
	for i := len(st.InitContainerStatuses) - 1; i >= 0; i-- {
		cs := st.InitContainerStatuses[i]
		if cs.State.Waiting == nil || cs.LastTerminationState.Terminated != nil {
			n = i + 1
			break
		}
	}
	if n == 0 && len(st.InitContainerStatuses) > 0 {
		n = 1
	}
	for i := range st.InitContainerStatuses[:n] {
		if st.InitContainerStatuses[i].State.Terminated == nil {
			st.InitContainerStatuses[i].State = *unknown.DeepCopy()
		}
	}
	if !terminal(st.Phase) {
		st.Phase = corev1.PodFailed
	}
}

// hasInitialized is the status manager's hasPodInitialized: no init
// containers, an app container that ever left Waiting, or a last init
// container that completed (a sidecar: running and started).
func hasInitialized(st *corev1.PodStatus, hasInit bool) bool {
	if !hasInit {
		return true
	}
	for _, cs := range st.ContainerStatuses {
		if cs.LastTerminationState.Terminated != nil || cs.State.Waiting == nil {
			return true
		}
	}
	if l := len(st.InitContainerStatuses); l > 0 {
		cs := st.InitContainerStatuses[l-1]
		if t := cs.LastTerminationState.Terminated; t != nil && t.ExitCode == 0 {
			return true
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode == 0 {
			return true
		}
		if cs.State.Running != nil && cs.Started != nil && *cs.Started {
			return true
		}
	}
	return false
}

func terminal(p corev1.PodPhase) bool { return p == corev1.PodSucceeded || p == corev1.PodFailed }

// apiView is the status as the API server gets it from the status
// manager's mergePodStatus: a terminal phase, with its reason and message,
// is withheld while the pod could still have running containers (until its
// termination is done); shown is the status published before.
func (s *podState) apiView(st corev1.PodStatus, shown *corev1.PodStatus) corev1.PodStatus {
	if !terminal(st.Phase) || s.life == finished {
		return st
	}
	v := *st.DeepCopy()
	v.Phase, v.Reason, v.Message = corev1.PodPending, "", ""
	if shown != nil && shown.Phase != "" {
		v.Phase, v.Reason, v.Message = shown.Phase, shown.Reason, shown.Message
	}
	return v
}

func (s *podState) shownIP() string {
	if !s.netShown {
		return ""
	}
	return s.podIP
}

// shown is the container as its status shows it: while a postStart hook
// runs, as it was before that start (see instance.inHook).
func (c *ctr) shown() *ctr {
	if !c.cur.running() || !c.cur.inHook {
		return c
	}
	v := *c
	v.cur, v.prev = c.prev, c.cur.before
	if c.prev != nil {
		v.restarts--
	}
	return &v
}

// containerStatus is convertToAPIContainerStatuses plus the probe manager's
// started/ready for one container.
func (s *podState) containerStatus(c *ctr, hasInit bool) corev1.ContainerStatus {
	c = c.shown()
	cs := corev1.ContainerStatus{Name: c.spec.Name, Image: c.spec.Image, RestartCount: c.restarts}
	if c.imageRef != "" {
		cs.Image, cs.ImageID = c.imageRef, c.imageID
	}
	waitingDefault := reasonCreating
	if hasInit {
		waitingDefault = reasonPodInitializing
	}
	if c.cur == nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: waitingDefault}
	} else {
		cs.ContainerID = containerID(c.cur.id)
		cs.State = apiState(c.cur)
	}
	if c.prev != nil {
		cs.LastTerminationState = apiState(c.prev)
	}
	// A container that failed to start, or waits to be restarted, shows the
	// reason of its last start attempt (the kubelet's reason cache).
	if c.waiting != nil && s.willRestart(c) {
		if cs.State.Terminated != nil {
			cs.LastTerminationState = cs.State
		}
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: c.waiting.reason, Message: c.waiting.message}}
	}
	started := c.started()
	cs.Started = &started
	cs.Ready = c.ready()
	return cs
}

// willRestart is the kubelet's ShouldContainerBeRestarted as the status
// generator uses it: not once the pod is deleted, not while running, and
// otherwise as ShowsRestart says.
func (s *podState) willRestart(c *ctr) bool {
	if s.pod.DeletionTimestamp != nil {
		return false
	}
	if c.cur == nil {
		return true
	}
	if c.cur.running() {
		return false
	}
	return ShowsRestart(s.pod.Spec.RestartPolicy, c.role != roleApp, c.cur.exitCode)
}

func apiState(i *instance) corev1.ContainerState {
	if i.running() {
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(i.startedAt)}}
	}
	t := &corev1.ContainerStateTerminated{
		ExitCode:    i.exitCode,
		Reason:      i.reason,
		Message:     i.message,
		FinishedAt:  metav1.NewTime(i.finishedAt),
		ContainerID: containerID(i.id),
	}
	if !i.startedAt.IsZero() {
		t.StartedAt = metav1.NewTime(i.startedAt)
	}
	return corev1.ContainerState{Terminated: t}
}

// statusOf returns the status of the named container (zero if absent).
func statusOf(list []corev1.ContainerStatus, name string) corev1.ContainerStatus {
	for _, cs := range list {
		if cs.Name == name {
			return cs
		}
	}
	return corev1.ContainerStatus{}
}

// phase is the kubelet's getPhase over the rendered container statuses.
func (s *podState) phase(st corev1.PodStatus) corev1.PodPhase {
	spec := &s.pod.Spec
	var pendingInit, pendingSidecars, failedInit int
	var unknown, running, waiting, stopped, succeeded int
	for _, c := range s.init {
		cs := statusOf(st.InitContainerStatuses, c.spec.Name)
		last := cs.LastTerminationState.Terminated
		switch {
		case c.role == roleInit && cs.State.Running != nil:
			pendingInit++
		case c.role == roleInit && cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case c.role == roleInit && cs.State.Waiting != nil && last != nil:
			if last.ExitCode != 0 {
				failedInit++
			}
		case c.role == roleInit:
			pendingInit++
		case cs.State.Running != nil:
			if cs.Started == nil || !*cs.Started {
				pendingSidecars++
			}
			running++
		case cs.State.Terminated != nil:
			// neither running nor stopped
		case cs.State.Waiting != nil && last == nil:
			pendingSidecars++
			waiting++
		case cs.State.Waiting != nil:
		default:
			pendingSidecars++
			unknown++
		}
	}
	appCreated := false
	for _, c := range s.apps {
		if c.shown().cur != nil {
			appCreated = true
		}
		cs := statusOf(st.ContainerStatuses, c.spec.Name)
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			stopped++
		case cs.State.Waiting != nil:
			waiting++
		default:
			unknown++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecars > 0 && !appCreated) || waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if s.life >= terminating {
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
		switch {
		case spec.RestartPolicy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case spec.RestartPolicy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		}
		return corev1.PodRunning
	}
	return corev1.PodPending
}

// conditions are generate.go's, in the kubelet's order.
func (s *podState) conditions(st corev1.PodStatus) []corev1.PodCondition {
	spec := &s.pod.Spec
	all := podspec.Statuses(&st)
	find := func(name string) corev1.ContainerStatus { return statusOf(all, name) }
	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
		if ok {
			c.Status = corev1.ConditionTrue
		}
		return c
	}

	var out []corev1.PodCondition
	out = append(out, cond(corev1.PodReadyToStartContainers, s.sandbox && s.netShown && s.life != finished, "", ""))

	// Initialized
	initialized := cond(corev1.PodInitialized, true, "", "")
	switch {
	case st.Phase == corev1.PodSucceeded: // with or without init containers
		initialized.Reason = "PodCompleted"
	case len(spec.InitContainers) == 0:
	case anyAppStarted(st.ContainerStatuses):
	default:
		var incomplete []string
		for _, c := range s.init {
			cs := find(c.spec.Name)
			if c.role == roleSidecar && (cs.Started == nil || !*cs.Started) ||
				c.role == roleInit && !cs.Ready {
				incomplete = append(incomplete, c.spec.Name)
			}
		}
		if len(incomplete) > 0 {
			initialized = cond(corev1.PodInitialized, false, "ContainersNotInitialized",
				fmt.Sprintf("containers with incomplete status: %v", incomplete))
		}
	}
	out = append(out, initialized)

	// ContainersReady, and Ready on top of it with readiness gates.
	var cready corev1.PodCondition
	switch st.Phase {
	case corev1.PodSucceeded:
		cready = cond(corev1.ContainersReady, false, "PodCompleted", "")
	case corev1.PodFailed:
		cready = cond(corev1.ContainersReady, false, "PodFailed", "")
	default:
		var unready []string
		for _, c := range s.all() {
			if c.role != roleInit && !find(c.spec.Name).Ready {
				unready = append(unready, c.spec.Name)
			}
		}
		if len(unready) > 0 {
			cready = cond(corev1.ContainersReady, false, "ContainersNotReady",
				fmt.Sprintf("containers with unready status: %v", unready))
		} else {
			cready = cond(corev1.ContainersReady, true, "", "")
		}
	}
	ready := cready
	ready.Type = corev1.PodReady
	if ready.Status == corev1.ConditionTrue && len(spec.ReadinessGates) > 0 {
		var msgs []string
		for _, g := range spec.ReadinessGates {
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		}
		ready = cond(corev1.PodReady, false, "ReadinessGatesNotReady", strings.Join(msgs, ", "))
	}
	out = append(out, ready, cready, cond(corev1.PodScheduled, true, "", ""))

	// Keep each condition's transition time while its status holds.
	now := metav1.Now()
	for i := range out {
		out[i].LastTransitionTime = now
		out[i].LastProbeTime = metav1.Time{}
		for _, p := range s.prevConditions {
			if p.Type == out[i].Type && p.Status == out[i].Status {
				out[i].LastTransitionTime = p.LastTransitionTime
			}
		}
	}
	return out
}

func anyAppStarted(list []corev1.ContainerStatus) bool {
	for _, cs := range list {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
	}
	return false
}
