package main

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

func TestRolloutStatusMessage(t *testing.T) {
	three := int32(3)
	for _, tc := range []struct {
		gen, observed                int64
		updated, replicas, available int32
		timedOut                     bool
		want                         string
		done, fails                  bool
	}{
		{gen: 2, observed: 1, want: "Waiting for deployment spec update to be observed..."},
		{gen: 1, observed: 1, updated: 1, replicas: 4, want: `Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...`},
		{gen: 1, observed: 1, updated: 3, replicas: 4, want: `Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...`},
		{gen: 1, observed: 1, updated: 3, replicas: 3, available: 2, want: `Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...`},
		{gen: 1, observed: 1, updated: 3, replicas: 3, available: 3, want: `deployment "web" successfully rolled out`, done: true},
		{gen: 1, observed: 1, timedOut: true, fails: true},
	} {
		d := &appsv1.Deployment{}
		d.Name, d.Generation, d.Spec.Replicas = "web", tc.gen, &three
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: tc.observed, UpdatedReplicas: tc.updated, Replicas: tc.replicas, AvailableReplicas: tc.available}
		if tc.timedOut {
			d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded"}}
		}
		msg, done, err := statusMessage(d)
		if (err != nil) != tc.fails || msg != tc.want || done != tc.done {
			t.Errorf("%+v: %q %t %v, want %q %t", d.Status, msg, done, err, tc.want, tc.done)
		}
	}
}

func TestRevisionOf(t *testing.T) {
	rs := func(name, rev string) appsv1.ReplicaSet {
		r := appsv1.ReplicaSet{}
		r.Name, r.Annotations = name, map[string]string{"deployment.kubernetes.io/revision": rev}
		return r
	}
	d := &appsv1.Deployment{}
	sets := []appsv1.ReplicaSet{rs("a", "1"), rs("c", "3"), rs("b", "2")}
	if got, err := revisionOf(d, sets, 0); err != nil || got.Name != "b" {
		t.Errorf("previous: %v %v, want b", got, err)
	}
	if got, err := revisionOf(d, sets, 1); err != nil || got.Name != "a" {
		t.Errorf("revision 1: %v %v, want a", got, err)
	}
	if _, err := revisionOf(d, sets, 7); err == nil {
		t.Error("revision 7 found")
	}
	if _, err := revisionOf(d, sets[:1], 0); err == nil {
		t.Error("a previous revision of a single ReplicaSet")
	}
}
