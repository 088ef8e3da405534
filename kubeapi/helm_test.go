package kubeapi

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/podrun/podrun/api"
)

// helmBin is the Helm CLI hack/build-helm.sh builds ($PODRUN_HELM
// replaces it); TestHelm is skipped without it.
func helmBin(t *testing.T) string {
	bin := os.Getenv("PODRUN_HELM")
	if bin == "" {
		bin, _ = filepath.Abs("../bin/helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no Helm CLI (hack/build-helm.sh builds it): %v", err)
	}
	return bin
}

func (c *testCluster) helm(t *testing.T, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + c.home, "PATH=/usr/bin:/bin", "HELM_CACHE_HOME=" + filepath.Join(c.home, "helm-cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(c.home, "helm-config"), "HELM_DATA_HOME=" + filepath.Join(c.home, "helm-data")}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// chart writes a chart of the given templates.
func chart(t *testing.T, name string, templates map[string]string) string {
	dir := filepath.Join(t.TempDir(), name)
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: " + name + "\nversion: 0.1.0\n",
		"values.yaml": "replicas: 1\n",
	}
	for n, body := range templates {
		files["templates/"+n] = body
	}
	for n, body := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const helmDeployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx
`

const helmConfigMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  replicas: "{{ .Values.replicas }}"
`

// TestHelm: a chart of kinds podrun runs installs, lists, upgrades, rolls
// back and uninstalls (Helm keeps its releases in Secrets); a chart with a kind
// podrun does not run is refused before anything is made.
func TestHelm(t *testing.T) {
	bin := helmBin(t)
	c := startCluster(t, "")
	ok := chart(t, "demo", map[string]string{"deployment.yaml": helmDeployment, "configmap.yaml": helmConfigMap})
	if out, err := c.helm(t, bin, "install", "demo", ok); err != nil || !strings.Contains(out, "STATUS: deployed") {
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	if _, err := c.f.Get(api.ConfigMaps, "default", "demo-settings"); err != nil {
		t.Errorf("after helm install: %v", err)
	}
	if _, err := c.f.Get(api.Secrets, "default", "sh.helm.release.v1.demo.v1"); err != nil {
		t.Errorf("Helm's release Secret: %v", err)
	}
	if out, err := c.helm(t, bin, "list"); err != nil || !strings.Contains(out, "demo") || !strings.Contains(out, "deployed") {
		t.Errorf("helm list: %v\n%s", err, out)
	}
	if out, err := c.helm(t, bin, "upgrade", "demo", ok, "--set", "replicas=3"); err != nil || !strings.Contains(out, "REVISION: 2") {
		t.Fatalf("helm upgrade: %v\n%s", err, out)
	}
	if o, _ := c.f.Get(api.Deployments, "default", "demo-web"); o == nil || *o.(*appsv1.Deployment).Spec.Replicas != 3 {
		t.Errorf("after helm upgrade: %v", o)
	}

	if out, err := c.helm(t, bin, "rollback", "demo", "1"); err != nil || !strings.Contains(out, "Rollback was a success") {
		t.Errorf("helm rollback: %v\n%s", err, out)
	}
	if o, _ := c.f.Get(api.Deployments, "default", "demo-web"); o == nil || *o.(*appsv1.Deployment).Spec.Replicas != 1 {
		t.Errorf("after helm rollback: %v", o)
	}

	svc := "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n"
	bad := chart(t, "bad", map[string]string{"configmap.yaml": helmConfigMap, "service.yaml": svc})
	out, err := c.helm(t, bin, "install", "bad", bad)
	if err == nil || !strings.Contains(out, `no matches for kind "Service" in version "v1"`) {
		t.Errorf("helm install of a chart with a Service: %v\n%s", err, out)
	}
	if _, err := c.f.Get(api.ConfigMaps, "default", "bad-settings"); err == nil {
		t.Errorf("a refused chart left its ConfigMap")
	}

	if out, err := c.helm(t, bin, "uninstall", "demo", "--wait"); err != nil {
		t.Errorf("helm uninstall: %v\n%s", err, out)
	}
	for _, r := range []api.Resource{api.ConfigMaps, api.Deployments, api.Secrets} {
		if objs, _ := c.f.List(r, "default"); len(objs) != 0 {
			t.Errorf("after helm uninstall: %d %s left", len(objs), r.Name)
		}
	}
}
