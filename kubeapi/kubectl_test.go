package kubeapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
)

// kubectlVersions are the real kubectl binaries the tests drive (the
// Debian kubectl package's), each skipped when it is not installed;
// $KUBEAPI_KUBECTL_VERSIONS replaces the list.
var kubectlVersions = []string{"1.30", "1.32"}

const kubectlDir = "/usr/lib/google-cloud-sdk/bin"

type testCluster struct {
	t          *testing.T
	f          *fake
	srv        *httptest.Server
	creds      *Credentials
	kubeconfig string
	home       string
	bin        string
}

func startCluster(t *testing.T, bin string) *testCluster { return startClusterWith(t, bin, nil) }

// startClusterWith serves the API through wrap, when not nil.
func startClusterWith(t *testing.T, bin string, wrap func(http.Handler) http.Handler) *testCluster {
	t.Helper()
	dir := t.TempDir()
	creds, err := EnsureCredentials(filepath.Join(dir, "kubeapi"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFake()
	h := creds.Authenticate(Handler(f, Config{NodeName: "testnode", Context: t.Context(), StateDir: filepath.Join(dir, "kubeapi")}))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewUnstartedServer(h)
	if srv.TLS, err = creds.TLSConfig(); err != nil {
		t.Fatal(err)
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := &testCluster{t: t, f: f, srv: srv, creds: creds, kubeconfig: filepath.Join(dir, "kubeconfig"), home: dir, bin: bin}
	if err := creds.WriteKubeconfig(c.kubeconfig, srv.URL, false); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *testCluster) cmd(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	pre := []string{"--kubeconfig", c.kubeconfig}
	if v := os.Getenv("KUBEAPI_TEST_V"); v != "" {
		pre = append(pre, "-v="+v)
	}
	cmd := exec.CommandContext(ctx, c.bin, append(pre, args...)...)
	cmd.Env = []string{"HOME=" + c.home, "PATH=/usr/bin:/bin"}
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs kubectl and returns its output; failing unless ok says so.
func (c *testCluster) run(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.try(stdin, args...)
	if err != nil {
		c.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *testCluster) try(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf bytes.Buffer
	cmd := c.cmd(ctx, stdin, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

const webPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: app
    image: busybox
    command: [sleep, "3600"]
  - name: sidecar
    image: busybox
    command: [sleep, "3600"]
`

func forEachKubectl(t *testing.T, test func(t *testing.T, c *testCluster)) {
	forEachKubectlWith(t, nil, test)
}

// forEachKubectlWith serves each cluster through wrap, when not nil.
func forEachKubectlWith(t *testing.T, wrap func(http.Handler) http.Handler, test func(t *testing.T, c *testCluster)) {
	versions := kubectlVersions
	if v := os.Getenv("KUBEAPI_KUBECTL_VERSIONS"); v != "" { // e.g. "1.31 1.33"
		versions = strings.Fields(v)
	}
	for _, v := range versions {
		t.Run("kubectl"+v, func(t *testing.T) {
			bin := filepath.Join(kubectlDir, "kubectl."+v)
			if _, err := os.Stat(bin); err != nil {
				t.Skipf("kubectl %s is not installed: %v", v, err)
			}
			test(t, startClusterWith(t, bin, wrap))
		})
	}
}

// fields splits each line of kubectl's table output into its columns.
func rows(out string) [][]string {
	var rs [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var cells []string
		for _, c := range strings.Split(l, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				cells = append(cells, c)
			}
		}
		rs = append(rs, cells)
	}
	return rs
}

func wantContains(t *testing.T, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("the output lacks %q:\n%s", s, out)
		}
	}
}

func TestKubectlDiscoveryAndVersion(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		out := c.run("", "version", "-o", "json")
		var v struct {
			ServerVersion struct{ GitVersion, Major, Minor string }
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):strings.LastIndex(out, "}")+1]), &v); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if v.ServerVersion.GitVersion != KubernetesVersion+"+podrun" || v.ServerVersion.Major != "1" {
			t.Errorf("server version %+v", v.ServerVersion)
		}
		out = c.run("", "api-resources")
		for _, want := range [][]string{
			{"pods", "po", "v1", "true", "Pod"},
			{"configmaps", "cm", "v1", "true", "ConfigMap"},
			{"secrets", "v1", "true", "Secret"},
			{"events", "ev", "v1", "true", "Event"},
			{"namespaces", "ns", "v1", "false", "Namespace"},
			{"nodes", "no", "v1", "false", "Node"},
			{"deployments", "deploy", "apps/v1", "true", "Deployment"},
			{"jobs", "batch/v1", "true", "Job"},
		} {
			found := false
			for _, r := range rows(out) {
				found = found || strings.Join(r, " ") == strings.Join(want, " ")
			}
			if !found {
				t.Errorf("api-resources has no row %v:\n%s", want, out)
			}
		}
		out = c.run("", "api-resources", "--categories=all", "-o", "name")
		if got := strings.Fields(out); strings.Join(got, " ") != "pods deployments.apps replicasets.apps jobs.batch" {
			t.Errorf("category all: %v", got)
		}
		out = c.run("", "get", "ns,nodes")
		wantContains(t, out, "namespace/default", "Active", "node/testnode", "Ready", KubernetesVersion+"+podrun")
	})
}

func TestKubectlApplyGetDescribeLogsDelete(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		if out := c.run(webPod, "apply", "-f", "-"); strings.TrimSpace(out) != "pod/web created" {
			t.Fatalf("first apply: %s", out)
		}
		if out := c.run(webPod, "apply", "-f", "-"); strings.TrimSpace(out) != "pod/web unchanged" {
			t.Fatalf("second apply: %s", out)
		}
		changed := strings.Replace(webPod, "app: web", "app: web\n    tier: front", 1)
		if out := c.run(changed, "apply", "-f", "-"); strings.TrimSpace(out) != "pod/web configured" {
			t.Fatalf("third apply: %s", out)
		}
		o, _ := c.f.Get(api.Pods, "default", "web")
		if o.GetLabels()["tier"] != "front" || o.GetAnnotations()[corev1.LastAppliedConfigAnnotation] == "" {
			t.Errorf("after apply: labels %v annotations %v", o.GetLabels(), o.GetAnnotations())
		}

		rs := rows(c.run("", "get", "pods"))
		if len(rs) != 2 || strings.Join(rs[0], " ") != "NAME READY STATUS RESTARTS AGE" || strings.Join(rs[1][:4], " ") != "web 2/2 Running 0" {
			t.Errorf("get pods: %q", rs)
		}
		rs = rows(c.run("", "get", "po", "-o", "wide"))
		if len(rs) != 2 || strings.Join(rs[0], " ") != "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES" ||
			strings.Join(rs[1][5:], " ") != "10.77.0.5 testnode <none> <none>" {
			t.Errorf("get pods -o wide: %q", rs)
		}
		var p corev1.Pod
		if err := json.Unmarshal([]byte(c.run("", "get", "pod", "web", "-o", "json")), &p); err != nil || p.Name != "web" || p.Status.PodIP != "10.77.0.5" {
			t.Errorf("get -o json: %v %+v", err, p.ObjectMeta)
		}
		wantContains(t, c.run("", "get", "pod", "web", "-o", "yaml"), "kind: Pod", "name: web", "tier: front")
		wantContains(t, c.run("", "get", "pods", "-l", "tier=front", "--no-headers"), "web")
		if out := c.run("", "get", "pods", "-l", "tier=back"); !strings.Contains(out, "No resources found in default namespace.") {
			t.Errorf("get -l tier=back: %s", out)
		}
		wantContains(t, c.run("", "get", "pods", "--field-selector", "status.phase=Running,spec.nodeName=testnode"), "web")
		if out, err := c.try("", "get", "pods", "--field-selector", "spec.restartPolicy=Always"); err == nil || !strings.Contains(out, "field label not supported: spec.restartPolicy") {
			t.Errorf("unsupported field selector: %v %s", err, out)
		}
		wantContains(t, c.run("", "get", "all"), "pod/web")

		wantContains(t, c.run("", "describe", "pod", "web"), "Name:", "web", "Node:", "testnode", "IP:", "10.77.0.5", "app:", "sidecar:")

		if out := c.run("", "logs", "web", "-c", "sidecar"); out != "sidecar line 1\nsidecar line 2\nsidecar line 3\n" {
			t.Errorf("logs -c sidecar: %q", out)
		}
		if out := c.run("", "logs", "web", "-c", "app", "--tail=1", "--timestamps"); out != "2026-01-02T03:04:05.000000000Z app line 3\n" {
			t.Errorf("logs --tail=1 --timestamps: %q", out)
		}
		if out := c.run("", "logs", "web", "-c", "app", "--since=1h"); !strings.Contains(out, "app line 1") {
			t.Errorf("logs --since: %q", out)
		}
		if out, err := c.try("", "logs", "web", "-c", "app", "--previous"); err == nil || !strings.Contains(out, "previous terminated container") {
			t.Errorf("logs --previous: %v %q", err, out)
		}

		// Refused by the backend's planner: a 422 naming the object.
		bad := strings.Replace(changed, `[sleep, "3600"]`, `[sleep, "60"]`, 1)
		if out, err := c.try(bad, "apply", "-f", "-"); err == nil || !strings.Contains(out, `Pod "web" is invalid`) || !strings.Contains(out, "podrun can change only") {
			t.Errorf("refused apply: %v\n%s", err, out)
		}

		// Server-side dry runs change nothing.
		other := strings.ReplaceAll(webPod, "web", "other")
		if out := c.run(other, "apply", "--dry-run=server", "-f", "-"); strings.TrimSpace(out) != "pod/other created (server dry run)" {
			t.Errorf("dry run: %s", out)
		}
		if _, err := c.f.Get(api.Pods, "default", "other"); err == nil {
			t.Errorf("a dry run created the pod")
		}
		if out := c.run("", "delete", "pod", "web", "--dry-run=server"); strings.TrimSpace(out) != `pod "web" deleted (server dry run)` {
			t.Errorf("delete --dry-run=server: %s", out)
		}

		if out := c.run("", "patch", "pod", "web", "-p", `{"metadata":{"labels":{"patched":"smp"}}}`); strings.TrimSpace(out) != "pod/web patched" {
			t.Errorf("strategic patch: %s", out)
		}
		c.run("", "patch", "pod", "web", "--type=merge", "-p", `{"metadata":{"labels":{"merged":"yes"}}}`)
		c.run("", "patch", "pod", "web", "--type=json", "-p", `[{"op":"remove","path":"/metadata/labels/tier"}]`)
		o, _ = c.f.Get(api.Pods, "default", "web")
		if l := o.GetLabels(); l["patched"] != "smp" || l["merged"] != "yes" || l["tier"] != "" {
			t.Errorf("after the patches: %v", l)
		}

		if out := c.run("", "delete", "pod", "web"); strings.TrimSpace(out) != `pod "web" deleted` {
			t.Errorf("delete: %s", out)
		}
		if _, err := c.f.Get(api.Pods, "default", "web"); err == nil {
			t.Errorf("kubectl delete returned before the pod was gone")
		}
	})
}

// watchFor is how long TestKubectlGetWatch watches.
const watchFor = time.Minute

// TestKubectlGetWatch: kubectl get -w prints each object once, then each
// change once, for a minute.
func TestKubectlGetWatch(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		t.Parallel() // each version watches for a minute, at the same time
		c.run(webPod, "apply", "-f", "-")
		c.run(strings.ReplaceAll(webPod, "web", "db"), "apply", "-f", "-")
		ctx, cancel := context.WithTimeout(context.Background(), watchFor)
		defer cancel()
		cmd := c.cmd(ctx, "", "get", "pods", "-w")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var out []string
		read := func(n int) { // the next n lines
			for len(out) < n {
				l, ok := <-lines
				if !ok {
					t.Fatalf("kubectl get -w ended: %s\n%s", strings.Join(out, "\n"), stderr.String())
				}
				out = append(out, l)
			}
		}
		read(3) // the header and the two pods
		changes := []struct {
			change func()
			rows   int
		}{
			{func() { c.run("", "label", "pod", "web", "v=two") }, 1},
			{func() { c.run(strings.ReplaceAll(webPod, "web", "cache"), "apply", "-f", "-") }, 1},
			{func() { c.run("", "delete", "pod", "db") }, 2}, // Terminating, then gone
		}
		for _, ch := range changes {
			time.Sleep(watchFor / time.Duration(len(changes)+1)) // spread over the minute
			ch.change()
			read(len(out) + ch.rows)
		}
		for l := range lines { // until the minute is over: nothing more
			out = append(out, l)
		}
		_ = cmd.Wait()
		var names []string
		for _, r := range rows(strings.Join(out[1:], "\n")) {
			names = append(names, r[0])
		}
		if strings.Join(rows(out[0])[0], " ") != "NAME READY STATUS RESTARTS AGE" || strings.Join(names, " ") != "db web web cache db db" {
			t.Errorf("get -w printed:\n%s", strings.Join(out, "\n"))
		}
	})
}

// TestKubectlWaitWatchList: kubectl wait, with client-go's WatchList
// (sendInitialEvents, the initial-events-end bookmark) and without.
func TestKubectlWaitWatchList(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		c.run(webPod, "apply", "-f", "-")
		for _, watchList := range []string{"true", "false"} {
			env := "KUBE_FEATURE_WatchListClient=" + watchList
			wait := func(args ...string) string {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				cmd := c.cmd(ctx, "", append([]string{"wait", "--timeout=20s"}, args...)...)
				cmd.Env = append(cmd.Env, env)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s kubectl wait %v: %v\n%s", env, args, err, out)
				}
				return strings.TrimSpace(string(out))
			}
			if out := wait("--for=condition=Ready", "pod/web"); out != "pod/web condition met" {
				t.Errorf("%s wait Ready: %s", env, out)
			}
			c.run("", "delete", "pod", "web", "--wait=false")
			if out := wait("--for=delete", "pod/web"); out != "pod/web condition met" && out != "" {
				t.Errorf("%s wait delete: %s", env, out)
			}
			if _, err := c.f.Get(api.Pods, "default", "web"); err == nil {
				t.Errorf("%s: kubectl wait --for=delete returned before the pod was gone", env)
			}
			c.run(webPod, "apply", "-f", "-")
		}
	})
}

func TestNoCredentialIs401(t *testing.T) {
	c := startCluster(t, "")
	cl := c.srv.Client() // trusts the server's certificate, presents none
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/api/v1/namespaces/default/pods", "", http.StatusUnauthorized},
		{"/api", "wrong", http.StatusUnauthorized},
		{"/api/v1/namespaces/default/pods", c.creds.Token, http.StatusOK},
		{"/version", "", http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", c.srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if resp.StatusCode != tc.code || tc.code == http.StatusUnauthorized && (st.Kind != "Status" || st.Reason != metav1.StatusReasonUnauthorized) {
			t.Errorf("GET %s (token %q): %d %+v", tc.path, tc.token, resp.StatusCode, st)
		}
	}
}

const workloads = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: front
spec:
  replicas: 2
  selector:
    matchLabels: {app: front}
  template:
    metadata:
      labels: {app: front}
    spec:
      containers:
      - name: web
        image: nginx
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: run
        image: busybox
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {a: "1", b: "2"}
---
apiVersion: v1
kind: Secret
metadata:
  name: token
type: Opaque
stringData: {t: x}
`

func TestKubectlWorkloadTables(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		wantContains(t, c.run(workloads, "apply", "-f", "-"), "deployment.apps/front created", "job.batch/once created",
			"configmap/settings created", "secret/token created")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"get", "deploy"}, "NAME READY UP-TO-DATE AVAILABLE AGE"},
			{[]string{"get", "deploy", "-o", "wide"}, "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR"},
			{[]string{"get", "jobs"}, "NAME STATUS COMPLETIONS DURATION AGE"},
			{[]string{"get", "cm"}, "NAME DATA AGE"},
			{[]string{"get", "secrets"}, "NAME TYPE DATA AGE"},
			{[]string{"get", "nodes", "-o", "wide"}, "NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION CONTAINER-RUNTIME"},
			{[]string{"get", "ns"}, "NAME STATUS AGE"},
		} {
			rs := rows(c.run("", tc.args...))
			if strings.Join(rs[0], " ") != tc.want {
				t.Errorf("%v: header %q, want %q", tc.args, rs[0], tc.want)
			}
		}
		rs := rows(c.run("", "get", "deploy", "-o", "wide"))
		if strings.Join(rs[1][:2], " ") != "front 0/2" || strings.Join(rs[1][len(rs[1])-3:], " ") != "web nginx app=front" {
			t.Errorf("get deploy -o wide: %q", rs)
		}
		if rs := rows(c.run("", "get", "cm", "settings")); strings.Join(rs[1][:2], " ") != "settings 2" {
			t.Errorf("get cm: %q", rs)
		}
		if out := c.run("", "scale", "deployment", "front", "--replicas=3"); strings.TrimSpace(out) != "deployment.apps/front scaled" {
			t.Errorf("scale: %s", out)
		}
		o, _ := c.f.Get(api.Deployments, "default", "front")
		if r := o.(*appsv1.Deployment).Spec.Replicas; r == nil || *r != 3 {
			t.Errorf("after scale: replicas %v", r)
		}
		if out, err := c.try("", "delete", "cm", "settings"); err != nil || strings.TrimSpace(out) != `configmap "settings" deleted` {
			t.Errorf("delete cm: %v %s", err, out)
		}
		wantContains(t, c.run("", "api-versions"), "apps/v1", "batch/v1", "v1")
		wantContains(t, c.run("", "get", "deploy", "-A"), "NAMESPACE", "default", "front")
		if out := c.run("", "get", "deploy", "front", "-o", "jsonpath={.spec.replicas}"); out != "3" {
			t.Errorf("jsonpath: %q", out)
		}
		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata: {k: v}\n"
		if out := c.run(cm, "create", "-f", "-"); strings.TrimSpace(out) != "configmap/made created" {
			t.Errorf("create: %s", out)
		}
		if out := c.run(strings.Replace(cm, "k: v", "k: w", 1), "replace", "-f", "-"); strings.TrimSpace(out) != "configmap/made replaced" {
			t.Errorf("replace: %s", out)
		}
		if o, _ := c.f.Get(api.ConfigMaps, "default", "made"); o.(*corev1.ConfigMap).Data["k"] != "w" {
			t.Errorf("after replace: %v", o)
		}
		if out := c.run("", "delete", "deploy", "front", "--cascade=foreground"); strings.TrimSpace(out) != `deployment.apps "front" deleted` {
			t.Errorf("delete --cascade=foreground: %s", out)
		}
	})
}

// TestLegacyDiscovery: a client that does not ask for aggregated discovery
// gets the legacy documents, generated from the same table.
func TestLegacyDiscovery(t *testing.T) {
	c := startCluster(t, "")
	get := func(path, accept string) (string, []byte) {
		req, _ := http.NewRequest("GET", c.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.creds.Token)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := c.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.Header.Get("Content-Type"), buf.Bytes()
	}
	_, body := get("/api/v1", "application/json")
	var l metav1.APIResourceList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range l.APIResources {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, " "); got != "pods pods/log pods/exec pods/attach pods/portforward pods/status configmaps secrets events namespaces nodes" {
		t.Errorf("/api/v1 resources: %s", got)
	}
	_, body = get("/apis", "")
	var gl metav1.APIGroupList
	if err := json.Unmarshal(body, &gl); err != nil || len(gl.Groups) != 5 || gl.Groups[0].PreferredVersion.GroupVersion != "apps/v1" {
		t.Errorf("/apis: %v %s", err, body)
	}
	typ, _ := get("/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json")
	if typ != aggregatedType {
		t.Errorf("aggregated discovery answered %q", typ)
	}
	if _, body := get("/api/v1/namespaces/default/pods", "application/cbor"); !bytes.Contains(body, []byte(`"reason":"NotAcceptable"`)) {
		t.Errorf("CBOR only: %s", body)
	}
	if typ, body := get("/api/v1/namespaces/default/pods", "application/vnd.kubernetes.protobuf"); typ != "application/vnd.kubernetes.protobuf" ||
		!bytes.HasPrefix(body, []byte("k8s\x00")) {
		t.Errorf("protobuf: %s %q", typ, body)
	}
	if typ, _ := get("/api/v1/namespaces/default/pods", "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json"); typ != "application/json" {
		t.Errorf("a protobuf Table: answered %s, want the JSON list", typ)
	}
}

// TestKubectlCreateConfigMapSecret: kubectl's typed create commands send
// protobuf bodies.
func TestKubectlCreateConfigMapSecret(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		if out := c.run("", "create", "configmap", "conf", "--from-literal=a=1", "--from-literal=b=2"); strings.TrimSpace(out) != "configmap/conf created" {
			t.Errorf("create configmap: %s", out)
		}
		if out, err := c.try("", "create", "configmap", "conf", "--from-literal=a=1"); err == nil || !strings.Contains(out, `configmaps "conf" already exists`) {
			t.Errorf("second create configmap: %v %s", err, out)
		}
		if out := c.run("", "create", "secret", "generic", "pw", "--from-literal=password=s3cret"); strings.TrimSpace(out) != "secret/pw created" {
			t.Errorf("create secret: %s", out)
		}
		o, err := c.f.Get(api.ConfigMaps, "default", "conf")
		if err != nil || o.(*corev1.ConfigMap).Data["b"] != "2" {
			t.Errorf("the configmap: %v %v", err, o)
		}
		s, err := c.f.Get(api.Secrets, "default", "pw")
		if err != nil || string(s.(*corev1.Secret).Data["password"]) != "s3cret" {
			t.Errorf("the secret: %v %v", err, s)
		}
		if out := c.run("", "create", "configmap", "dry", "--from-literal=a=1", "--dry-run=server"); strings.TrimSpace(out) != "configmap/dry created (server dry run)" {
			t.Errorf("create --dry-run=server: %s", out)
		}
	})
}

// TestKubectlExplain: the OpenAPI v3 schemas are there for kubectl explain.
func TestKubectlExplain(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		wantContains(t, c.run("", "explain", "pod.spec.containers"), "KIND:", "Pod", "FIELD: containers", "List of containers belonging to the pod.",
			"image", "livenessProbe", "restartPolicy")
		wantContains(t, c.run("", "explain", "deployment.spec.replicas"), "GROUP:", "apps", "FIELD: replicas", "integer")
		wantContains(t, c.run("", "explain", "configmaps", "--recursive"), "data", "binaryData", "immutable")
		wantContains(t, c.run("", "explain", "jobs.spec.template.spec.restartPolicy"), "batch", "restartPolicy")
		if out, err := c.try("", "explain", "pod.spec.nosuchfield"); err == nil || !strings.Contains(out, `field "nosuchfield" does not exist`) {
			t.Errorf("explain of a missing field: %v %s", err, out)
		}
	})
}

// TestKubectlValidates: with the schemas served, kubectl validates as
// against an API server: an unknown field is refused, naming it.
func TestKubectlValidates(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		bad := strings.Replace(webPod, "    image: busybox\n", "    image: busybox\n    imagePolicy: Always\n", 1)
		for _, verb := range []string{"apply", "create"} {
			out, err := c.try(bad, verb, "-f", "-")
			if err == nil || !strings.Contains(out, "imagePolicy") {
				t.Errorf("%s with an unknown field: %v %s", verb, err, out)
			}
		}
		if _, err := c.f.Get(api.Pods, "default", "web"); err == nil {
			t.Errorf("a pod with an unknown field was created")
		}
	})
}

// TestKubectlServerSideApply: apply --server-side over a client-side
// apply keeps the object (kubectl's annotation-only second apply
// included), records managedFields, answers a conflict with another
// manager with 409 unless forced, and creates what does not exist.
func TestKubectlServerSideApply(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		c.run(webPod, "apply", "-f", "-")
		if out := c.run(webPod, "apply", "--server-side", "-f", "-"); strings.TrimSpace(out) != "pod/web serverside-applied" {
			t.Errorf("apply --server-side: %s", out)
		}
		o, _ := c.f.Get(api.Pods, "default", "web")
		p := o.(*corev1.Pod)
		var managers []string
		for _, m := range p.ManagedFields {
			managers = append(managers, m.Manager+"/"+string(m.Operation))
		}
		if len(p.Spec.Containers) != 2 || p.Labels["app"] != "web" || p.Annotations[corev1.LastAppliedConfigAnnotation] == "" ||
			!strings.Contains(strings.Join(managers, " "), "kubectl/Apply") {
			t.Errorf("after apply --server-side: containers %d labels %v managers %v annotations %v", len(p.Spec.Containers), p.Labels, managers, p.Annotations)
		}
		wantContains(t, c.run("", "get", "pod", "web", "-o", "yaml", "--show-managed-fields"), "managedFields:", "manager: kubectl", "operation: Apply", "f:containers:")

		c.run("", "label", "pod", "web", "app=other", "--overwrite")
		out, err := c.try(webPod, "apply", "--server-side", "-f", "-")
		if err == nil || !strings.Contains(out, `Apply failed with 1 conflict: conflict with "kubectl-label"`) || !strings.Contains(out, ".metadata.labels.app") {
			t.Errorf("a conflicting apply: %v %s", err, out)
		}
		if o, _ := c.f.Get(api.Pods, "default", "web"); o.GetLabels()["app"] != "other" {
			t.Errorf("a refused apply changed the label: %v", o.GetLabels())
		}
		if out := c.run(webPod, "apply", "--server-side", "--force-conflicts", "-f", "-"); strings.TrimSpace(out) != "pod/web serverside-applied" {
			t.Errorf("apply --force-conflicts: %s", out)
		}
		if o, _ := c.f.Get(api.Pods, "default", "web"); o.GetLabels()["app"] != "web" {
			t.Errorf("after a forced apply: %v", o.GetLabels())
		}

		cm := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata: {a: \"1\"}\n"
		if out := c.run(cm, "apply", "--server-side", "-f", "-"); strings.TrimSpace(out) != "configmap/ssa serverside-applied" {
			t.Errorf("apply --server-side of a new object: %s", out)
		}
		c.run(strings.Replace(cm, `a: "1"`, `a: "2", b: "3"`, 1), "apply", "--server-side", "-f", "-")
		if o, err := c.f.Get(api.ConfigMaps, "default", "ssa"); err != nil || o.(*corev1.ConfigMap).Data["a"] != "2" || o.(*corev1.ConfigMap).Data["b"] != "3" {
			t.Errorf("after a second server-side apply: %v %v", err, o)
		}
		// Fields the manager no longer applies are removed.
		c.run(strings.Replace(cm, `a: "1"`, `a: "2"`, 1), "apply", "--server-side", "-f", "-")
		if o, _ := c.f.Get(api.ConfigMaps, "default", "ssa"); o.(*corev1.ConfigMap).Data["b"] != "" {
			t.Errorf("a field no longer applied stayed: %v", o.(*corev1.ConfigMap).Data)
		}
		if out := c.run(strings.Replace(cm, `a: "1"`, `a: "9"`, 1), "apply", "--server-side", "--dry-run=server", "-f", "-"); !strings.Contains(out, "(server dry run)") {
			t.Errorf("apply --server-side --dry-run=server: %s", out)
		}
		if o, _ := c.f.Get(api.ConfigMaps, "default", "ssa"); o.(*corev1.ConfigMap).Data["a"] != "2" {
			t.Errorf("a dry run changed the configmap: %v", o.(*corev1.ConfigMap).Data)
		}
	})
}

// TestKubectlNamespaces: create, list, and delete, which terminates the
// namespace: what is in it is deleted, then the namespace.
func TestKubectlNamespaces(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		if out := c.run("", "create", "namespace", "dev"); strings.TrimSpace(out) != "namespace/dev created" {
			t.Errorf("create namespace: %s", out)
		}
		if out, err := c.try("", "create", "namespace", "dev"); err == nil || !strings.Contains(out, `namespaces "dev" already exists`) {
			t.Errorf("create it again: %v %s", err, out)
		}
		if out, err := c.try("", "create", "namespace", "Bad_Name"); err == nil || !strings.Contains(out, "is invalid") {
			t.Errorf("create namespace Bad_Name: %v %s", err, out)
		}
		rs := rows(c.run("", "get", "ns"))
		if len(rs) != 3 || strings.Join(rs[0], " ") != "NAME STATUS AGE" || strings.Join(rs[2][:2], " ") != "dev Active" {
			t.Errorf("get ns: %q", rs)
		}
		if out := c.run("", "label", "ns", "dev", "team=a"); strings.TrimSpace(out) != "namespace/dev labeled" {
			t.Errorf("label ns: %s", out)
		}
		nsYAML := "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: applied\n  labels: {team: b}\n"
		c.run(nsYAML, "apply", "-f", "-")
		if out := c.run(strings.Replace(nsYAML, "team: b", "team: c", 1), "apply", "-f", "-"); strings.TrimSpace(out) != "namespace/applied configured" {
			t.Errorf("apply a namespace again: %s", out)
		}
		if out := c.run(strings.Replace(nsYAML, "team: b", "team: d", 1), "apply", "--server-side", "-f", "-"); strings.TrimSpace(out) != "namespace/applied serverside-applied" {
			t.Errorf("apply a namespace server-side: %s", out)
		}
		if out := c.run("", "get", "ns", "-l", "team=d", "-o", "name"); strings.TrimSpace(out) != "namespace/applied" {
			t.Errorf("get ns -l team=d: %s", out)
		}
		if out, err := c.try("", "patch", "ns", "applied", "-p", `{"spec":{"finalizers":[]}}`); err == nil || !strings.Contains(out, "podrun changes only the labels and annotations of a namespace") {
			t.Errorf("patch a namespace's spec: %v %s", err, out)
		}
		c.run("", "delete", "ns", "applied")
		c.run(webPod, "apply", "-n", "dev", "-f", "-")
		c.run("", "create", "configmap", "-n", "dev", "conf", "--from-literal=a=1")
		if out := c.run("", "delete", "namespace", "dev"); strings.TrimSpace(out) != `namespace "dev" deleted` {
			t.Errorf("delete namespace: %s", out)
		}
		for _, r := range []api.Resource{api.Pods, api.ConfigMaps} {
			if objs, _ := c.f.List(r, "dev"); len(objs) != 0 {
				t.Errorf("after the namespace's deletion: %d %s left", len(objs), r.Name)
			}
		}
		if out, err := c.try("", "get", "ns", "dev"); err == nil || !strings.Contains(out, `namespaces "dev" not found`) {
			t.Errorf("get ns dev after its deletion: %v %s", err, out)
		}
		if out, err := c.try("", "delete", "namespace", "default"); err == nil || !strings.Contains(out, "Forbidden") {
			t.Errorf("delete namespace default: %v %s", err, out)
		}
	})
}

// TestNamespaceTerminating: nothing can be created in a namespace being
// deleted; created namespaces are kept in StateDir.
func TestNamespaceTerminating(t *testing.T) {
	c := startCluster(t, "")
	cs, _ := c.protobufClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dev"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod lingers 300 ms after its deletion in the fake: the namespace
	// terminates at least that long.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}
	if _, err := cs.CoreV1().Pods("dev").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "dev", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := cs.CoreV1().ConfigMaps("dev").Create(ctx, configMap("late", nil), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "because it is being terminated") {
		t.Errorf("a create in a terminating namespace: %v", err)
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, "dev", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating || ns.DeletionTimestamp == nil {
		t.Errorf("a namespace being deleted: %v %+v", err, ns)
	}

	again, err := newNSStore(filepath.Join(c.home, "kubeapi"))
	if err != nil || again.get("kept") == nil || again.get("kept").Status.Phase != corev1.NamespaceActive {
		t.Errorf("namespaces.json: %v %v", err, again)
	}
}

// TestKindsNotServed: a kind podrun does not run is refused, naming what
// it serves; kubectl refuses it before sending anything (no such kind in
// discovery).
func TestKindsNotServed(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n"
		if out, err := c.try(svc, "apply", "-f", "-"); err == nil || !strings.Contains(out, `no matches for kind "Service" in version "v1"`) {
			t.Errorf("apply a Service: %v %s", err, out)
		}
		out, err := c.try("", "get", "--raw", "/api/v1/namespaces/default/services")
		if err == nil || !strings.Contains(out, "podrun serves pods, configmaps") || !strings.Contains(out, "not services") {
			t.Errorf("GET services: %v %s", err, out)
		}
	})
}

// TestKubectlDiff: kubectl diff, client- and server-side, shows a change
// and makes none.
func TestKubectlDiff(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		c.run(webPod, "apply", "-f", "-")
		changed := strings.Replace(webPod, "app: web", "app: web\n    tier: front", 1)
		for _, args := range [][]string{{"diff", "-f", "-"}, {"diff", "--server-side", "-f", "-"}} {
			if args[1] == "--server-side" { // its diff of the client-side apply's annotation is the API server's too
				c.run(webPod, "apply", "--server-side", "-f", "-")
			}
			out, err := c.try(changed, args...)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "+    tier: front") {
				t.Errorf("kubectl %v: %v\n%s", args, err, out)
			}
			if out, err := c.try(webPod, args...); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("kubectl %v without a change: %v\n%s", args, err, out)
			}
		}
		if o, _ := c.f.Get(api.Pods, "default", "web"); o.GetLabels()["tier"] != "" {
			t.Errorf("kubectl diff changed the pod: %v", o.GetLabels())
		}
	})
}
