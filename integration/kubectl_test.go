package integration

import (
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
	kubectl := "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
	if _, err := os.Stat(kubectl); err != nil {
		t.Skipf("no kubectl 1.32: %v", err)
	}
	startDaemonWith(t, "--kube-listen", "127.0.0.1:0")
	root := nodeFlag("root")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(root, "kubeapi", "server")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not serve the Kubernetes API")
		}
		time.Sleep(20 * time.Millisecond)
	}
	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	if out, err := exec.Command(bin, "kubeconfig", "--root", root, "--path", kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("podrun kubeconfig: %v\n%s", err, out)
	}
	if fi, err := os.Stat(kubeconfig); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the kubeconfig: %v %v", fi.Mode(), err)
	}
	for _, f := range []string{"ca.key", "server.key", "client.key", "token"} {
		if fi, err := os.Stat(filepath.Join(root, "kubeapi", f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	runEnv := func(env []string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Env = append([]string{"HOME=" + home, "PATH=/usr/bin:/bin"}, env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run := func(args ...string) string { t.Helper(); return runEnv(nil, args...) }
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
	clientGoProtobuf(t, kubeconfig)
	run("create", "namespace", "scratch")
	run("create", "configmap", "-n", "scratch", "left", "--from-literal=a=1")
	if out := run("delete", "namespace", "scratch"); strings.TrimSpace(out) != `namespace "scratch" deleted` {
		t.Errorf("delete namespace: %s", out)
	}
	if out := run("get", "configmaps", "-A", "-o", "name"); strings.Contains(out, "left") || !strings.Contains(out, "configmap/conf") {
		t.Errorf("after the namespace's deletion: %s", out)
	}
	run("delete", "configmap", "conf")
	out := run("get", "pods")
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
