package kubeapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/pager"

	"github.com/podrun/podrun/api"
)

// event records an event about a pod in the fake, as the daemon makes
// them from a shim's.
func (f *fake) event(podName, reason, msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := metav1.Now()
	var uid types.UID
	if p := f.objs[fkey(api.Pods, "default", podName)]; p != nil {
		uid = p.GetUID()
	}
	f.put(api.Events, &corev1.Event{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
		ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("%s.%s", podName, strings.ToLower(reason)), Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "default", Name: podName, UID: uid},
		Reason:         reason, Message: msg, Type: corev1.EventTypeNormal, Count: 1, FirstTimestamp: now, LastTimestamp: now,
		Source: corev1.EventSource{Component: "kubelet", Host: "testnode"}}, nil)
}

// watchLines starts kubectl args and sends what it prints, line by line.
func (c *testCluster) watchLines(ctx context.Context, args ...string) (<-chan string, *bytes.Buffer) {
	c.t.Helper()
	cmd := c.cmd(ctx, "", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		_ = cmd.Wait()
	}()
	return lines, &stderr
}

// waitLine reads lines until one contains want, and returns those read.
func waitLine(t *testing.T, lines <-chan string, stderr *bytes.Buffer, want string) []string {
	t.Helper()
	var out []string
	for l := range lines {
		out = append(out, l)
		if strings.Contains(l, want) {
			return out
		}
	}
	t.Fatalf("the watch ended before a line with %q:\n%s\n%s", want, strings.Join(out, "\n"), stderr)
	return nil
}

// TestKubectlEvents: events are listed, watched (get events -w, kubectl
// events --watch, each event once) and shown by describe.
func TestKubectlEvents(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		c.run(webPod, "apply", "-f", "-")
		c.f.event("web", "Scheduled", "Successfully assigned default/web to testnode")
		wantContains(t, c.run("", "describe", "pod", "web"), "Events:", "Scheduled", "Successfully assigned default/web to testnode")
		wantContains(t, c.run("", "get", "events"), "LAST SEEN", "Scheduled", "pod/web")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		getW, getErr := c.watchLines(ctx, "get", "events", "-w")
		evW, evErr := c.watchLines(ctx, "events", "--watch")
		first := append(waitLine(t, getW, getErr, "Scheduled"), waitLine(t, evW, evErr, "Scheduled")...)
		c.f.event("web", "Pulled", `Container image "busybox" already present on machine`)
		got := append(waitLine(t, getW, getErr, "Pulled"), waitLine(t, evW, evErr, "Pulled")...)
		cancel()
		for l := range getW {
			got = append(got, l)
		}
		for l := range evW {
			got = append(got, l)
		}
		if n := strings.Count(strings.Join(append(first, got...), "\n"), "Scheduled"); n != 2 {
			t.Errorf("Scheduled printed %d times by the two watches, not once each:\n%s\n%s", n, strings.Join(first, "\n"), strings.Join(got, "\n"))
		}
		if n := strings.Count(strings.Join(got, "\n"), "Pulled"); n != 2 {
			t.Errorf("Pulled printed %d times by the two watches, not once each:\n%s", n, strings.Join(got, "\n"))
		}
	})
}

// TestKubectlEverydayVerbs: run, annotate, create twice, get all, get in
// chunks, delete -f returning once the pod is gone, auth can-i and auth
// whoami.
func TestKubectlEverydayVerbs(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		if out := c.run("", "run", "box", "--image=busybox", "--labels=app=box", "--", "sleep", "3600"); strings.TrimSpace(out) != "pod/box created" {
			t.Errorf("run: %s", out)
		}
		if out := c.run("", "get", "pod", "box", "-o", "jsonpath={.spec.containers[0].image} {.spec.containers[0].args} {.metadata.labels.app}"); out != `busybox ["sleep","3600"] box` {
			t.Errorf("the pod kubectl run made: %s", out)
		}
		if out := c.run("", "annotate", "pod", "box", "note=hi"); strings.TrimSpace(out) != "pod/box annotated" {
			t.Errorf("annotate: %s", out)
		}
		if out := c.run("", "get", "pod", "box", "-o", "jsonpath={.metadata.annotations.note}"); out != "hi" {
			t.Errorf("the annotation: %q", out)
		}
		if out := c.run(webPod, "create", "-f", "-"); strings.TrimSpace(out) != "pod/web created" {
			t.Errorf("create: %s", out)
		}
		if out, err := c.try(webPod, "create", "-f", "-"); err == nil || !strings.Contains(out, `pods "web" already exists`) {
			t.Errorf("a second create: %v\n%s", err, out)
		}
		wantContains(t, c.run("", "get", "all"), "pod/box", "pod/web")
		if rs := rows(c.run("", "get", "pods", "--chunk-size=1", "--no-headers")); len(rs) != 2 || rs[0][0] != "box" || rs[1][0] != "web" {
			t.Errorf("get --chunk-size=1: %v", rs)
		}
		if out := c.run(webPod, "delete", "-f", "-"); strings.TrimSpace(out) != `pod "web" deleted` {
			t.Errorf("delete -f: %s", out)
		}
		if _, err := c.f.Get(api.Pods, "default", "web"); err == nil {
			t.Errorf("kubectl delete -f returned before the pod was gone")
		}
		for _, args := range [][]string{{"create", "pods"}, {"delete", "deployments", "-n", "dev"}, {"watch", "pods", "-A"}, {"*", "*"}} {
			if out := c.run("", append([]string{"auth", "can-i"}, args...)...); strings.TrimSpace(out) != "yes" {
				t.Errorf("auth can-i %v: %s", args, out)
			}
		}
		wantContains(t, c.run("", "auth", "can-i", "--list"), "*.*", "[*]")
		wantContains(t, c.run("", "auth", "whoami"), "Username", ClientUser, "system:masters", "system:authenticated")
	})
}

// TestKubectlTop: kubectl top pod (its containers too, a label selector)
// and top node, from metrics.k8s.io.
func TestKubectlTop(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		c.run(webPod, "apply", "-f", "-")
		c.run(strings.ReplaceAll(webPod, "web", "db"), "apply", "-f", "-")
		rs := rows(c.run("", "top", "pod"))
		if len(rs) != 3 || strings.Join(rs[0], " ") != "NAME CPU(cores) MEMORY(bytes)" || strings.Join(rs[1], " ") != "db 10m 6Mi" || rs[2][0] != "web" {
			t.Errorf("top pod: %v", rs)
		}
		if rs := rows(c.run("", "top", "pod", "-l", "app=web", "--containers")); len(rs) != 3 || strings.Join(rs[1], " ") != "web app 5m 3Mi" {
			t.Errorf("top pod -l app=web --containers: %v", rs)
		}
		if rs := rows(c.run("", "top", "pod", "db", "--no-headers")); len(rs) != 1 || rs[0][0] != "db" {
			t.Errorf("top pod db: %v", rs)
		}
		rs = rows(c.run("", "top", "node"))
		if len(rs) != 2 || rs[0][0] != "NAME" || rs[1][0] != "testnode" || !strings.HasSuffix(rs[1][2], "%") || !strings.HasSuffix(rs[1][4], "%") {
			t.Errorf("top node: %v", rs)
		}
	})
}

// TestListLimit: a list with a limit is answered whole, without a
// continue token (client-go's pager takes it as the last page); a
// continue token is one podrun never gave: 400.
func TestListLimit(t *testing.T) {
	c := startCluster(t, "")
	cs, _ := c.protobufClient(t)
	ctx := t.Context()
	for _, n := range []string{"a", "b", "c"} {
		if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, configMap(n, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(l.Items) != 3 || l.Continue != "" {
		t.Fatalf("list limit=1: %v, %d items, continue %q", err, len(l.Items), l.Continue)
	}
	var names []string
	p := pager.New(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().ConfigMaps("default").List(ctx, o)
	})
	p.PageSize = 2
	if err := p.EachListItem(ctx, metav1.ListOptions{}, func(o runtime.Object) error {
		names = append(names, o.(*corev1.ConfigMap).Name)
		return nil
	}); err != nil || strings.Join(names, " ") != "a b c" {
		t.Errorf("the pager: %v %v", err, names)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 1, Continue: "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ"}); !apierrors.IsBadRequest(err) {
		t.Errorf("a continue token podrun did not give: %v", err)
	}
}

const onceJob = `apiVersion: batch/v1
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
`

// complete marks the fake's Job complete, as the daemon's controller does.
func (f *fake) complete(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.objs[fkey(api.Jobs, "default", name)]
	j := old.DeepCopyObject().(*batchv1.Job)
	j.Status.Succeeded = 1
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	f.put(api.Jobs, j, old)
}

// TestKubectlWaitComplete: kubectl wait --for=condition=complete of a Job
// that completes while it waits, with and without WatchList.
func TestKubectlWaitComplete(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, c *testCluster) {
		for _, watchList := range []string{"true", "false"} {
			c.run(onceJob, "apply", "-f", "-")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := c.cmd(ctx, "", "wait", "--for=condition=complete", "job/once", "--timeout=20s")
			cmd.Env = append(cmd.Env, "KUBE_FEATURE_WatchListClient="+watchList)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			c.f.complete("once")
			err := cmd.Wait()
			cancel()
			if err != nil || strings.TrimSpace(out.String()) != "job.batch/once condition met" {
				t.Errorf("WatchList=%s wait complete: %v %s", watchList, err, out.String())
			}
			c.run("", "delete", "job", "once")
		}
	})
}
