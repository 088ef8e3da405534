package daemon

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/shim"
)

// TestEventsWatched: a pod's events are watched, each change with a newer
// resourceVersion that lists show too; an event reported again unchanged
// is no change; they are deleted with the pod.
func TestEventsWatched(t *testing.T) {
	d := testDaemon(t)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "u1", ResourceVersion: "1"}}
	rec := newPodRec(p, shim.Dir(t.TempDir()))
	d.pods[rec.key()] = rec
	ch, err := d.Watch(t.Context(), api.Events, "default")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	started := pod.Event{Type: pod.EventNormal, Reason: "Started", Message: "Started container app", First: now, Last: now, Count: 1}
	backoff := pod.Event{Type: pod.EventWarning, Reason: "BackOff", Message: "Back-off restarting failed container", First: now.Add(time.Second), Last: now.Add(time.Second), Count: 1}
	next := func(want string) *corev1.Event {
		t.Helper()
		select {
		case ev := <-ch:
			e := ev.Object.(*corev1.Event)
			if got := ev.Type + " " + e.Reason; got != want {
				t.Fatalf("event %s, want %s", got, want)
			}
			return e
		default:
			t.Fatalf("no %s", want)
		}
		return nil
	}
	d.mu.Lock()
	d.setEvents(rec, []pod.Event{started})
	a := next("ADDED Started")
	d.setEvents(rec, []pod.Event{started, backoff})
	b := next("ADDED BackOff")
	backoff.Count, backoff.Last = 2, backoff.Last.Add(time.Second)
	d.setEvents(rec, []pod.Event{started, backoff})
	m := next("MODIFIED BackOff")
	d.mu.Unlock()
	if rvOf(t, a) >= rvOf(t, b) || rvOf(t, b) >= rvOf(t, m) || m.Count != 2 || m.InvolvedObject.UID != "u1" {
		t.Errorf("resourceVersions %s %s %s, count %d, involved %v", a.ResourceVersion, b.ResourceVersion, m.ResourceVersion, m.Count, m.InvolvedObject)
	}
	if len(ch) != 0 {
		t.Errorf("the unchanged Started was sent again")
	}
	listed, _ := d.List(api.Events, "default")
	if len(listed) != 2 || listed[0].GetResourceVersion() != a.ResourceVersion && listed[1].GetResourceVersion() != a.ResourceVersion {
		t.Errorf("listed %v", listed)
	}
	d.mu.Lock()
	d.dropEvents(rec)
	d.mu.Unlock()
	for range 2 {
		if ev := <-ch; ev.Type != "DELETED" || rvOf(t, ev.Object.(*corev1.Event)) <= rvOf(t, m) {
			t.Errorf("%s %s, want DELETED after %s", ev.Type, ev.Object.GetResourceVersion(), m.ResourceVersion)
		}
	}
}

func rvOf(t *testing.T, e *corev1.Event) int64 {
	t.Helper()
	v, err := parseRV(e.ResourceVersion)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
