package kubectl

import (
	"fmt"
	"strconv"
	"time"

	"github.com/podrun/podrun/internal/podspec"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// PodRow is one line of `kubectl get pods` (-o wide adds IP and Node).
type PodRow struct {
	Name, Ready, Status, Restarts, Age string
	IP, Node                           string
}

// Row computes a pod's columns exactly as kubectl's printPod does,
// sidecars included (SEMANTICS §7.4).
func Row(p *corev1.Pod, now time.Time) PodRow {
	var all, sidecars tally
	total := len(p.Spec.Containers)
	ready := 0

	reason := string(p.Status.Phase)
	if p.Status.Reason != "" {
		reason = p.Status.Reason
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			reason = corev1.PodReasonSchedulingGated
		}
	}
	sidecar := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if podspec.IsSidecar(&c) {
			sidecar[c.Name] = true
			total++
		}
	}

	initializing := false
	for i, cs := range p.Status.InitContainerStatuses {
		all.add(cs)
		if sidecar[cs.Name] {
			sidecars.add(cs)
		}
		switch {
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			continue
		case sidecar[cs.Name] && cs.Started != nil && *cs.Started:
			if cs.Ready {
				ready++
			}
			continue
		}
		reason = initReason(cs, i, len(p.Spec.InitContainers))
		initializing = true
		break
	}

	if !initializing || conditionTrue(p, corev1.PodInitialized) {
		all = sidecars
		hasRunning := false
		for i := len(p.Status.ContainerStatuses) - 1; i >= 0; i-- {
			cs := p.Status.ContainerStatuses[i]
			all.add(cs)
			switch t := cs.State.Terminated; {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				reason = cs.State.Waiting.Reason
			case t != nil && t.Reason != "":
				reason = t.Reason
			case t != nil && t.Signal != 0:
				reason = fmt.Sprintf("Signal:%d", t.Signal)
			case t != nil:
				reason = fmt.Sprintf("ExitCode:%d", t.ExitCode)
			case cs.Ready && cs.State.Running != nil:
				hasRunning = true
				ready++
			}
		}
		if reason == "Completed" && hasRunning {
			reason = "NotReady"
			if conditionTrue(p, corev1.PodReady) {
				reason = "Running"
			}
		}
	}
	if p.DeletionTimestamp != nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
		reason = "Terminating"
	}

	r := PodRow{
		Name:     p.Name,
		Ready:    fmt.Sprintf("%d/%d", ready, total),
		Status:   reason,
		Restarts: strconv.Itoa(all.restarts),
		Age:      Since(p.CreationTimestamp, now),
		IP:       "<none>",
		Node:     "<none>",
	}
	if all.restarts != 0 && !all.last.IsZero() {
		r.Restarts = fmt.Sprintf("%d (%s ago)", all.restarts, duration.HumanDuration(now.Sub(all.last)))
	}
	if len(p.Status.PodIPs) > 0 {
		r.IP = p.Status.PodIPs[0].IP
	}
	if p.Spec.NodeName != "" {
		r.Node = p.Spec.NodeName
	}
	return r
}

// tally counts restarts and the time of the latest one, as printPod does.
type tally struct {
	restarts int
	last     time.Time
}

func (t *tally) add(cs corev1.ContainerStatus) {
	t.restarts += int(cs.RestartCount)
	if term := cs.LastTerminationState.Terminated; term != nil && t.last.Before(term.FinishedAt.Time) {
		t.last = term.FinishedAt.Time
	}
}

// initReason is the STATUS of a pod held by its i-th of n init containers.
func initReason(cs corev1.ContainerStatus, i, n int) string {
	switch t := cs.State.Terminated; {
	case t != nil && t.Reason != "":
		return "Init:" + t.Reason
	case t != nil && t.Signal != 0:
		return fmt.Sprintf("Init:Signal:%d", t.Signal)
	case t != nil:
		return fmt.Sprintf("Init:ExitCode:%d", t.ExitCode)
	case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "PodInitializing":
		return "Init:" + cs.State.Waiting.Reason
	}
	return fmt.Sprintf("Init:%d/%d", i, n)
}

func conditionTrue(p *corev1.Pod, t corev1.PodConditionType) bool {
	c := podspec.Condition(&p.Status, t)
	return c != nil && c.Status == corev1.ConditionTrue
}

// Since is kubectl's translateTimestampSince.
func Since(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}
