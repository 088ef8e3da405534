package integration

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestKubectl drives the real kubectl against a daemon's Kubernetes API:
// the kubeconfig `podrun kubeconfig` writes, then apply, wait, get, logs
// and delete of examples/pod-sidecars.yaml.
func TestKubectl(t *testing.T) {
	startDaemonWith(t, "--kube-listen", "127.0.0.1:0")
	k := newKubectl(t, "1.32")
	if fi, err := os.Stat(k.kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the kubeconfig: %v %v", fi.Mode(), err)
	}
	for _, f := range []string{"ca.key", "server.key", "client.key", "token"} {
		if fi, err := os.Stat(filepath.Join(nodeFlag("root"), "kubeapi", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	run := k.run
	runEnv := func(env []string, args ...string) string { // k.run with more environment
		t.Helper()
		with := *k
		with.env = append(append([]string{}, k.env...), env...)
		return with.run(args...)
	}
	events := k.watchEvents("sidecars") // kubectl get events -w, from before the pod
	if out := run("apply", "-f", "../examples/pod-sidecars.yaml"); strings.TrimSpace(out) != "pod/sidecars created" {
		t.Fatalf("apply: %s", out)
	}
	if out := run("apply", "-f", "../examples/pod-sidecars.yaml"); strings.TrimSpace(out) != "pod/sidecars unchanged" {
		t.Errorf("apply again: %s", out)
	}
	run("wait", "--for=condition=Ready", "pod/sidecars", "--timeout=60s")
	if out := runEnv([]string{"KUBE_FEATURE_WatchListClient=true"}, "wait", "--for=condition=Ready", "pod/sidecars", "--timeout=60s"); !strings.Contains(out, "condition met") {
		t.Errorf("wait with WatchList: %s", out)
	}
	events("Started container app")
	if out := run("describe", "pod", "sidecars"); !strings.Contains(out, "Events:") || !strings.Contains(out, "Started container app") {
		t.Errorf("describe pod shows no events:\n%s", out)
	}
	if out := run("top", "pod", "sidecars", "--containers", "--no-headers"); !strings.Contains(out, "sidecars") || !strings.Contains(out, "app") {
		t.Errorf("top pod: %s", out)
	}
	if out := run("top", "node", "--no-headers"); !strings.Contains(out, "%") {
		t.Errorf("top node: %s", out)
	}
	// Server-side apply over the client-side apply keeps the pod as it is.
	if out := run("apply", "--server-side", "-f", "../examples/pod-sidecars.yaml"); strings.TrimSpace(out) != "pod/sidecars serverside-applied" {
		t.Errorf("apply --server-side: %s", out)
	}
	if out := run("get", "pod", "sidecars", "-o", "jsonpath={.status.phase} {.metadata.managedFields[*].manager}"); !strings.HasPrefix(out, "Running ") || !strings.Contains(out, "kubectl") {
		t.Errorf("after apply --server-side: %s", out)
	}
	if out := run("create", "configmap", "conf", "--from-literal=a=1"); strings.TrimSpace(out) != "configmap/conf created" {
		t.Errorf("create configmap: %s", out)
	}
	clientGoProtobuf(t, k.kubeconfig)
	run("create", "namespace", "scratch")
	run("create", "configmap", "-n", "scratch", "left", "--from-literal=a=1")
	if out := run("delete", "namespace", "scratch"); strings.TrimSpace(out) != `namespace "scratch" deleted` {
		t.Errorf("delete namespace: %s", out)
	}
	if out := run("get", "configmaps", "-A", "-o", "name"); strings.Contains(out, "left") || !strings.Contains(out, "configmap/conf") {
		t.Errorf("after the namespace's deletion: %s", out)
	}
	run("delete", "configmap", "conf")
	// A Deployment's ReplicaSets: get, describe, rollout status.
	run("apply", "-f", "../examples/deployment-logshipper.yaml")
	run("rollout", "status", "deployment/myapp", "--timeout=60s")
	if rs := strings.Fields(strings.Split(strings.TrimSpace(run("get", "rs")), "\n")[1]); len(rs) < 4 || !strings.HasPrefix(rs[0], "myapp-") || strings.Join(rs[1:4], " ") != "1 1 1" {
		t.Errorf("get rs: %v", rs)
	}
	if out := run("describe", "deployment", "myapp"); !strings.Contains(out, "NewReplicaSet:") || !strings.Contains(out, "myapp-") {
		t.Errorf("describe deployment:\n%s", out)
	}
	if out := run("apply", "--server-side", "-f", "../examples/deployment-logshipper.yaml"); strings.TrimSpace(out) != "deployment.apps/myapp serverside-applied" {
		t.Errorf("apply --server-side of the Deployment: %s", out)
	}
	if out := run("get", "deploy", "myapp", "-o", "jsonpath={.spec.replicas} {.metadata.managedFields[*].manager}"); !strings.HasPrefix(out, "1 ") || !strings.Contains(out, "kubectl") {
		t.Errorf("the Deployment after apply --server-side: %s", out)
	}
	helmWait(t, k.kubeconfig, k.home)
	run("delete", "deployment", "myapp")
	out := run("get", "pod", "sidecars") // the Deployment's pod may still be terminating
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); len(f) < 3 || f[0] != "sidecars" || f[1] != "3/3" || f[2] != "Running" {
		t.Errorf("get pods:\n%s", out)
	}
	if out := run("logs", "sidecars", "-c", "app"); !strings.Contains(out, "app Started") {
		t.Errorf("logs: %q", out)
	}
	if out := run("get", "nodes"); !strings.Contains(out, "Ready") {
		t.Errorf("get nodes: %s", out)
	}
	if out := run("delete", "pod", "sidecars"); strings.TrimSpace(out) != `pod "sidecars" deleted` {
		t.Errorf("delete: %s", out)
	}
	if out := run("get", "pods", "-o", "name"); strings.Contains(out, "sidecars") {
		t.Errorf("after delete: %s", out)
	}
}

// clientGoProtobuf: a typed clientset that speaks only protobuf, and an
// informer, create, list, watch and delete a pod of the daemon.
func clientGoProtobuf(t *testing.T, kubeconfig string) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeProtobuf, runtime.ContentTypeProtobuf
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	events := make(chan string, 100)
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace("default"))
	inf := factory.Core().V1().Pods().Informer()
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { events <- "add " + o.(*corev1.Pod).Name },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			events <- "delete " + o.(*corev1.Pod).Name
		},
	})
	stop := make(chan struct{})
	factory.Start(stop)
	defer factory.Shutdown()
	defer close(stop)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("the informer did not sync")
	}
	want := func(ev string) {
		t.Helper()
		for {
			select {
			case got := <-events:
				if got == ev {
					return
				}
			case <-ctx.Done():
				t.Fatalf("the informer saw no %q", ev)
			}
		}
	}
	want("add sidecars")
	l, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "from-client-go"}, Spec: corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: ptrTo(int64(1)),
		Containers: []corev1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "3600"}}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want("add from-client-go")
	if ev := <-w.ResultChan(); ev.Type != watch.Added || ev.Object.(*corev1.Pod).Name != "from-client-go" {
		t.Errorf("watch from the list's resourceVersion: %s %v", ev.Type, ev.Object)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "from-client-go", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want("delete from-client-go")
}

// helmWait: helm install --wait of a chart with a Deployment returns once
// it is ready (Helm reads its ReplicaSets), when bin/helm is built
// (hack/build-helm.sh).
func helmWait(t *testing.T, kubeconfig, home string) {
	helm, _ := filepath.Abs("../bin/helm")
	if _, err := os.Stat(helm); err != nil {
		t.Logf("no Helm CLI, helm install --wait untested: %v", err)
		return
	}
	dir := filepath.Join(t.TempDir(), "web")
	dep, err := os.ReadFile("../examples/deployment-logshipper.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"templates/deployment.yaml": strings.ReplaceAll(string(dep), "myapp", "helmapp")} {
		_ = os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	helmRun := func(args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, helm, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "HELM_CACHE_HOME=" + home + "/helm", "HELM_CONFIG_HOME=" + home + "/helm",
			"HELM_DATA_HOME=" + home + "/helm"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := helmRun("install", "web", dir, "--wait", "--timeout", "60s"); !strings.Contains(out, "STATUS: deployed") {
		t.Errorf("helm install --wait: %s", out)
	}
	helmRun("uninstall", "web", "--wait", "--timeout", "60s")
}

// watchEvents starts kubectl get events -w about a pod; the function it
// returns reads what it prints until a line contains want.
func (k *kubectlCLI) watchEvents(pod string) func(want string) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	k.t.Cleanup(cancel)
	cmd := k.command(ctx, "get", "events", "-w", "--field-selector", "involvedObject.name="+pod)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		k.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	return func(want string) {
		k.t.Helper()
		var seen []string
		for sc.Scan() {
			if seen = append(seen, sc.Text()); strings.Contains(sc.Text(), want) {
				return
			}
		}
		k.t.Fatalf("kubectl get events -w ended before %q:\n%s", want, strings.Join(seen, "\n"))
	}
}
