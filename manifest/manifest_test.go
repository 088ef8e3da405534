package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsyaml "sigs.k8s.io/yaml"
)

// expectations reads the "# <prefix>: <message>" lines of a corpus file.
func expectations(t *testing.T, path, prefix string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(data), "\n") {
		if m, ok := strings.CutPrefix(l, "# "+prefix+": "); ok {
			want = append(want, m)
		}
	}
	return want
}

// messages returns the messages of an Errors, each without the leading file
// name (which the corpus files do not repeat).
func messages(t *testing.T, err error, file string) []string {
	t.Helper()
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	var got []string
	for _, e := range errs {
		var me *Error
		if !errors.As(e, &me) {
			t.Errorf("element %T is not an *Error: %v", e, e)
		}
		got = append(got, strings.TrimPrefix(e.Error(), file))
	}
	return got
}

func corpus(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata/%s: %v", dir, err)
	}
	return files
}

// TestInvalidCorpus loads each invalid manifest and compares every error,
// field path and line included, with the file's "# error:" lines.
func TestInvalidCorpus(t *testing.T) {
	for _, path := range corpus(t, "invalid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			want := expectations(t, path, "error")
			if len(want) == 0 {
				t.Fatal("no # error: lines")
			}
			t.Chdir(filepath.Dir(path)) // errors may name the file itself
			name := filepath.Base(path)
			b, err := Load(name)
			if err == nil {
				t.Fatalf("loaded %d pods, want errors", len(b.Pods))
			}
			got := messages(t, err, name)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestValidCorpus loads each valid manifest; every pod it yields, expanded
// ones included, must pass validation again as the API server would check
// the pods a controller creates, and must be runnable.
func TestValidCorpus(t *testing.T) {
	for _, path := range append(corpus(t, "valid"), examples(t)...) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Objects) == 0 {
				t.Fatal("no objects")
			}
			for _, p := range b.Pods {
				if errs := validatePod(p.Pod); len(errs) > 0 {
					t.Errorf("pod %s does not validate: %v", p.Name, errs)
				}
			}
			if err := b.Unsupported(); err != nil {
				t.Errorf("unsupported: %v", err)
			}
		})
	}
}

// TestUnsupportedCorpus: valid for the API server, refused by podrun.
func TestUnsupportedCorpus(t *testing.T) {
	for _, path := range corpus(t, "unsupported") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := Load(path)
			if err != nil {
				t.Fatalf("validation refused what the API server accepts: %v", err)
			}
			got := messages(t, b.Unsupported(), path)
			if want := expectations(t, path, "unsupported"); !reflect.DeepEqual(got, want) {
				t.Errorf("unsupported:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func examples(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../examples/*.yaml")
	if err != nil || len(files) != 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	return files
}

// normalized marshals v to a generic map with the volatile values replaced
// by placeholders and creationTimestamp dropped, for comparing with a
// hand-written stored form.
func normalized(t *testing.T, v any, replace map[string]string) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	// Longest first: a pod name contains the pod-template-hash.
	olds := slices.SortedFunc(maps.Keys(replace), func(a, b string) int { return len(b) - len(a) })
	for _, old := range olds {
		if old != "" {
			s = strings.ReplaceAll(s, old, replace[old])
		}
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	var drop func(any)
	drop = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			delete(v, "creationTimestamp")
			for _, c := range v {
				drop(c)
			}
		case []any:
			for _, c := range v {
				drop(c)
			}
		}
	}
	drop(m)
	return m
}

// stored reads the hand-written stored forms in testdata/stored.
func stored(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "stored", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var m map[string]any
		if err := sigsyaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func compareStored(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := sigsyaml.Marshal(got)
		w, _ := sigsyaml.Marshal(want)
		t.Errorf("%s as stored:\n%s\nwant:\n%s", what, g, w)
	}
}

var podSuffix = `[bcdfghjklmnpqrstvwxz2456789]{5}`

// TestExamplesStored checks the defaulted examples field by field against
// what the API server stores for them.
func TestExamplesStored(t *testing.T) {
	t.Run("deployment", func(t *testing.T) {
		b, err := Load("../examples/deployment-logshipper.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Deployments) != 1 || len(b.Pods) != 1 {
			t.Fatalf("%d deployments, %d pods; want 1, 1", len(b.Deployments), len(b.Pods))
		}
		d, p := b.Deployments[0], b.Pods[0]
		hash := p.Labels["pod-template-hash"]
		if !regexp.MustCompile(`^[bcdfghjklmnpqrstvwxz2456789]{1,10}$`).MatchString(hash) {
			t.Errorf("pod-template-hash %q", hash)
		}
		if !regexp.MustCompile(`^myapp-` + hash + `-` + podSuffix + `$`).MatchString(p.Name) {
			t.Errorf("pod name %q", p.Name)
		}
		if p.Deployment != d || p.Job != nil || p.Source.File != "../examples/deployment-logshipper.yaml" {
			t.Errorf("owner/source: %+v", p.Source)
		}
		want := stored(t, "deployment-logshipper.yaml")
		compareStored(t, "deployment", normalized(t, d, map[string]string{string(d.UID): "DEPLOYMENT_UID"}), want[0])
		compareStored(t, "pod", normalized(t, p.Pod, map[string]string{
			p.Name: "POD_NAME", string(p.UID): "POD_UID", string(p.OwnerReferences[0].UID): "OWNER_UID", hash: "HASH",
		}), want[1])
	})
	t.Run("job", func(t *testing.T) {
		b, err := Load("../examples/job-logshipper.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Jobs) != 1 || len(b.Pods) != 1 {
			t.Fatalf("%d jobs, %d pods; want 1, 1", len(b.Jobs), len(b.Pods))
		}
		j, p := b.Jobs[0], b.Pods[0]
		if !regexp.MustCompile(`^logshipper-job-` + podSuffix + `$`).MatchString(p.Name) {
			t.Errorf("pod name %q", p.Name)
		}
		if p.Job != j {
			t.Error("pod not owned by the job")
		}
		want := stored(t, "job-logshipper.yaml")
		compareStored(t, "job", normalized(t, j, map[string]string{string(j.UID): "JOB_UID"}), want[0])
		compareStored(t, "pod", normalized(t, p.Pod, map[string]string{
			p.Name: "POD_NAME", string(p.UID): "POD_UID", string(j.UID): "JOB_UID",
		}), want[1])
	})
	t.Run("pod", func(t *testing.T) {
		b, err := Load("../examples/pod-sidecars.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Pods) != 1 {
			t.Fatalf("%d pods", len(b.Pods))
		}
		p := b.Pods[0]
		s := p.Spec
		if p.Name != "sidecars" || p.Namespace != "default" || p.UID == "" || p.CreationTimestamp.IsZero() || p.Generation != 1 {
			t.Errorf("metadata: %+v", p.ObjectMeta)
		}
		if s.RestartPolicy != corev1.RestartPolicyAlways || *s.TerminationGracePeriodSeconds != 30 || s.DNSPolicy != corev1.DNSClusterFirst ||
			s.SchedulerName != "default-scheduler" || s.SecurityContext == nil || !*s.EnableServiceLinks {
			t.Errorf("pod defaults: %+v", s)
		}
		var names []string
		for _, c := range append(append([]corev1.Container{}, s.InitContainers...), s.Containers...) {
			names = append(names, c.Name)
			if c.ImagePullPolicy != corev1.PullIfNotPresent || c.TerminationMessagePath != "/dev/termination-log" ||
				c.TerminationMessagePolicy != corev1.TerminationMessageReadFile {
				t.Errorf("container %s defaults: %+v", c.Name, c)
			}
		}
		if got := strings.Join(names, " "); got != "init-1 sidecar-1 sidecar-2 app" {
			t.Errorf("containers %q", got)
		}
		if s.InitContainers[0].RestartPolicy != nil || *s.InitContainers[1].RestartPolicy != corev1.ContainerRestartPolicyAlways ||
			*s.InitContainers[2].RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Error("init container restart policies")
		}
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("phase %q", p.Status.Phase)
		}
	})
}

func TestExpansion(t *testing.T) {
	b, err := Load("testdata/valid/deployment.yaml", "testdata/valid/job.json")
	if err != nil {
		t.Fatal(err)
	}
	byOwner := map[string][]*Pod{}
	uids := map[string]bool{}
	for _, p := range b.Pods {
		switch {
		case p.Deployment != nil:
			byOwner["deployment/"+p.Deployment.Name] = append(byOwner["deployment/"+p.Deployment.Name], p)
		case p.Job != nil:
			byOwner["job/"+p.Job.Name] = append(byOwner["job/"+p.Job.Name], p)
		default:
			byOwner["pod/"+p.Name] = append(byOwner["pod/"+p.Name], p)
		}
		if uids[string(p.UID)] {
			t.Errorf("uid %s repeated", p.UID)
		}
		uids[string(p.UID)] = true
	}
	// replicas 3; paused makes none; completions 3 with parallelism 2 starts 2.
	for owner, n := range map[string]int{"deployment/web": 3, "deployment/paused": 0, "job/pi": 2, "pod/from-json": 1} {
		if len(byOwner[owner]) != n {
			t.Errorf("%s: %d pods, want %d", owner, len(byOwner[owner]), n)
		}
	}
	web := byOwner["deployment/web"]
	if web[0].OwnerReferences[0].UID != web[2].OwnerReferences[0].UID || web[0].OwnerReferences[0].Kind != "ReplicaSet" {
		t.Errorf("the pods of one Deployment must share one ReplicaSet owner: %+v", web[0].OwnerReferences)
	}
	if web[0].Name == web[1].Name {
		t.Error("pod names repeat")
	}

	job := b.Jobs[0]
	if job.Labels["team"] != "math" || job.Spec.Template.Labels["app"] != "pi" {
		t.Errorf("user labels lost: %v %v", job.Labels, job.Spec.Template.Labels)
	}
	p1, p2 := NewJobPod(job, -1), NewJobPod(job, -1)
	for _, p := range []*corev1.Pod{p1, p2} {
		if !regexp.MustCompile(`^pi-`+podSuffix+`$`).MatchString(p.Name) || p.UID == "" || p.CreationTimestamp.IsZero() {
			t.Errorf("job pod %s %s", p.Name, p.UID)
		}
		for k, v := range map[string]string{"job-name": "pi", "batch.kubernetes.io/job-name": "pi", "controller-uid": string(job.UID),
			"batch.kubernetes.io/controller-uid": string(job.UID), "app": "pi"} {
			if p.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, p.Labels[k], v)
			}
		}
		if ref := p.OwnerReferences[0]; ref.Kind != "Job" || ref.UID != job.UID || !*ref.Controller {
			t.Errorf("owner %+v", ref)
		}
		if *p.Spec.EnableServiceLinks != true || p.Status.Phase != corev1.PodPending {
			t.Error("job pod not defaulted as a pod")
		}
	}
	if p1.Name == p2.Name || p1.UID == p2.UID {
		t.Error("NewJobPod repeated a name or uid")
	}
	p1.Labels["x"] = "y"
	if _, ok := job.Spec.Template.Labels["x"]; ok {
		t.Error("a pod shares its labels map with the Job's template")
	}
}

func TestIndexedJobPods(t *testing.T) {
	b, err := Parse("indexed.yaml", []byte(`apiVersion: batch/v1
kind: Job
metadata: {name: ix}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 2
  template:
    spec:
      subdomain: workers
      restartPolicy: Never
      initContainers: [{name: init, image: busybox}]
      containers:
      - {name: app, image: busybox}
      - {name: own, image: busybox, env: [{name: JOB_COMPLETION_INDEX, value: mine}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Unsupported(); err != nil {
		t.Errorf("Indexed refused: %v", err)
	}
	if len(b.Pods) != 2 {
		t.Fatalf("%d first pods, want parallelism 2", len(b.Pods))
	}
	for i, bp := range b.Pods {
		p, ix := bp.Pod, strconv.Itoa(i)
		if !regexp.MustCompile(`^ix-` + ix + `-` + podSuffix + `$`).MatchString(p.Name) {
			t.Errorf("pod %d named %s", i, p.Name)
		}
		if p.Annotations[batchv1.JobCompletionIndexAnnotation] != ix || p.Labels[batchv1.JobCompletionIndexAnnotation] != ix {
			t.Errorf("pod %d: annotations %v labels %v", i, p.Annotations, p.Labels)
		}
		if p.Spec.Hostname != "ix-"+ix || p.Spec.Subdomain != "workers" {
			t.Errorf("pod %d: hostname %q subdomain %q", i, p.Spec.Hostname, p.Spec.Subdomain)
		}
		for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
			if len(c.Env) != 1 || c.Env[0].Name != "JOB_COMPLETION_INDEX" {
				t.Fatalf("pod %d container %s env %+v", i, c.Name, c.Env)
			}
			if c.Name == "own" {
				if c.Env[0].Value != "mine" {
					t.Errorf("the container's own JOB_COMPLETION_INDEX was replaced: %+v", c.Env[0])
				}
			} else if f := c.Env[0].ValueFrom; f == nil || f.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-completion-index']" {
				t.Errorf("pod %d container %s env %+v", i, c.Name, c.Env[0])
			}
		}
		if errs := validatePod(p); len(errs) > 0 {
			t.Errorf("pod %d does not validate: %v", i, errs)
		}
	}
	if b.Jobs[0].Spec.Template.Annotations != nil || b.Jobs[0].Spec.Template.Spec.Hostname != "" {
		t.Error("the Job's template was changed")
	}
	if got := indexedGenerateName(strings.Repeat("j", 60), 12); got != strings.Repeat("j", 54)+"-12-" {
		t.Errorf("long name: %s", got)
	}
}

func TestGenerateName(t *testing.T) {
	long := strings.Repeat("a", 70) + "-"
	n := generateName(long)
	if len(n) != 63 || !strings.HasPrefix(n, strings.Repeat("a", 58)) {
		t.Errorf("generateName(%d chars) = %q", len(long), n)
	}
	if got := podsPrefix("web"); got != "web-" {
		t.Errorf("podsPrefix = %q", got)
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"busybox":                 corev1.PullAlways,
		"busybox:latest":          corev1.PullAlways,
		"busybox:1.36":            corev1.PullIfNotPresent,
		"localhost:5000/busybox":  corev1.PullAlways,
		"localhost:5000/app:v1":   corev1.PullIfNotPresent,
		"busybox@sha256:abcd":     corev1.PullIfNotPresent,
		"busybox:latest@sha256:a": corev1.PullAlways,
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestStdinAndDirectory(t *testing.T) {
	data, err := os.ReadFile("../examples/pod-sidecars.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := load([]string{"-", "testdata/valid"}, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if b.Objects[0].Source.File != "<stdin>" || b.Objects[0].Name != "sidecars" {
		t.Errorf("first object %+v", b.Objects[0])
	}
	if len(b.Objects) < 8 {
		t.Errorf("directory: %d objects", len(b.Objects))
	}
	if _, err := load([]string{"testdata/none.yaml"}, nil); err == nil || err.Error() != "testdata/none.yaml: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

func TestBundleLookups(t *testing.T) {
	b, err := Load("testdata/valid/everything.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := b.Secret("default", "creds")
	if s == nil || string(s.Data["token"]) != "s3cret" || string(s.Data["user"]) != "admin" || s.StringData != nil || s.Type != corev1.SecretTypeOpaque {
		t.Errorf("secret %+v", s)
	}
	if b.ConfigMap("default", "settings") == nil || b.ConfigMap("other", "settings") != nil || b.Secret("default", "nope") != nil {
		t.Error("lookups")
	}
	p := b.Pods[0]
	if !strings.HasPrefix(p.Name, "web-") || len(p.Name) != len("web-")+5 {
		t.Errorf("generateName gave %q", p.Name)
	}
	app := p.Spec.Containers[0]
	// A limit without a request gets the limit as request; probes their defaults.
	if app.Resources.Requests.Memory().String() != "128Mi" || app.Resources.Requests.Cpu().String() != "250m" {
		t.Errorf("requests %v", app.Resources.Requests)
	}
	lp := app.LivenessProbe
	if lp.TimeoutSeconds != 1 || lp.PeriodSeconds != 10 || lp.SuccessThreshold != 1 || lp.FailureThreshold != 3 {
		t.Errorf("probe defaults %+v", lp)
	}
	if h := app.Lifecycle.PreStop.HTTPGet; h.Path != "/" || h.Scheme != corev1.URISchemeHTTP {
		t.Errorf("httpGet defaults %+v", h)
	}
	if app.Ports[0].Protocol != corev1.ProtocolTCP || app.Env[3].ValueFrom.FieldRef.APIVersion != "v1" {
		t.Error("port protocol / fieldRef apiVersion defaults")
	}
	if v := p.Spec.Volumes; *v[2].Secret.DefaultMode != 0o400 || *v[1].ConfigMap.DefaultMode != 0o644 || *v[4].HostPath.Type != corev1.HostPathDirectory || v[5].EmptyDir == nil {
		t.Error("volume defaults")
	}
}

func TestWriteList(t *testing.T) {
	b, err := Load("../examples/pod-sidecars.yaml", "../examples/job-logshipper.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pods []*corev1.Pod
	for _, p := range b.Pods {
		pods = append(pods, p.Pod)
	}
	for _, format := range []string{"yaml", "json"} {
		var buf bytes.Buffer
		if err := WriteList(&buf, pods, format); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		switch format {
		case "yaml":
			if !strings.HasPrefix(out, "apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n") ||
				!strings.HasSuffix(out, "kind: List\nmetadata:\n  resourceVersion: \"\"\n") {
				t.Errorf("yaml list:\n%s", out)
			}
		case "json":
			if !strings.HasPrefix(out, "{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n        {\n            \"apiVersion\": \"v1\",\n") {
				t.Errorf("json list:\n%.300s", out)
			}
		}
		// What podrun prints, podrun reads back: same pods, same specs.
		back, err := Parse("list."+format, buf.Bytes())
		if err != nil {
			t.Fatalf("%s: reading the list back: %v", format, err)
		}
		if len(back.Pods) != len(pods) {
			t.Fatalf("%s: %d pods back, want %d", format, len(back.Pods), len(pods))
		}
		for i, p := range back.Pods {
			if p.Name != pods[i].Name || !reflect.DeepEqual(p.Spec, pods[i].Spec) || !reflect.DeepEqual(p.Labels, pods[i].Labels) {
				t.Errorf("%s: pod %d changed in the round trip", format, i)
			}
		}
	}
	if err := WriteList(&bytes.Buffer{}, pods, "xml"); err == nil {
		t.Error("xml accepted")
	}
}

func TestUnsupportedPod(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: "c", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "x"}}}}}}
	errs := Unsupported(p)
	if len(errs) != 1 || errs[0].Type != field.ErrorTypeForbidden || errs[0].Field != "spec.volumes[0].csi" {
		t.Errorf("Unsupported = %v", errs)
	}
}

func TestSplitPath(t *testing.T) {
	got := splitPath("spec.containers[0].resources.limits[example.com/gpu].x")
	want := []string{"spec", "containers", "0", "resources", "limits", "example.com/gpu", "x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitPath = %q", got)
	}
}

// TestJSONParser checks the span parser against encoding/json.
func TestJSONParser(t *testing.T) {
	for _, s := range []string{`{}`, `[]`, `{"a":[1,-2.5e3,"x\"y",true,null,{"b":{}}]}`, `"\u00e9"`, ` 0 `,
		`{`, `[1,]`, `{"a" 1}`, `01`, `1.`, `-`, `"\x"`, "\"a\x01\"", `tru`, `{"a":1}x`, `1e`, `[1 2]`} {
		_, err := parseJSON([]byte(s))
		if (err == nil) != json.Valid([]byte(s)) {
			t.Errorf("%q: parse error %v, json.Valid %v", s, err, json.Valid([]byte(s)))
		}
	}
	root, err := parseJSON([]byte(`{"a": [10, {"b": "c"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	n := root.child("a").child("1").child("b")
	if n == nil || n.start != 17 || n.end != 20 || n.at != 12 {
		t.Errorf("span of a[1].b: %+v", n)
	}
}

func BenchmarkLoadExamples(b *testing.B) {
	for b.Loop() {
		if _, err := Load("../examples/deployment-logshipper.yaml", "../examples/job-logshipper.yaml", "../examples/pod-sidecars.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInvalidCorpusFile(b *testing.B) {
	for b.Loop() {
		if _, err := Load("testdata/invalid/decode.yaml"); err == nil {
			b.Fatal("loaded")
		}
	}
}
