package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// readsConfig is a pod whose app logs "start", then "saw <greeting>" each time the
// configMap volume's file changes, and "sub <greeting>" for the same key
// mounted with subPath (which a refresh does not reach, as on the kubelet).
func readsConfig(t *testing.T, name string) *scenario {
	app := container("app", `trap 'exit 0' TERM; log start; last=; lastsub=; lastsec=
while true; do
  v=$(cat /conf/greeting); if [ "$v" != "$last" ]; then log "saw $v"; last=$v; fi
  v=$(cat /sub/greeting); if [ "$v" != "$lastsub" ]; then log "sub $v"; lastsub=$v; fi
  if [ -d /secret ]; then v=$(cat /secret/token); if [ "$v" != "$lastsec" ]; then log "secret $v"; lastsec=$v; fi; fi
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
func (s *scenario) waitLog(name, what string) { s.t.Helper(); s.waitLogN(name, what, 1) }

// waitLogN waits until the scenario's event log has "<name> <what>" n times.
func (s *scenario) waitLogN(name, what string, n int) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for len(readEvents(s.t, filepath.Join(s.dir, "events")).all(name, what)) < n {
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
	secret := func(token string) *corev1.Secret {
		return &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: metav1.ObjectMeta{Name: "creds"},
			StringData: map[string]string{"token": token}}
	}
	s.pod.Spec.Volumes = append(s.pod.Spec.Volumes, corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{
		Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}})
	app := &s.pod.Spec.Containers[0]
	app.VolumeMounts = append(app.VolumeMounts, corev1.VolumeMount{Name: "creds", MountPath: "/secret"})
	d.apply(configMap("hello"), secret("s1"), s.pod)
	before := d.waitPod("refresh", "Running", running)
	s.waitLog("app", "saw hello")
	s.waitLog("app", "sub hello")
	s.waitLog("app", "secret s1")

	if out := d.apply(configMap("hello again")); out != "configmap/conf configured\n" {
		t.Errorf("apply printed %q", out)
	}
	s.waitLog("app", "saw hello again")
	d.apply(secret("s2"))
	s.waitLog("app", "secret s2")
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

// save writes objects to file as an editor saves: a new file renamed over
// the old one.
func save(t *testing.T, file string, objs ...any) {
	t.Helper()
	tmpf := file + ".tmp"
	if err := os.WriteFile(tmpf, manifestYAML(t, objs), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpf, file); err != nil {
		t.Fatal(err)
	}
}

// TestRunWatchConfigMap: a ConfigMap edited under podrun run --watch
// reaches the running pod's volume; the container is not restarted.
func TestRunWatchConfigMap(t *testing.T) {
	s := readsConfig(t, "watchcm")
	file := filepath.Join(s.dir, "manifest.yaml")
	save(t, file, configMap("hello"), s.pod)
	bg := startFiles(t, s.dir, []string{file}, "--watch")
	bg.waitEvent("app", "saw hello")
	bg.waitStderr("run --watch: following")

	save(t, file, configMap("hello again"), s.pod)
	bg.waitEvent("app", "saw hello again")
	r := bg.interrupt()
	p := r.pod(t)
	if cs := status(p, "app"); cs == nil || cs.RestartCount != 0 {
		t.Errorf("app restarted: %+v", cs)
	}
	if n := len(r.ev.all("app", "start")); n != 1 {
		t.Errorf("the app started %d times, want once:\n%s", n, r.ev)
	}
	if len(r.ev.all("app", "sub hello again")) != 0 {
		t.Errorf("the subPath mount was refreshed; the kubelet leaves it:\n%s", r.ev)
	}
}

// TestRunWatchReplacesPod: a pod changed under podrun run --watch is
// replaced: the old one terminated, then the new one started.
func TestRunWatchReplacesPod(t *testing.T) {
	s := newScenario(t, "watchpod", corev1.RestartPolicyAlways)
	app := container("app", `trap 'log "exit $V"; exit 0' TERM; log "start $V"; while true; do sleep 1 & wait; done`)
	app.Env = append(app.Env, corev1.EnvVar{Name: "V", Value: "1"})
	s.app(app)
	file := filepath.Join(s.dir, "manifest.yaml")
	save(t, file, s.pod)
	bg := startFiles(t, s.dir, []string{file}, "--watch")
	bg.waitEvent("app", "start 1")
	bg.waitStderr("run --watch: following")

	s.pod.Spec.Containers[0].Env[1].Value = "2"
	save(t, file, s.pod)
	bg.waitEvent("app", "start 2")
	r := bg.interrupt()
	r.ev.order(t, "app start 1", "app exit 1", "app start 2", "app exit 2")
	_, after, ok := strings.Cut(r.stderr, "Pod/default/watchpod changed: replacing its pods")
	if !ok {
		t.Errorf("no note of the replacement:\n%s", r.stderr)
	}
	// The status lines go on with the new pod.
	if !regexpMatch(`(?m)^watchpod +0/1 +ContainerCreating[^\n]*\n(.*\n)*watchpod +1/1 +Running`, after) {
		t.Errorf("no status lines of the new pod after the replacement:\n%s", after)
	}
	if p := r.pod(t); p.Spec.Containers[0].Env[1].Value != "2" {
		t.Errorf("the final pod is not the new one: %+v", p.Spec.Containers[0].Env)
	}
}

// TestDaemonApplyWatch: podrun apply --watch against the daemon replaces a
// pod whose spec changed and refreshes the volume of a ConfigMap that
// changed, without restarting the container.
func TestDaemonApplyWatch(t *testing.T) {
	d := startDaemon(t)
	s := readsConfig(t, "applywatch")
	s.pod.Spec.Containers[0].Env = append(s.pod.Spec.Containers[0].Env, corev1.EnvVar{Name: "V", Value: "1"})
	file := filepath.Join(s.dir, "manifest.yaml")
	save(t, file, configMap("hello"), s.pod)
	cmd := exec.Command(bin, "apply", "--socket", d.sock, "--watch", "-f", file)
	out, done := startWatch(t, cmd)
	first := d.waitPod("applywatch", "Running", running)
	s.waitLog("app", "saw hello")

	save(t, file, configMap("hello again"), s.pod)
	s.waitLog("app", "saw hello again")
	p, err := d.cl.Pod(t.Context(), "default", "applywatch")
	if err != nil {
		t.Fatal(err)
	}
	sameInstance(t, first, p)

	s.pod.Spec.Containers[0].Env[1].Value = "2"
	save(t, file, configMap("hello again"), s.pod)
	second := d.waitPod("applywatch", "replaced", func(p *corev1.Pod) bool {
		return p.UID != first.UID && running(p)
	})
	if v := second.Spec.Containers[0].Env[1].Value; v != "2" {
		t.Errorf("the new pod has V=%s", v)
	}
	s.waitLogN("app", "start", 2) // the old pod's, then its replacement's
	if n := len(readEvents(t, filepath.Join(s.dir, "events")).all("app", "start")); n != 2 {
		t.Errorf("the app started %d times, want twice (the old pod, then its replacement)", n)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	<-done
	if !strings.Contains(out.String(), "pod/applywatch replaced") || !strings.Contains(out.String(), "configmap/conf configured") {
		t.Errorf("apply --watch printed:\n%s", out.String())
	}
	d.must("delete", "pod", "applywatch", "--now")
}
