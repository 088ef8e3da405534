package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

// rolloutDeployment has a sidecar that logs "<version> Starting" and
// "<version> Exiting" and an app that becomes ready 0.3 s after it starts.
func rolloutDeployment(s *scenario, name string, replicas int32, version string, strategy appsv1.DeploymentStrategy) *appsv1.Deployment {
	always := corev1.ContainerRestartPolicyAlways
	side := container("side", fmt.Sprintf(`trap 'log %[1]s Exiting; exit 0' TERM; log %[1]s Starting; while true; do sleep 1 & wait; done`, version))
	side.RestartPolicy = &always
	app := container("app", `trap 'exit 0' TERM; sleep 0.3; touch /tmp/ready; while true; do sleep 1 & wait; done`)
	app.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"test", "-f", "/tmp/ready"}}}, PeriodSeconds: 1}
	tgps := int64(5)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels}, Strategy: strategy,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{side}, Containers: []corev1.Container{app},
				Volumes: s.pod.Spec.Volumes, TerminationGracePeriodSeconds: &tgps,
			}},
		},
	}
}

// waitRolledOut waits until the Deployment has every replica updated and
// available, with Progressing NewReplicaSetAvailable, and no other pod.
func (d *daemonProc) waitRolledOut(name string, replicas int32) *appsv1.Deployment {
	d.t.Helper()
	var dep appsv1.Deployment
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		err := d.cl.Get(context.Background(), api.Deployments, "default", name, &dep)
		var pods corev1.PodList
		if err == nil {
			err = d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "app=" + name}, &pods)
		}
		st := dep.Status
		if err == nil && st.ObservedGeneration == dep.Generation && st.UpdatedReplicas == replicas && st.AvailableReplicas == replicas &&
			st.Replicas == replicas && len(pods.Items) == int(replicas) && progressing(&dep) == "NewReplicaSetAvailable" {
			return &dep
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s did not roll out: %+v %v\n%s\n%s", name, st, err, d.must("get", "rs"), d.must("get", "pods"))
		}
	}
}

func progressing(dep *appsv1.Deployment) string {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing {
			return c.Reason
		}
	}
	return ""
}

// TestDaemonRollingUpdate: changing the sidecar's command rolls the
// Deployment out under RollingUpdate (maxSurge 1, maxUnavailable 1) without
// ever fewer than replicas − maxUnavailable Ready pods, sampled through the
// API; the old ReplicaSet stays, scaled to 0, and the revision is 2.
func TestDaemonRollingUpdate(t *testing.T) {
	d := startDaemon(t)
	s := newScenario(t, "unused", corev1.RestartPolicyAlways)
	one := intstr.FromInt32(1)
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &one}}
	d.apply(rolloutDeployment(s, "roll", 3, "v1", strategy))
	d.waitRolledOut("roll", 3)

	var mu sync.Mutex
	fewest, most, samples := 3, 0, 0
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var pods corev1.PodList
			if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "app=roll"}, &pods); err != nil {
				continue
			}
			ready, live := 0, 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodPending {
					continue
				}
				live++
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			mu.Lock()
			fewest, most, samples = min(fewest, ready), max(most, live), samples+1
			mu.Unlock()
		}
	}()
	if out := d.apply(rolloutDeployment(s, "roll", 3, "v2", strategy)); !strings.Contains(out, "configured") {
		t.Fatalf("apply of a changed template: %s", out)
	}
	dep := d.waitRolledOut("roll", 3)
	close(stop)
	<-sampled
	mu.Lock()
	defer mu.Unlock()
	if fewest < 2 || samples < 10 {
		t.Errorf("%d Ready pods at the fewest over %d samples, want at least 2 (replicas − maxUnavailable)", fewest, samples)
	}
	if most > 4 {
		t.Errorf("%d live pods at the most, want at most 4 (replicas + maxSurge)", most)
	}
	if rev := dep.Annotations["deployment.kubernetes.io/revision"]; rev != "2" {
		t.Errorf("revision %q, want 2", rev)
	}
	var sets appsv1.ReplicaSetList
	if err := d.cl.List(context.Background(), api.ReplicaSets, "default", client.Selector{}, &sets); err != nil || len(sets.Items) != 2 {
		t.Fatalf("ReplicaSets %v %v", len(sets.Items), err)
	}
	for _, rs := range sets.Items {
		rev, want := rs.Annotations["deployment.kubernetes.io/revision"], int32(0)
		if rev == "2" {
			want = 3
		}
		if *rs.Spec.Replicas != want || rs.Status.Replicas != want || !strings.HasPrefix(rs.Name, "roll-") || rs.OwnerReferences[0].UID != dep.UID {
			t.Errorf("ReplicaSet %s revision %s: %d/%d replicas, want %d", rs.Name, rev, *rs.Spec.Replicas, rs.Status.Replicas, want)
		}
	}
	if out := d.must("get", "rs"); !regexpMatch(`roll-\w+ +3 +3 +3`, out) || !regexpMatch(`roll-\w+ +0 +0 +0`, out) {
		t.Errorf("get rs:\n%s", out)
	}
	ev := readEvents(t, s.dir+"/events")
	if n := len(ev.all("side", "v1 Exiting")); n != 3 {
		t.Errorf("%d v1 pods stopped, want 3:\n%v", n, ev)
	}

	// The client's rollout and scale verbs.
	if out := d.must("rollout", "status", "deployment/roll"); !strings.Contains(out, `deployment "roll" successfully rolled out`) {
		t.Errorf("rollout status: %s", out)
	}
	if out := d.must("rollout", "undo", "deployment/roll"); out != "deployment.apps/roll rolled back\n" {
		t.Errorf("rollout undo: %q", out)
	}
	dep = d.waitRolledOut("roll", 3)
	if rev := dep.Annotations["deployment.kubernetes.io/revision"]; rev != "3" || !strings.Contains(strings.Join(dep.Spec.Template.Spec.InitContainers[0].Command, " "), "v1 Starting") {
		t.Errorf("after undo: revision %q, sidecar %v", rev, dep.Spec.Template.Spec.InitContainers[0].Command)
	}
	if out := d.must("scale", "deployment/roll", "--replicas", "2"); out != "deployment.apps/roll scaled\n" {
		t.Errorf("scale: %q", out)
	}
	d.waitRolledOut("roll", 2)
	d.must("delete", "deployment", "roll")
	d.waitNoPods("app=roll")
}

// TestDaemonRecreate: under Recreate, every old pod has stopped before the
// first new one starts.
func TestDaemonRecreate(t *testing.T) {
	d := startDaemon(t)
	s := newScenario(t, "unused", corev1.RestartPolicyAlways)
	strategy := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	d.apply(rolloutDeployment(s, "rec", 2, "v1", strategy))
	d.waitRolledOut("rec", 2)
	d.apply(rolloutDeployment(s, "rec", 2, "v2", strategy))
	d.waitRolledOut("rec", 2)
	ev := readEvents(t, s.dir+"/events")
	stopped, started := ev.all("side", "v1 Exiting"), ev.all("side", "v2 Starting")
	if len(stopped) != 2 || len(started) != 2 {
		t.Fatalf("%d v1 pods stopped, %d v2 started, want 2 and 2:\n%v", len(stopped), len(started), ev)
	}
	if last, first := max(stopped[0], stopped[1]), min(started[0], started[1]); last >= first {
		t.Errorf("a v2 pod started at %.2f, before the last v1 pod stopped at %.2f", first, last)
	}
	d.must("delete", "deployment", "rec")
	d.waitNoPods("app=rec")
}

func (d *daemonProc) waitNoPods(sel string) {
	d.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var pods corev1.PodList
		if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: sel}, &pods); err == nil && len(pods.Items) == 0 {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("pods %s remain", sel)
		}
	}
}
