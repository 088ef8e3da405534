package integration

import (
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// configMap is the ConfigMap "conf" with one key, greeting.
func configMap(greeting string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "conf"},
		Data:       map[string]string{"greeting": greeting},
	}
}

// readsConfig is a pod whose app logs "saw <greeting>" each time the
// configMap volume's file changes, and "sub <greeting>" for the same key
// mounted with subPath (which a refresh does not reach, as on the kubelet).
func readsConfig(t *testing.T, name string) *scenario {
	app := container("app", `trap 'exit 0' TERM; last=; lastsub=
while true; do
  v=$(cat /conf/greeting); if [ "$v" != "$last" ]; then log "saw $v"; last=$v; fi
  v=$(cat /sub/greeting); if [ "$v" != "$lastsub" ]; then log "sub $v"; lastsub=$v; fi
  sleep 0.05 & wait
done`)
	app.VolumeMounts = append(app.VolumeMounts,
		corev1.VolumeMount{Name: "conf", MountPath: "/conf"},
		corev1.VolumeMount{Name: "conf", MountPath: "/sub/greeting", SubPath: "greeting"})
	s := newScenario(t, name, corev1.RestartPolicyAlways).app(app)
	s.pod.Spec.Volumes = append(s.pod.Spec.Volumes, corev1.Volume{Name: "conf", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "conf"}}}})
	return s
}

// waitLog waits until the scenario's event log has "<name> <what>".
func (s *scenario) waitLog(name, what string) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for len(readEvents(s.t, filepath.Join(s.dir, "events")).all(name, what)) == 0 {
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q %q in the event log after 2 minutes:\n%s", name, what, readEvents(s.t, filepath.Join(s.dir, "events")))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameInstance fails unless the app container of after is the one of
// before, never restarted.
func sameInstance(t *testing.T, before, after *corev1.Pod) {
	t.Helper()
	b, a := status(before, "app"), status(after, "app")
	if a == nil || b == nil || a.ContainerID != b.ContainerID || a.RestartCount != 0 || a.State.Running == nil {
		t.Errorf("the container was restarted: before %+v\nafter %+v", b, a)
	}
}

// TestDaemonConfigMapRefresh: a ConfigMap changed with podrun apply reaches
// the running pod's volume (the kubelet's refresh: a new ..data swapped
// in), the container keeps running, and a subPath mount keeps the old
// content.
func TestDaemonConfigMapRefresh(t *testing.T) {
	d := startDaemon(t)
	s := readsConfig(t, "refresh")
	d.apply(configMap("hello"), s.pod)
	before := d.waitPod("refresh", "Running", running)
	s.waitLog("app", "saw hello")
	s.waitLog("app", "sub hello")

	if out := d.apply(configMap("hello again")); out != "configmap/conf configured\n" {
		t.Errorf("apply printed %q", out)
	}
	s.waitLog("app", "saw hello again")
	p, err := d.cl.Pod(t.Context(), "default", "refresh")
	if err != nil {
		t.Fatal(err)
	}
	sameInstance(t, before, p)
	if ev := readEvents(t, filepath.Join(s.dir, "events")); len(ev.all("app", "sub hello again")) != 0 {
		t.Errorf("the subPath mount was refreshed; the kubelet leaves it:\n%s", ev)
	}

	// Deleting the ConfigMap leaves the volume as it was.
	d.must("delete", "configmap", "conf")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		out := d.must("describe", "pod", "refresh")
		if regexpMatch(`FailedMount[^\n]*configMap "conf" not found`, out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no FailedMount event after the ConfigMap was deleted:\n%s", out)
		}
	}
	if got := readEvents(t, filepath.Join(s.dir, "events")).all("app", "saw "); len(got) != 0 {
		t.Errorf("the volume was emptied when its ConfigMap went")
	}
	d.must("delete", "pod", "refresh", "--now")
}
