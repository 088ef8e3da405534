package deployment

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func dep(replicas int32, strategy string, surge, unavail string) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	d.Name, d.Namespace, d.UID = "web", "default", "uid-web"
	d.Spec.Replicas = &replicas
	d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	d.Spec.Template.Labels = map[string]string{"app": "web"}
	d.Spec.Strategy.Type = appsv1.DeploymentStrategyType(strategy)
	if strategy == "RollingUpdate" {
		s, u := intstr.Parse(surge), intstr.Parse(unavail)
		d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &s, MaxUnavailable: &u}
	}
	return d
}

// rs is a ReplicaSet "web-<hash>" of revision rev with spec replicas and
// that many pods existing and available, created at minute rev.
func rs(hash string, rev int64, spec, pods, available int32) *appsv1.ReplicaSet {
	r := &appsv1.ReplicaSet{}
	r.Name = "web-" + hash
	r.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash}
	r.Annotations = map[string]string{RevisionAnnotation: fmt.Sprint(rev)}
	r.CreationTimestamp = metav1.NewTime(time.Unix(rev*60, 0))
	r.Spec.Replicas = &spec
	r.Status.Replicas, r.Status.ReadyReplicas, r.Status.AvailableReplicas = pods, available, available
	return r
}

// plan prints a Plan as "create web-new=N scale a=N,b=N delete x rev R".
func plan(p Plan) string {
	var parts []string
	if p.Create != nil {
		parts = append(parts, fmt.Sprintf("create %s=%d", p.Create.Name, *p.Create.Spec.Replicas))
	}
	if len(p.Scale) > 0 {
		var s []string
		for k, v := range p.Scale {
			s = append(s, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(s)
		parts = append(parts, "scale "+strings.Join(s, ","))
	}
	if len(p.Delete) > 0 {
		parts = append(parts, "delete "+strings.Join(p.Delete, ","))
	}
	return strings.Join(append(parts, "rev "+p.Revision), " ")
}

func TestSync(t *testing.T) {
	for _, tc := range []struct {
		name       string
		d          *appsv1.Deployment
		sets       []*appsv1.ReplicaSet
		oldRunning bool
		want       string
	}{
		{"first ReplicaSet gets every replica", dep(3, "RollingUpdate", "25%", "25%"), nil, false, "create web-new=3 rev 1"},
		{"steady: nothing to do", dep(3, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3)}, false, "rev 1"},
		{"scale up the only ReplicaSet", dep(5, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3)}, false, "scale web-new=5 rev 1"},
		{"scale down the new ReplicaSet at once", dep(2, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3)}, false, "scale web-new=2 rev 1"},

		// RollingUpdate, 3 replicas, maxSurge 1, maxUnavailable 0.
		{"rollout starts: the new ReplicaSet within maxSurge", dep(3, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("a", 1, 3, 3, 3)}, false, "create web-new=1 rev 2"},
		{"surge used, new pod not available: old ones stay", dep(3, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("a", 1, 3, 3, 3), rs("new", 2, 1, 1, 0)}, false, "rev 2"},
		{"new pod available: one old pod goes", dep(3, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("a", 1, 3, 3, 3), rs("new", 2, 1, 1, 1)}, false, "scale web-a=2 rev 2"},
		{"then the new ReplicaSet grows", dep(3, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("a", 1, 2, 2, 2), rs("new", 2, 1, 1, 1)}, false, "scale web-new=2 rev 2"},
		{"last old pod goes", dep(3, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("a", 1, 1, 1, 1), rs("new", 2, 3, 3, 3)}, false, "scale web-a=0 rev 2"},
		// maxSurge 0, maxUnavailable 1: old pods go first.
		{"no surge: an old pod goes first", dep(3, "RollingUpdate", "0", "1"), []*appsv1.ReplicaSet{rs("a", 1, 3, 3, 3), rs("new", 2, 0, 0, 0)}, false, "scale web-a=2 rev 2"},
		{"no surge: then a new one", dep(3, "RollingUpdate", "0", "1"), []*appsv1.ReplicaSet{rs("a", 1, 2, 2, 2), rs("new", 2, 0, 0, 0)}, false, "scale web-new=1 rev 2"},
		{"unhealthy old pods go before available ones", dep(4, "RollingUpdate", "0", "1"), []*appsv1.ReplicaSet{rs("a", 1, 4, 4, 2), rs("new", 2, 0, 0, 0)}, false, "scale web-a=3 rev 2"},
		{"oldest ReplicaSet scales down first", dep(2, "RollingUpdate", "0", "1"), []*appsv1.ReplicaSet{rs("b", 2, 1, 1, 1), rs("a", 1, 1, 1, 1), rs("new", 3, 0, 0, 0)}, false, "scale web-a=0 rev 3"},

		// Recreate.
		{"recreate: every old ReplicaSet to 0 first", dep(2, "Recreate", "", ""), []*appsv1.ReplicaSet{rs("a", 1, 2, 2, 2)}, false, "scale web-a=0 rev 2"},
		{"recreate: waits for old pods to terminate", dep(2, "Recreate", "", ""), []*appsv1.ReplicaSet{rs("a", 1, 0, 2, 0)}, true, "rev 2"},
		{"recreate: then the new ReplicaSet with every replica", dep(2, "Recreate", "", ""), []*appsv1.ReplicaSet{rs("a", 1, 0, 0, 0)}, false, "create web-new=2 rev 2"},

		// Revisions and history.
		{"a template rolled back to gets a new revision", dep(1, "RollingUpdate", "1", "0"), []*appsv1.ReplicaSet{rs("new", 1, 0, 0, 0), rs("b", 2, 1, 1, 1)}, false, "scale web-new=1 rev 3"},
		{"revisionHistoryLimit removes the oldest idle ReplicaSets", withHistory(dep(1, "RollingUpdate", "1", "0"), 1),
			[]*appsv1.ReplicaSet{rs("a", 1, 0, 0, 0), rs("b", 2, 0, 0, 0), rs("c", 3, 0, 0, 0), rs("new", 4, 1, 1, 1)}, false, "delete web-a,web-b rev 4"},
		{"history is kept while a rollout runs", withHistory(dep(1, "RollingUpdate", "1", "0"), 0),
			[]*appsv1.ReplicaSet{rs("a", 1, 0, 0, 0), rs("new", 2, 1, 1, 0)}, false, "rev 2"},

		// Paused.
		{"paused: no new ReplicaSet", paused(dep(3, "RollingUpdate", "1", "0")), []*appsv1.ReplicaSet{rs("a", 1, 3, 3, 3)}, false, "rev 2"},
		{"paused: scaling still happens", paused(dep(4, "RollingUpdate", "1", "0")), []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3)}, false, "scale web-new=4 rev 1"},
	} {
		got := plan(Sync(tc.d, "new", tc.sets, tc.oldRunning))
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func withHistory(d *appsv1.Deployment, n int32) *appsv1.Deployment {
	d.Spec.RevisionHistoryLimit = &n
	return d
}
func paused(d *appsv1.Deployment) *appsv1.Deployment { d.Spec.Paused = true; return d }

// TestRollingUpdateNeverDropsBelowMinimum plays a whole rollout, a new pod
// becoming available one step after it is created, and checks every step
// against maxSurge and maxUnavailable.
func TestRollingUpdateNeverDropsBelowMinimum(t *testing.T) {
	for _, f := range []struct{ surge, unavail string }{{"1", "0"}, {"0", "1"}, {"25%", "25%"}, {"2", "1"}, {"100%", "0"}} {
		d := dep(4, "RollingUpdate", f.surge, f.unavail)
		s, u := fenceposts(d)
		sets := []*appsv1.ReplicaSet{rs("a", 1, 4, 4, 4)}
		for step := 0; ; step++ {
			if step > 50 {
				t.Fatalf("%v: no end", f)
			}
			// Pods follow their ReplicaSets; new pods are available a step later.
			changed := false
			for _, r := range sets {
				before := r.Status
				if r.Status.Replicas < *r.Spec.Replicas {
					r.Status.AvailableReplicas = r.Status.Replicas
				} else {
					r.Status.AvailableReplicas = *r.Spec.Replicas
				}
				r.Status.Replicas = *r.Spec.Replicas
				changed = changed || before.Replicas != r.Status.Replicas || before.AvailableReplicas != r.Status.AvailableReplicas
			}
			var pods, avail int32
			for _, r := range sets {
				pods += r.Status.Replicas
				avail += r.Status.AvailableReplicas
			}
			if pods > 4+s || avail < 4-u {
				t.Fatalf("%v step %d: %d pods (max %d), %d available (min %d)", f, step, pods, 4+s, avail, 4-u)
			}
			p := Sync(d, "new", sets, false)
			if p.Create != nil {
				p.Create.CreationTimestamp = metav1.NewTime(time.Unix(1e6, 0))
				sets = append(sets, p.Create)
			}
			for _, r := range sets {
				if n, ok := p.Scale[r.Name]; ok {
					r.Spec.Replicas = &n
				}
			}
			if p.Create == nil && len(p.Scale) == 0 && !changed {
				if n := sets[len(sets)-1]; n.Name != "web-new" || n.Status.AvailableReplicas != 4 || *sets[0].Spec.Replicas != 0 {
					t.Errorf("%v: ended with %s at %d available, old at %d", f, n.Name, n.Status.AvailableReplicas, *sets[0].Spec.Replicas)
				}
				break
			}
		}
	}
}

func TestNewReplicaSet(t *testing.T) {
	d := dep(3, "RollingUpdate", "1", "0")
	d.Annotations = map[string]string{"team": "a", corev1.LastAppliedConfigAnnotation: "{}"}
	r := NewReplicaSet(d, "h4sh", "2", 1)
	if r.Name != "web-h4sh" || r.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != "h4sh" || r.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != "h4sh" ||
		r.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != "h4sh" || r.Spec.Template.Labels["app"] != "web" {
		t.Errorf("names and labels: %s %v %v %v", r.Name, r.Labels, r.Spec.Selector, r.Spec.Template.Labels)
	}
	if a := r.Annotations; a[RevisionAnnotation] != "2" || a[DesiredReplicasAnnotation] != "3" || a[MaxReplicasAnnotation] != "4" || a["team"] != "a" || a[corev1.LastAppliedConfigAnnotation] != "" {
		t.Errorf("annotations %v", a)
	}
	if ref := r.OwnerReferences[0]; ref.Kind != "Deployment" || ref.UID != "uid-web" || !*ref.Controller {
		t.Errorf("owner %+v", ref)
	}
	if d.Spec.Template.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != "" || d.Spec.Selector.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] != "" {
		t.Error("the Deployment was changed")
	}
}

func TestFenceposts(t *testing.T) {
	for _, tc := range []struct {
		replicas     int32
		surge, unavl string
		wantS, wantU int32
	}{{4, "25%", "25%", 1, 1}, {3, "25%", "25%", 1, 0}, {10, "35%", "35%", 4, 3}, {3, "0", "0", 0, 1}, {2, "0", "5", 0, 2}} {
		s, u := fenceposts(dep(tc.replicas, "RollingUpdate", tc.surge, tc.unavl))
		if s != tc.wantS || u != tc.wantU {
			t.Errorf("%d replicas, %s/%s: surge %d unavailable %d, want %d %d", tc.replicas, tc.surge, tc.unavl, s, u, tc.wantS, tc.wantU)
		}
	}
}

func TestStatus(t *testing.T) {
	t0 := time.Unix(1000, 0)
	cond := func(st appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType) string {
		c := findCondition(st.Conditions, typ)
		if c == nil {
			return "none"
		}
		return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	}
	d := dep(3, "RollingUpdate", "1", "0")
	st := Status(d, "new", []*appsv1.ReplicaSet{rs("new", 1, 3, 0, 0)}, true, t0)
	if got := cond(st, appsv1.DeploymentProgressing); got != `True/NewReplicaSetCreated: Created new replica set "web-new"` {
		t.Errorf("created: %s", got)
	}
	if got := cond(st, appsv1.DeploymentAvailable); got != "False/MinimumReplicasUnavailable: Deployment does not have minimum availability." {
		t.Errorf("created: %s", got)
	}
	d.Status = st
	st = Status(d, "new", []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 2)}, false, t0.Add(time.Second))
	if got := cond(st, appsv1.DeploymentProgressing); got != `True/ReplicaSetUpdated: ReplicaSet "web-new" is progressing.` {
		t.Errorf("progressing: %s", got)
	}
	d.Status = st
	st = Status(d, "new", []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3)}, false, t0.Add(2*time.Second))
	if got := cond(st, appsv1.DeploymentProgressing); got != `True/NewReplicaSetAvailable: ReplicaSet "web-new" has successfully progressed.` {
		t.Errorf("complete: %s", got)
	}
	if got := cond(st, appsv1.DeploymentAvailable); got != "True/MinimumReplicasAvailable: Deployment has minimum availability." {
		t.Errorf("complete: %s", got)
	}
	if st.Replicas != 3 || st.UpdatedReplicas != 3 || st.AvailableReplicas != 3 || st.UnavailableReplicas != 0 {
		t.Errorf("counts %+v", st)
	}
	if c := findCondition(st.Conditions, appsv1.DeploymentProgressing); !c.LastTransitionTime.Time.Equal(t0) || !c.LastUpdateTime.Time.Equal(t0.Add(2*time.Second)) {
		t.Errorf("Progressing stayed True: transition %s, update %s", c.LastTransitionTime, c.LastUpdateTime)
	}
	// A rollout that makes no progress past its deadline.
	pd := int32(5)
	d.Spec.ProgressDeadlineSeconds = &pd
	d.Status = Status(d, "new2", []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3), rs("new2", 2, 1, 1, 0)}, true, t0)
	st = Status(d, "new2", []*appsv1.ReplicaSet{rs("new", 1, 3, 3, 3), rs("new2", 2, 1, 1, 0)}, false, t0.Add(10*time.Second))
	if got := cond(st, appsv1.DeploymentProgressing); got != `False/ProgressDeadlineExceeded: ReplicaSet "web-new2" has timed out progressing.` {
		t.Errorf("deadline: %s", got)
	}
	if st.UpdatedReplicas != 1 || st.Replicas != 4 {
		t.Errorf("counts during a rollout %+v", st)
	}
	d.Spec.Paused = true
	if got := cond(Status(d, "new2", nil, false, t0), appsv1.DeploymentProgressing); got != "Unknown/DeploymentPaused: Deployment is paused" {
		t.Errorf("paused: %s", got)
	}
}
