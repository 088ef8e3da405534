package daemon

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/manifest"
	"github.com/podrun/podrun/node"
	"github.com/podrun/podrun/shim"
)

// testStore is a store in dir whose queued writes are on disk before dir
// is removed (cleanups run last registered first, after dir's own).
func testStore(t *testing.T, dir string) *store {
	s := newStore(dir, slog.Default().Error)
	t.Cleanup(s.flush)
	return s
}

// testDaemon is a daemon without a node: enough for what decides, not for
// what runs pods.
func testDaemon(t *testing.T) *Daemon {
	return &Daemon{
		log: slog.Default(), store: testStore(t, t.TempDir()),
		cfg:         Config{Node: node.Config{RunRoot: t.TempDir()}},
		pods:        map[key]*podRec{},
		deployments: map[key]*appsv1.Deployment{},
		replicaSets: map[key]*appsv1.ReplicaSet{},
		jobs:        map[key]*jobRec{},
		configMaps:  map[key]*corev1.ConfigMap{},
		secrets:     map[key]*corev1.Secret{},
		watchers:    map[*watcher]struct{}{},
	}
}

const podYAML = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: busybox:1
    command: [sleep, "3600"]
    envFrom:
    - configMapRef: {name: settings}
`

func TestParseFindsStoredConfigMaps(t *testing.T) {
	d := testDaemon(t)
	if _, err := d.parse("pod.yaml", []byte(podYAML)); err == nil {
		t.Fatal("a missing ConfigMap was not an error")
	}
	d.configMaps[keyOf("default", "settings")] = &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default", UID: "u", ResourceVersion: "4"},
		Data:       map[string]string{"LEVEL": "debug"},
	}
	b, err := d.parse("pod.yaml", []byte(podYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Pods) != 1 || len(b.ConfigMaps) != 0 || len(b.Objects) != 1 {
		t.Errorf("%d pods, %d configmaps, %d objects: the stored ConfigMap must not be applied again", len(b.Pods), len(b.ConfigMaps), len(b.Objects))
	}
	// Errors keep the positions of the user's file.
	_, err = d.parse("pod.yaml", []byte(strings.Replace(podYAML, "image: busybox:1", "image: ''", 1)))
	if err == nil || !strings.Contains(err.Error(), "pod.yaml:8") {
		t.Errorf("err %v, want one at pod.yaml:8", err)
	}
	// A manifest that defines the ConfigMap itself wins over the stored one.
	both := podYAML + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {LEVEL: info}\n"
	if b, err = d.parse("both.yaml", []byte(both)); err != nil || len(b.ConfigMaps) != 1 || b.ConfigMaps[0].Data["LEVEL"] != "info" {
		t.Errorf("configmaps %v, err %v", b.ConfigMaps, err)
	}
}

func TestApplyChangesOnlyWhatANodeCan(t *testing.T) {
	d := testDaemon(t)
	d.configMaps[keyOf("default", "settings")] = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: "default"}}
	b, err := d.parse("pod.yaml", []byte(podYAML))
	if err != nil {
		t.Fatal(err)
	}
	rec := newPodRec(b.Pods[0].Pod, shim.Dir(t.TempDir()))
	d.pods[rec.key()] = rec
	ctx := context.Background()

	got, err := d.Apply(ctx, "pod.yaml", []byte(podYAML))
	if err != nil || len(got) != 1 || got[0].Action != "unchanged" {
		t.Fatalf("re-apply: %v %v, want unchanged", got, err)
	}
	got, err = d.Apply(ctx, "pod.yaml", []byte(strings.Replace(podYAML, "busybox:1", "busybox:2", 1)))
	if err != nil || got[0].Action != "configured" {
		t.Fatalf("new image: %v %v, want configured", got, err)
	}
	if img := rec.pod.Spec.Containers[0].Image; img != "busybox:2" {
		t.Errorf("image %s after the update", img)
	}
	select {
	case <-rec.kick:
	default:
		t.Error("the pod's owner was not told to pass the new image on")
	}
	_, err = d.Apply(ctx, "pod.yaml", []byte(strings.Replace(podYAML, `"3600"`, `"60"`, 1)))
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.containers[0].command[1]") {
		t.Errorf("changed command: %v, want Invalid naming spec.containers[0].command[1]", err)
	}
	if img := rec.pod.Spec.Containers[0].Image; img != "busybox:2" {
		t.Errorf("a refused apply changed the pod (image %s)", img)
	}
	// With force the same change replaces the pod: deleted now, created
	// again once the old one is gone.
	got, err = d.ApplyForce(ctx, "pod.yaml", []byte(strings.Replace(podYAML, `"3600"`, `"60"`, 1)))
	if err != nil || got[0].Action != "replaced" {
		t.Fatalf("forced apply of a changed command: %v %v, want replaced", got, err)
	}
	if !rec.deleting {
		t.Error("the old pod was not deleted")
	}
}

func TestSpecDiff(t *testing.T) {
	a := &corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Args: []string{"x"}}}, RestartPolicy: "Always"}
	b := a.DeepCopy()
	if d := specDiff(a, b); len(d) != 0 {
		t.Errorf("equal specs differ: %v", d)
	}
	b.Containers[0].Args = []string{"y"}
	b.RestartPolicy = "Never"
	b.Containers = append(b.Containers, corev1.Container{Name: "b"})
	if d := strings.Join(specDiff(a, b), " "); d != "spec.containers spec.restartPolicy" {
		t.Errorf("diff %q", d)
	}
}

func TestWillRestart(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init"}, {Name: "side", RestartPolicy: &always}},
		Containers:     []corev1.Container{{Name: "app"}},
	}}
	for _, tc := range []struct {
		rp   corev1.RestartPolicy
		name string
		code int32
		want bool
	}{
		{corev1.RestartPolicyAlways, "app", 0, true},
		{corev1.RestartPolicyOnFailure, "app", 0, false},
		{corev1.RestartPolicyOnFailure, "app", 1, true},
		{corev1.RestartPolicyNever, "app", 1, false},
		{corev1.RestartPolicyAlways, "init", 0, false},
		{corev1.RestartPolicyAlways, "init", 1, true},
		{corev1.RestartPolicyNever, "init", 1, false},
		{corev1.RestartPolicyNever, "side", 0, true},
	} {
		p.Spec.RestartPolicy = tc.rp
		if got := willRestart(p, tc.name, tc.code); got != tc.want {
			t.Errorf("%s %s exit %d: %v, want %v", tc.rp, tc.name, tc.code, got, tc.want)
		}
	}
	now := metav1.Now()
	p.Spec.RestartPolicy, p.DeletionTimestamp = corev1.RestartPolicyAlways, &now
	if willRestart(p, "app", 1) {
		t.Error("a container of a pod being deleted restarts")
	}
}

func TestLogLines(t *testing.T) {
	const file = "2026-01-02T03:04:05.000000001Z stdout F one\n" +
		"2026-01-02T03:04:06.000000001Z stdout P tw\n" +
		"2026-01-02T03:04:06.500000001Z stdout F o\n" +
		"2026-01-02T03:04:07.000000001Z stderr F three\n" +
		"2026-01-02T03:04:08.000000001Z stdout F fo"
	read := func(o *corev1.PodLogOptions, since time.Time, tail int) string {
		var out strings.Builder
		l := &logLines{o: o, w: bufio.NewWriter(&out), since: since, buffer: tail >= 0, tail: tail}
		br := bufio.NewReader(strings.NewReader(file))
		if err := l.readAll(br); err != nil {
			t.Fatal(err)
		}
		if err := l.flushTail(); err != nil {
			t.Fatal(err)
		}
		// The unterminated last line waits for its end.
		if err := l.readAll(bufio.NewReader(strings.NewReader("ur\n"))); err != nil {
			t.Fatal(err)
		}
		l.w.Flush()
		return out.String()
	}
	if got := read(&corev1.PodLogOptions{}, time.Time{}, -1); got != "one\ntwo\nthree\nfour\n" {
		t.Errorf("plain: %q", got)
	}
	if got := read(&corev1.PodLogOptions{Timestamps: true}, time.Time{}, 1); got != "2026-01-02T03:04:07.000000001Z three\n2026-01-02T03:04:08.000000001Z four\n" {
		t.Errorf("tail 1 with timestamps: %q", got)
	}
	since, _ := time.Parse(time.RFC3339, "2026-01-02T03:04:06Z")
	if got := read(&corev1.PodLogOptions{}, since, -1); got != "two\nthree\nfour\n" {
		t.Errorf("since: %q", got)
	}
}

func TestInvalidListsManifestErrors(t *testing.T) {
	_, err := manifest.Parse("x.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: A}\nspec: {}\n"))
	if err == nil {
		t.Fatal("an invalid pod parsed")
	}
	st := invalid(err, "")
	if !apierrors.IsInvalid(st) {
		t.Fatalf("%v is not Invalid", st)
	}
	if p := api.Problems(st); len(p) < 2 || !strings.HasPrefix(p[0], "x.yaml:") {
		t.Errorf("problems %q, want one per error, each with its position", p)
	}
}

func TestLogLinesReadRotatedFilesInOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	rec := func(text string) string { return "2026-01-02T03:04:05.000000001Z stdout F " + text + "\n" }
	for name, content := range map[string]string{
		"0.log.20260102-030405.000000001": rec("one"),
		"0.log.20260102-030406.000000001": rec("two"),
		"0.log.not-a-rotation":            rec("never"),
		"0.log":                           rec("three"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	l := &logLines{o: &corev1.PodLogOptions{}, w: bufio.NewWriter(&out)}
	if err := l.readRotated(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := l.readAll(bufio.NewReader(f)); err != nil {
		t.Fatal(err)
	}
	l.w.Flush()
	if got := out.String(); got != "one\ntwo\nthree\n" {
		t.Errorf("read %q, want the rotated files oldest first, then the current one", got)
	}
	// The writer rotates: path is a new file; the old one is still open.
	if err := os.Rename(path, path+".20260102-030407.000000001"); err != nil {
		t.Fatal(err)
	}
	if rotated(f, path) {
		t.Error("rotated before the new file exists")
	}
	if err := os.WriteFile(path, []byte(rec("four")), 0o600); err != nil {
		t.Fatal(err)
	}
	if !rotated(f, path) {
		t.Error("a rotation went unnoticed")
	}
}

func TestLogLinesBoundPartialLines(t *testing.T) {
	var b strings.Builder
	chunk := strings.Repeat("x", 16<<10)
	for range 2 * maxJoinedLine / len(chunk) {
		b.WriteString("2026-01-02T03:04:05.000000001Z stdout P " + chunk + "\n")
	}
	b.WriteString("2026-01-02T03:04:06.000000001Z stdout F end\n")
	var out strings.Builder
	l := &logLines{o: &corev1.PodLogOptions{}, w: bufio.NewWriter(&out)}
	if err := l.readAll(bufio.NewReader(strings.NewReader(b.String()))); err != nil {
		t.Fatal(err)
	}
	l.w.Flush()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 || len(lines[0]) != maxJoinedLine || len(lines[1]) != maxJoinedLine || lines[2] != "end" {
		var lens []int
		for _, s := range lines {
			lens = append(lens, len(s))
		}
		t.Errorf("lines of %v bytes, want two of %d then \"end\"", lens, maxJoinedLine)
	}
}

// TestResourceVersionNeverGoesBack: a deletion has its own
// resourceVersion, and a restarted daemon (whose newest object may be
// gone) hands out higher ones than before.
func TestResourceVersionNeverGoesBack(t *testing.T) {
	dir := t.TempDir()
	d := testDaemon(t)
	d.store = testStore(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := d.Watch(ctx, api.ConfigMaps, "")
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "default", ResourceVersion: d.nextRV()}}
	d.configMaps[keyOf("default", "c")] = cm
	d.mu.Unlock()
	if _, err := d.Delete(api.ConfigMaps, "default", "c", nil); err != nil {
		t.Fatal(err)
	}
	ev := <-ch
	if ev.Type != "DELETED" || ev.Object.GetResourceVersion() == cm.ResourceVersion || cm.ResourceVersion != "1" {
		t.Errorf("DELETED at %s, the object was at %s", ev.Object.GetResourceVersion(), cm.ResourceVersion)
	}
	last := d.ResourceVersion()
	d.store.flush()

	d2 := testDaemon(t)
	d2.store = testStore(t, dir)
	if err := d2.load(); err != nil {
		t.Fatal(err)
	}
	d2.mu.Lock()
	next, _ := parseRV(d2.nextRV())
	d2.mu.Unlock()
	if next <= last {
		t.Errorf("after a restart: resourceVersion %d, the last one before was %d", next, last)
	}
}

// TestApplyKeepsManagedFields: the managedFields kubeapi's field manager
// writes are stored, and a manifest without any keeps them.
func TestApplyKeepsManagedFields(t *testing.T) {
	d := testDaemon(t)
	ctx := context.Background()
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n%sdata: {a: \"1\"}\n"
	managed := "  managedFields:\n  - manager: kubectl\n    operation: Apply\n    apiVersion: v1\n    fieldsType: FieldsV1\n    fieldsV1: {f:data: {f:a: {}}}\n"
	if _, err := d.Apply(ctx, "cm.yaml", fmt.Appendf(nil, cm, "")); err != nil {
		t.Fatal(err)
	}
	got, err := d.Apply(ctx, "cm.yaml", fmt.Appendf(nil, cm, managed))
	if err != nil || got[0].Action != "configured" {
		t.Fatalf("apply with managedFields: %v %v, want configured", got, err)
	}
	if got, err = d.Apply(ctx, "cm.yaml", fmt.Appendf(nil, cm, "")); err != nil || got[0].Action != "unchanged" {
		t.Fatalf("apply without managedFields: %v %v, want unchanged", got, err)
	}
	o, _ := d.Get(api.ConfigMaps, "default", "c")
	if m := o.GetManagedFields(); len(m) != 1 || m[0].Manager != "kubectl" {
		t.Errorf("managedFields %v", m)
	}
}
