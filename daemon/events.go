package daemon

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/pod"
)

// podEvent is a supervisor's event as a core/v1 Event about the pod.
func podEvent(p *corev1.Pod, e *pod.Event, i int, rv string) *corev1.Event {
	host := p.Spec.NodeName
	return &corev1.Event{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", p.Name, e.First.UnixNano()+int64(i)), Namespace: p.Namespace,
			ResourceVersion: rv, CreationTimestamp: metav1.NewTime(e.First)},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: p.Namespace, Name: p.Name,
			UID: p.UID, FieldPath: e.FieldPath},
		Reason: e.Reason, Message: e.Message, Type: e.Type, Count: e.Count,
		FirstTimestamp: metav1.NewTime(e.First), LastTimestamp: metav1.NewTime(e.Last),
		Source:              corev1.EventSource{Component: "kubelet", Host: host},
		ReportingController: "podrun", ReportingInstance: host,
	}
}

// eventObjects are the pod's events as core/v1 Events (d.mu held). An
// event keeps the resourceVersion of its last change; one not changed
// since the daemon started has the pod's, which is not newer than the
// daemon's start.
func (r *podRec) eventObjects() []*corev1.Event {
	out := make([]*corev1.Event, len(r.events))
	for i := range r.events {
		out[i] = podEvent(r.pod, &r.events[i], i, "")
		if rv, ok := r.eventRVs[out[i].Name]; ok {
			out[i].ResourceVersion = rv
		} else {
			out[i].ResourceVersion = r.loadedRV
		}
	}
	return out
}

// setEvents takes the events a shim reported and tells the watchers of
// events what changed, each change with its resourceVersion (d.mu held).
func (d *Daemon) setEvents(rec *podRec, evs []pod.Event) {
	old := map[string]*corev1.Event{}
	for _, e := range rec.eventObjects() {
		old[e.Name] = e
	}
	rec.events = evs
	rvs := map[string]string{}
	for _, e := range rec.eventObjects() {
		prev := old[e.Name]
		delete(old, e.Name)
		if prev != nil && prev.Count == e.Count && prev.LastTimestamp.Equal(&e.LastTimestamp) && prev.Message == e.Message {
			rvs[e.Name] = prev.ResourceVersion
			continue
		}
		e.ResourceVersion = d.nextRV()
		rvs[e.Name] = e.ResourceVersion
		typ := "MODIFIED"
		if prev == nil {
			typ = "ADDED"
		}
		d.emit(api.Events, typ, e)
	}
	rec.eventRVs = rvs
	for _, e := range old {
		d.emit(api.Events, "DELETED", e)
	}
}

// dropEvents tells the watchers of events that a pod's are gone with it
// (d.mu held).
func (d *Daemon) dropEvents(rec *podRec) {
	for _, e := range rec.eventObjects() {
		d.emit(api.Events, "DELETED", e)
	}
}
