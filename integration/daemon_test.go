package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"

	"github.com/podrun/podrun/internal/testutil"
)

// daemonProc is a `podrun daemon` of one test: the suite's node flags (so
// never a user's state) and a socket of its own.
type daemonProc struct {
	t       *testing.T
	sock    string
	cl      *client.Client
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	orphans []int    // shims of a killed daemon, now this process' children
	flags   []string // the daemon's own flags
}

// nodeFlag is the value of one of the suite's node flags.
func nodeFlag(name string) string {
	for i, a := range nodeArg {
		if a == "--"+name && i+1 < len(nodeArg) {
			return nodeArg[i+1]
		}
	}
	return ""
}

// startDaemon starts a daemon for the test; at the end of the test
// everything it runs is deleted, the daemon stopped and its stored state
// removed, whatever happened.
//
// The shims a stopped or killed daemon leaves running become this
// process' children (it is a child subreaper during the test), so that
// the test reaps them once they exit: this machine's PID 1 reaps orphans
// late, and the leak check counts a zombie named podrun.
func startDaemon(t *testing.T) *daemonProc {
	return startDaemonWith(t, "--kube-listen", "")
}

// startDaemonWith is startDaemon with the daemon flags given.
func startDaemonWith(t *testing.T, flags ...string) *daemonProc {
	testutil.RequiresRoot(t)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	d := &daemonProc{t: t, sock: filepath.Join(t.TempDir(), "podrun.sock"), flags: flags}
	d.cl = client.New(d.sock)
	d.start()
	t.Cleanup(d.cleanup)
	return d
}

func (d *daemonProc) start() {
	d.t.Helper()
	d.out = &syncBuffer{}
	args := append([]string{"--log-level", "debug", "daemon", "--socket", d.sock}, d.flags...)
	d.cmd = exec.Command(bin, append(args, nodeArg...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(d.cmd, d.done)
	// Serving once the socket answers.
	deadline := time.Now().Add(time.Minute)
	for {
		var list corev1.PodList
		if err := d.cl.List(context.Background(), api.Pods, "", client.Selector{}, &list); err == nil {
			return
		}
		select {
		case <-d.done:
			d.t.Fatalf("the daemon exited at start:\n%s", d.out)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("the daemon does not answer:\n%s", d.out)
		}
	}
}

func (d *daemonProc) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// kill9 kills the daemon the hard way.
func (d *daemonProc) kill9() {
	d.t.Helper()
	d.orphans = append(d.orphans, shimPIDs("")...)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatal(err)
	}
	<-d.done
}

// reapOrphans waits for the shims a dead daemon left (they end with their
// pods).
func (d *daemonProc) reapOrphans() {
	deadline := time.Now().Add(30 * time.Second)
	for _, pid := range d.orphans {
		for {
			var ws unix.WaitStatus
			n, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if n == pid || err != nil { // reaped, or not ours (gone before the daemon died)
				break
			}
			if time.Now().After(deadline) {
				d.t.Errorf("cleanup: orphaned shim %d still running", pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	d.orphans = nil
	// And what else was orphaned to us and has ended (the containers of
	// a killed shim); every command of the test has been waited for.
	for {
		var ws unix.WaitStatus
		if n, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); n <= 0 || err != nil {
			break
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop() {
	d.t.Helper()
	if !d.running() {
		return
	}
	d.orphans = append(d.orphans, shimPIDs("")...)
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		d.t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.t.Errorf("the daemon did not stop on SIGTERM:\n%s", d.out)
		_ = d.cmd.Process.Kill()
		<-d.done
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		d.t.Errorf("the daemon exited %d after SIGTERM:\n%s", code, d.out)
	}
}

func (d *daemonProc) cleanup() {
	t := d.t
	if !d.running() {
		d.start()
	}
	d.deleteAll()
	d.stop()
	d.reapOrphans()
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.out)
	}
	os.RemoveAll(filepath.Join(nodeFlag("root"), "api"))
	// A shim the daemon could not end must not outlive the test.
	for _, pid := range shimPIDs("") {
		t.Errorf("cleanup: shim %d still running; killing it", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// deleteAll deletes every object the daemon has and waits until no pod is
// left.
func (d *daemonProc) deleteAll() {
	t := d.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grace := int64(2)
	for _, r := range []api.Resource{api.Deployments, api.Jobs, api.Pods, api.ConfigMaps, api.Secrets} {
		var list struct{ Items []corev1.Pod } // only metadata is read
		if err := d.cl.List(ctx, r, "", client.Selector{}, &list); err != nil {
			t.Errorf("cleanup: list %s: %v", r.Name, err)
			continue
		}
		for _, o := range list.Items {
			if err := d.cl.Delete(ctx, r, o.Namespace, o.Name, &grace); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("cleanup: delete %s %s: %v", r.Name, o.Name, err)
			}
		}
	}
	for {
		var list corev1.PodList
		if err := d.cl.List(ctx, api.Pods, "", client.Selector{}, &list); err != nil || len(list.Items) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Errorf("cleanup: pods still there after 2 minutes")
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
}

// podrun runs a client verb against the daemon.
func (d *daemonProc) podrun(args ...string) (stdout, stderr string, code int) {
	d.t.Helper()
	verb := 1
	if args[0] == "top" || args[0] == "rollout" {
		verb = 2 // top pod, rollout status
	}
	cmd := exec.Command(bin, append(args[:verb:verb], append([]string{"--socket", d.sock}, args[verb:]...)...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// must runs a verb that must succeed and returns its output.
func (d *daemonProc) must(args ...string) string {
	d.t.Helper()
	out, errOut, code := d.podrun(args...)
	if code != 0 {
		d.t.Fatalf("podrun %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// apply writes objects to a manifest and applies it.
func (d *daemonProc) apply(objs ...any) string {
	d.t.Helper()
	var docs [][]byte
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			d.t.Fatal(err)
		}
		docs = append(docs, b)
	}
	f := filepath.Join(d.t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, bytes.Join(docs, []byte("---\n")), 0o644); err != nil {
		d.t.Fatal(err)
	}
	return d.must("apply", "-f", f)
}

// waitPod waits until the pod satisfies cond (watching it), and returns it.
func (d *daemonProc) waitPod(name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var last *corev1.Pod
	err := d.cl.Watch(ctx, api.Pods, "default", client.Selector{Field: "metadata.name=" + name}, func(ev api.WatchEvent) error {
		var p corev1.Pod
		if err := json.Unmarshal(ev.Object, &p); err != nil {
			return err
		}
		last = &p
		if ev.Type != "DELETED" && cond(&p) {
			return client.ErrStopWatch
		}
		return nil
	})
	if err != nil {
		d.t.Fatalf("pod %s never %s (%v); last seen: %+v\ndaemon:\n%s", name, what, err, last, d.out)
	}
	return last
}

func running(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return p.Status.Phase == corev1.PodRunning
		}
	}
	return false
}

// waitGone waits until the pod no longer exists.
func (d *daemonProc) waitGone(name string) {
	d.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := d.cl.Pod(context.Background(), "default", name)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("pod %s still there (%v)", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shimPIDs are the shims running pods of the suite's run root (uid "" for
// every pod).
func shimPIDs(uid string) []int {
	want := "shim\x00--dir\x00" + filepath.Join(nodeFlag("run-root"), "pods", uid)
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(want)) {
			out = append(out, pid)
		}
	}
	return out
}

// rss is a process' resident memory from /proc: all of it, and the part
// that is its own (anonymous; the rest is the binary, shared by every
// podrun process).
func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	v := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, val, ok := strings.Cut(l, ":"); ok {
			v[k] = strings.TrimSpace(val)
		}
	}
	return fmt.Sprintf("VmRSS %s (RssAnon %s, RssFile %s)", v["VmRSS"], v["RssAnon"], v["RssFile"])
}

// orderedPod is a sidecar scenario whose containers log to an event file:
// init, two sidecars, an app; every container takes 1 s to stop.
func orderedPod(t *testing.T, name string) *scenario {
	return newScenario(t, name, corev1.RestartPolicyAlways).
		init(container("init", runExit("0.1", 0))).
		sidecar(container("sidecar-1", serveSlowStop)).
		sidecar(container("sidecar-2", serveSlowStop)).
		app(container("app", serveSlowStop))
}

func assertOrderedTeardown(t *testing.T, s *scenario) {
	t.Helper()
	ev := readEvents(t, filepath.Join(s.dir, "events"))
	ev.order(t, "init Exiting", "sidecar-1 Started", "sidecar-2 Started", "app Started",
		"app Exiting", "sidecar-2 Exiting", "sidecar-1 Exiting")
	// one after another: each sidecar gets its signal after the one it
	// waits for has exited (1 s each)
	if gap := ev.first(t, "sidecar-1", "Exiting") - ev.first(t, "app", "Exiting"); gap < 1.8 {
		t.Errorf("sidecar-1 stopped %.2fs after the app, want about 2s:\n%s", gap, ev)
	}
}

func TestDaemonPodLifecycle(t *testing.T) {
	d := startDaemon(t)

	// A one-container pod: apply until get shows it Running.
	quick := newScenario(t, "quick", corev1.RestartPolicyAlways).app(container("app", serve))
	t0 := time.Now()
	if out := d.apply(quick.pod); out != "pod/quick created\n" {
		t.Errorf("apply printed %q", out)
	}
	for !strings.Contains(d.must("get", "pods", "quick"), "Running") {
		if time.Since(t0) > time.Minute {
			t.Fatal("quick never Running")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("apply of a 1-container pod until get shows Running: %v", time.Since(t0))

	s := orderedPod(t, "ordered")
	d.apply(s.pod)
	p := d.waitPod("ordered", "Running", running)
	out := d.must("get", "pods", "-o", "wide")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME      READY   STATUS    RESTARTS   AGE   IP ") {
		t.Fatalf("get pods -o wide:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "ordered" || f[1] != "3/3" || f[2] != "Running" || f[3] != "0" || f[5] != p.Status.PodIP {
		t.Errorf("row %q; want ordered 3/3 Running 0 ... %s", lines[1], p.Status.PodIP)
	}
	if out := d.must("describe", "pod", "ordered"); !strings.Contains(out, "Init Containers:\n  init:\n") ||
		!regexpMatch(`Conditions:\n  Type +Status\n  PodReadyToStartContainers +True`, out) || !strings.Contains(out, "Started container app") {
		t.Errorf("describe pod:\n%s", out)
	}

	// exec without a terminal: streams and the exit code
	o, e, code := d.podrun("exec", "ordered", "-c", "app", "--", "sh", "-c", "echo out; echo err >&2; cat; exit 3")
	if code != 3 || o != "out\n" || !strings.Contains(e, "err\n") || !strings.Contains(e, "command terminated with exit code 3") {
		t.Errorf("exec: exit %d, stdout %q, stderr %q", code, o, e)
	}
	cmd := exec.Command(bin, "exec", "--socket", d.sock, "-i", "ordered", "-c", "app", "--", "sh", "-c", "tr a-z A-Z")
	cmd.Stdin = strings.NewReader("from stdin\n")
	if b, err := cmd.Output(); err != nil || string(b) != "FROM STDIN\n" {
		t.Errorf("exec -i: %q, %v", b, err)
	}
	// with a terminal (script(1) provides one)
	tty := exec.Command("script", "-qec", fmt.Sprintf("stty cols 91 rows 17; %s exec --socket %s -it ordered -c app -- sh -c 'tty; stty size'", bin, d.sock), "/dev/null")
	if b, err := tty.CombinedOutput(); err != nil || !strings.Contains(string(b), "/dev/pts/") || !strings.Contains(string(b), "17 91") {
		t.Errorf("exec -it: %q, %v", b, err)
	}

	// logs -f follows until the container ends, through the deletion
	follow := exec.Command(bin, "logs", "--socket", d.sock, "-f", "ordered", "-c", "sidecar-1")
	var followOut syncBuffer
	follow.Stdout, follow.Stderr = &followOut, &followOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
	if out := d.must("delete", "pod", "ordered"); out != "pod \"ordered\" deleted\n" {
		t.Errorf("delete printed %q", out)
	}
	if _, err := d.cl.Pod(context.Background(), "default", "ordered"); !apierrors.IsNotFound(err) {
		t.Errorf("after delete: %v, want NotFound", err)
	}
	assertOrderedTeardown(t, s)
	waitErr := make(chan error, 1)
	go func() { waitErr <- follow.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Errorf("logs -f: %v\n%s", err, followOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("logs -f did not end with its container:\n%s", followOut.String())
	}
	// The sidecar's script logs to the event file, its stdout is empty;
	// what matters is that the stream ended. Output of a busy container:
	if out := d.must("logs", "quick"); out != "" {
		t.Errorf("logs of a quiet container: %q", out)
	}
	d.must("delete", "pod", "quick", "--grace-period", "1")
}

func regexpMatch(re, s string) bool {
	m, _ := regexp.MatchString(re, s)
	return m
}

func TestDaemonExamples(t *testing.T) {
	d := startDaemon(t)
	out := d.must("apply", "-f", "../examples/deployment-logshipper.yaml", "-f", "../examples/job-logshipper.yaml")
	if out != "deployment.apps/myapp created\njob.batch/logshipper-job created\n" {
		t.Errorf("apply printed %q", out)
	}
	// The Job completes; its pod stays, Completed.
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(d.must("get", "jobs"), "Complete") {
		if time.Now().After(deadline) {
			t.Fatalf("the job never completed:\n%s", d.must("get", "pods"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := d.must("get", "jobs"); !regexpMatch(`logshipper-job +Complete +1/1`, out) {
		t.Errorf("get jobs:\n%s", out)
	}
	pods := d.must("get", "pods")
	if !regexpMatch(`logshipper-job-\w+ +0/2 +Completed +0`, pods) {
		t.Errorf("get pods, the job's pod:\n%s", pods)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for !regexpMatch(`myapp +1/1 +1 +1`, d.must("get", "deployments")) {
		if time.Now().After(deadline) {
			t.Fatalf("the deployment never became available:\n%s\n%s", d.must("get", "deployments"), d.must("get", "pods"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A Deployment replaces a deleted pod.
	var list corev1.PodList
	if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "app=myapp"}, &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("the deployment's pods: %v %v", list.Items, err)
	}
	first := list.Items[0].Name
	d.must("delete", "pod", first, "--wait=false")
	deadline = time.Now().Add(2 * time.Minute)
	for {
		if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "app=myapp"}, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 1 && list.Items[0].Name != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replacement for %s: %d pods", first, len(list.Items))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Deleting the Deployment and the Job deletes their pods.
	d.must("delete", "deployment", "myapp")
	d.must("delete", "-f", "../examples/job-logshipper.yaml")
	deadline = time.Now().Add(2 * time.Minute)
	for {
		if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{}, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods left after deleting their owners", len(list.Items))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Bad input: every problem, as podrun validate prints them.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad}\nspec:\n  containers: []\n"), 0o644)
	_, errOut, code := d.podrun("apply", "-f", bad)
	if code != 1 || strings.Count(errOut, bad+":") < 2 {
		t.Errorf("apply of a bad pod: exit %d\n%s", code, errOut)
	}
}

func TestDaemonKill9KeepsPods(t *testing.T) {
	d := startDaemon(t)
	s := orderedPod(t, "survivor")
	// The app counts on its stdout, ten lines a second.
	s.pod.Spec.Containers[0] = container("app", `trap 'log Exiting; sleep 1; exit 0' TERM; log Starting; log Started
i=0; while true; do i=$((i+1)); echo "n $i"; sleep 0.1 & wait; done`)
	d.apply(s.pod)
	before := d.waitPod("survivor", "Running", running)
	shims := shimPIDs(string(before.UID))
	if len(shims) != 1 {
		t.Fatalf("%d shims for the pod", len(shims))
	}
	t.Logf("daemon: %s; shim: %s", rss(d.cmd.Process.Pid), rss(shims[0]))

	// A daemon that is stopped leaves its pods running.
	d.stop()
	if got := shimPIDs(string(before.UID)); len(got) != 1 || got[0] != shims[0] {
		t.Fatalf("shims %v after the daemon stopped, want %v", got, shims)
	}
	d.start()
	d.waitPod("survivor", "listed again", running)

	d.kill9()
	// The pod does not notice: its shim and containers go on.
	logFile := filepath.Join(nodeFlag("log-dir"), fmt.Sprintf("default_survivor_%s", before.UID), "app", "0.log")
	grow := func() int64 {
		st, err := os.Stat(logFile)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	size := grow()
	for grow() == size {
		time.Sleep(20 * time.Millisecond)
	}
	if got := shimPIDs(string(before.UID)); len(got) != 1 || got[0] != shims[0] {
		t.Fatalf("shims %v after the daemon died, want %v", got, shims)
	}

	d.start()
	after := d.waitPod("survivor", "listed Running again", running)
	for _, name := range []string{"sidecar-1", "sidecar-2", "app"} {
		b, a := status(before, name), status(after, name)
		if a.RestartCount != b.RestartCount || a.ContainerID != b.ContainerID {
			t.Errorf("%s: restarts %d, id %s; before the daemon's death %d, %s", name, a.RestartCount, a.ContainerID, b.RestartCount, b.ContainerID)
		}
	}
	// The counter's log has no gap across the daemon's death, and goes on.
	var out string
	for deadline := time.Now().Add(time.Minute); !strings.Contains(out, "\nn 30\n"); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the counter did not reach 30:\n%s", out)
		}
		out = d.must("logs", "survivor", "-c", "app")
	}
	var prev int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		n, err := strconv.Atoi(strings.TrimPrefix(l, "n "))
		if err != nil || n != prev+1 {
			t.Fatalf("log line %q after n %d: the log has a gap\n%s", l, prev, out)
		}
		prev = n
	}
	d.must("delete", "pod", "survivor")
	assertOrderedTeardown(t, s)
	// The shim exits once the daemon has read its final state, which is
	// when delete returns; give its last milliseconds a bound, not a sleep.
	for deadline := time.Now().Add(5 * time.Second); len(shimPIDs(string(before.UID))) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("shim still running 5 s after the pod was deleted: %v", shimPIDs(string(before.UID)))
			break
		}
	}
}

func TestShimKill9(t *testing.T) {
	d := startDaemon(t)
	quiet := func(name string) *scenario {
		// sidecar and app only write to the event file: their stdout pipes
		// (which die with the shim) are never written again.
		return newScenario(t, name, corev1.RestartPolicyAlways).
			sidecar(container("sidecar", serve)).
			app(container("app", serve))
	}
	a, b := quiet("victim"), quiet("bystander")
	d.apply(a.pod, b.pod)
	pa := d.waitPod("victim", "Running", running)
	pb := d.waitPod("bystander", "Running", running)
	shimA, shimB := shimPIDs(string(pa.UID)), shimPIDs(string(pb.UID))
	if len(shimA) != 1 || len(shimB) != 1 {
		t.Fatalf("shims %v %v", shimA, shimB)
	}
	if err := syscall.Kill(shimA[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// An exec sent meanwhile waits for the shim that replaces it.
	if out := d.must("exec", "victim", "-c", "app", "--", "echo", "taken over"); out != "taken over\n" {
		t.Errorf("exec while the shim is replaced: %q", out)
	}
	// The daemon starts a shim that takes the pod over.
	deadline := time.Now().Add(time.Minute)
	for {
		if got := shimPIDs(string(pa.UID)); len(got) == 1 && got[0] != shimA[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new shim for the victim:\n%s", d.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Its containers were re-attached (or are reported as lost).
	after := d.waitPod("victim", "taken over", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && running(p)
	})
	for _, name := range []string{"sidecar", "app"} {
		bs, as := status(pa, name), status(after, name)
		kept := as.ContainerID == bs.ContainerID && as.RestartCount == bs.RestartCount && as.State.Running != nil
		lost := as.LastTerminationState.Terminated != nil && as.LastTerminationState.Terminated.Reason == "ContainerStatusUnknown"
		if !kept && !lost {
			t.Errorf("%s after the shim's death: %+v", name, as)
		}
		if !kept {
			t.Logf("%s was reported lost and restarted", name)
		}
	}
	if got := shimPIDs(string(pb.UID)); len(got) != 1 || got[0] != shimB[0] {
		t.Errorf("the bystander's shim changed: %v, was %v", got, shimB)
	}
	if p, err := d.cl.Pod(context.Background(), "default", "bystander"); err != nil || !running(p) ||
		status(p, "app").ContainerID != status(pb, "app").ContainerID || status(p, "app").RestartCount != 0 {
		t.Errorf("the bystander was disturbed: %v %+v", err, p.Status)
	}
	// Deleting it leaves nothing: no process, cgroup or netns of the pod.
	d.must("delete", "pod", "victim")
	assertOrderedStop(t, a)
	uid := string(pa.UID)
	if got := shimPIDs(uid); len(got) != 0 {
		t.Errorf("shims left: %v", got)
	}
	if _, err := os.Stat(netnsFile(uid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pod's netns is left: %v", err)
	}
	if m := podCgroupsLeft(uid); len(m) != 0 {
		t.Errorf("cgroups left: %v", m)
	}
	d.must("delete", "pod", "bystander")
}

// assertOrderedStop: the app stopped before the sidecar.
func assertOrderedStop(t *testing.T, s *scenario) {
	t.Helper()
	readEvents(t, filepath.Join(s.dir, "events")).order(t, "app Exiting", "sidecar Exiting")
}

func TestDaemonSocketIsRootOnly(t *testing.T) {
	d := startDaemon(t)
	st, err := os.Stat(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("socket mode %v uid %d, want 0600 root", st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Uid)
	}
	// The test's temporary directory is not what stops nobody: open it.
	if err := os.Chmod(filepath.Dir(d.sock), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "get", "pods", "--socket", d.sock)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") {
		t.Errorf("as nobody: %v\n%s", err, out)
	}
	if out := d.must("get", "pods"); out != "" {
		t.Errorf("as root: %q", out)
	}
	// podrun version, like kubectl's: the client's, then the server's.
	if out := d.must("version"); !strings.HasPrefix(out, "Client Version: ") || !strings.Contains(out, "\nServer Version: ") {
		t.Errorf("podrun version printed %q", out)
	}
}

func TestDaemonUpdatesAndRestarts(t *testing.T) {
	d := startDaemon(t)
	// The app's first run prints "run 1", waits for the test and fails;
	// its restart prints "run 2" and stays. The sidecar never changes.
	s := newScenario(t, "update", corev1.RestartPolicyAlways).
		sidecar(container("sidecar", serve)).
		app(container("app", `n=$(cat /log/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /log/n
trap 'exit 0' TERM; echo "run $n"
if [ $n = 1 ]; then until [ -f /log/go ]; do sleep 0.05; done; exit 1; fi
while true; do sleep 1 & wait; done`))
	d.apply(s.pod)
	d.waitPod("update", "Running", running)
	follow := exec.Command(bin, "logs", "--socket", d.sock, "-f", "update", "-c", "app")
	var followOut syncBuffer
	follow.Stdout, follow.Stderr = &followOut, &followOut
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
	for !strings.Contains(followOut.String(), "run 1") {
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := d.waitPod("update", "restarted", func(p *corev1.Pod) bool {
		return status(p, "app").RestartCount == 1 && running(p)
	})
	// -f went on with the next instance's file.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(followOut.String(), "run 1\nrun 2\n"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("logs -f across the restart: %q", followOut.String())
		}
	}
	if out := d.must("logs", "update", "-c", "app", "-p"); out != "run 1\n" {
		t.Errorf("logs -p: %q", out)
	}
	if out := d.must("logs", "update", "-c", "app", "--timestamps", "--tail", "1"); !regexpMatch(`^\d{4}-\d\d-\d\dT[0-9:.]+Z run 2\n$`, out) {
		t.Errorf("logs --timestamps --tail 1: %q", out)
	}

	// A new image restarts that container, and only it.
	s.pod.Spec.Containers[0].Image = "docker.io/library/busybox:latest"
	if out := d.apply(s.pod); out != "pod/update configured\n" {
		t.Errorf("apply of a new image printed %q", out)
	}
	after := d.waitPod("update", "restarted with the new image", func(q *corev1.Pod) bool {
		return status(q, "app").RestartCount == 2 && running(q)
	})
	if got := status(after, "sidecar"); got.RestartCount != 0 || got.ContainerID != status(p, "sidecar").ContainerID {
		t.Errorf("the sidecar was touched: %+v", got)
	}
	if out := d.apply(s.pod); out != "pod/update unchanged\n" {
		t.Errorf("apply of the same pod printed %q", out)
	}
	// Anything else is refused, and said where.
	s.pod.Spec.Containers[0].Command = []string{"true"}
	b, _ := yaml.Marshal(s.pod)
	f := filepath.Join(t.TempDir(), "changed.yaml")
	os.WriteFile(f, b, 0o644)
	_, errOut, code := d.podrun("apply", "-f", f)
	if code != 1 || !strings.Contains(errOut, "spec.containers[0].command") {
		t.Errorf("apply of a changed command: exit %d\n%s", code, errOut)
	}
	d.must("delete", "pod", "update", "--now")
	select {
	case <-waitCmd(follow):
	case <-time.After(30 * time.Second):
		t.Errorf("logs -f did not end with the pod")
	}
}

// startWatch starts a --watch command with its output gathered; the test's
// end kills it unless it was waited for (done).
func startWatch(t *testing.T, cmd *exec.Cmd) (out *syncBuffer, done <-chan error) {
	t.Helper()
	out = &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = waitCmd(cmd)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return out, done
}

func waitCmd(c *exec.Cmd) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Wait() }()
	return ch
}

func TestDaemonPortForwardTopWait(t *testing.T) {
	d := startDaemon(t)
	// A server on the pod's loopback only: reachable through port-forward alone.
	s := newScenario(t, "web", corev1.RestartPolicyAlways).
		app(container("app", `mkdir -p /www; echo hello from the pod > /www/index.html
trap 'exit 0' TERM; httpd -f -p 127.0.0.1:8080 -h /www & wait`))
	s.pod.Spec.Containers[0].ReadinessProbe = &corev1.Probe{PeriodSeconds: 1, ProbeHandler: corev1.ProbeHandler{
		Exec: &corev1.ExecAction{Command: []string{"wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"}}}}
	d.apply(s.pod)
	if out := d.must("wait", "--for=condition=Ready", "pod/web", "--timeout", "60s"); out != "pod/web condition met\n" {
		t.Errorf("wait printed %q", out)
	}
	pf := exec.Command(bin, "port-forward", "--socket", d.sock, "web", ":8080")
	var pfOut syncBuffer
	pf.Stdout, pf.Stderr = &pfOut, &pfOut
	if err := pf.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pf.Process.Kill(); _ = pf.Wait() })
	var port string
	for deadline := time.Now().Add(30 * time.Second); port == ""; time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`).FindStringSubmatch(pfOut.String()); m != nil {
			port = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("port-forward: %q", pfOut.String())
		}
	}
	for i := 0; i < 2; i++ { // a connection each
		out, err := exec.Command("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:"+port+"/index.html").CombinedOutput()
		if err != nil || string(out) != "hello from the pod\n" {
			t.Errorf("through the forward: %q, %v\n%s", out, err, pfOut.String())
		}
	}
	out := d.must("top", "pod", "web", "--containers")
	if !regexpMatch(`POD +NAME +CPU\(cores\) +MEMORY\(bytes\)\nweb +app +\d+m +\d+Mi\n`, out) {
		t.Errorf("top pod --containers:\n%s", out)
	}
	_, errOut, code := d.podrun("wait", "--for=condition=Ready=false", "pod/web", "--timeout", "1s")
	if code != 1 || !strings.Contains(errOut, "timed out waiting for the condition on pods/web") {
		t.Errorf("wait that times out: exit %d %q", code, errOut)
	}
	go d.must("delete", "pod", "web")
	if out := d.must("wait", "--for=delete", "pod/web", "--timeout", "60s"); out != "pod/web condition met\n" {
		t.Errorf("wait --for=delete printed %q", out)
	}
}

func TestDaemonJobAcrossRestart(t *testing.T) {
	d := startDaemon(t)
	// The Job's pod finishes while the daemon is down: the new daemon counts it.
	s := newScenario(t, "job", corev1.RestartPolicyNever).app(container("app", `until [ -f /log/go ]; do sleep 0.05; done; log Done`))
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: "once"},
		Spec:       batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: s.pod.Spec}},
	}
	d.apply(job)
	var list corev1.PodList
	for deadline := time.Now().Add(time.Minute); len(list.Items) == 0 || list.Items[0].Status.Phase != corev1.PodRunning; time.Sleep(20 * time.Millisecond) {
		if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "job-name=once"}, &list); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job's pod never ran: %+v", list.Items)
		}
	}
	uid := string(list.Items[0].UID)
	d.kill9()
	if err := os.WriteFile(filepath.Join(s.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); len(shimPIDs(uid)) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the job's pod did not finish without the daemon")
		}
	}
	d.start()
	for deadline := time.Now().Add(time.Minute); !regexpMatch(`once +Complete +1/1`, d.must("get", "jobs")); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the job did not complete:\n%s\n%s", d.must("get", "jobs"), d.must("get", "pods"))
		}
	}
	if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "job-name=once"}, &list); err != nil || len(list.Items) != 1 || string(list.Items[0].UID) != uid {
		t.Errorf("the job's pods after the restart: %v %v, want only the first", len(list.Items), err)
	}
	if out := d.must("get", "pods"); !regexpMatch(`once-\w+ +0/1 +Completed`, out) {
		t.Errorf("get pods:\n%s", out)
	}
}

// A shim killed while the app waits prepared (created, its process held)
// behind a running init container: the new shim removes the prepared
// container, and the app starts when the init container succeeds.
func TestShimKill9WhilePrepared(t *testing.T) {
	d := startDaemon(t)
	s := newScenario(t, "prepared", corev1.RestartPolicyAlways).
		init(container("gate", `log Starting; while [ ! -e /log/go ]; do sleep 0.05; done; log Exiting`)).
		app(container("app", serve))
	d.apply(s.pod)
	p := d.waitPod("prepared", "the init container running", func(p *corev1.Pod) bool {
		return len(p.Status.InitContainerStatuses) == 1 && p.Status.InitContainerStatuses[0].State.Running != nil
	})
	uid := string(p.UID)
	runRoot := nodeArg[slices.Index(nodeArg, "--run-root")+1]
	appState := filepath.Join(runRoot, "runc", uid+"-app-0", "state.json")
	deadline := time.Now().Add(time.Minute)
	for _, err := os.Stat(appState); err != nil; _, err = os.Stat(appState) {
		if time.Now().After(deadline) {
			t.Fatalf("the app was not prepared while the init container ran: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	shims := shimPIDs(uid)
	if len(shims) != 1 {
		t.Fatalf("shims %v", shims)
	}
	if err := syscall.Kill(shims[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for got := shimPIDs(uid); len(got) != 1 || got[0] == shims[0]; got = shimPIDs(uid) {
		if time.Now().After(deadline) {
			t.Fatalf("no new shim:\n%s", d.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The new shim removes it as it takes the pod over.
	for _, err := os.Stat(appState); !errors.Is(err, os.ErrNotExist); _, err = os.Stat(appState) {
		if time.Now().After(deadline) {
			t.Fatalf("the prepared app is still there after the takeover: %v\n%s", err, d.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	after := d.waitPod("prepared", "Running", running)
	if st := status(after, "app"); st.RestartCount != 0 || st.State.Running == nil {
		t.Errorf("app after the takeover: %+v", st)
	}
	evFile := filepath.Join(s.dir, "events")
	for len(readEvents(t, evFile).all("app", "Starting")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the app did not log Starting:\n%s", readEvents(t, evFile))
		}
		time.Sleep(10 * time.Millisecond)
	}
	readEvents(t, evFile).order(t, "gate Exiting", "app Starting")
	d.must("delete", "pod", "prepared")
	if got := shimPIDs(uid); len(got) != 0 {
		t.Errorf("shims left: %v", got)
	}
	if m := podCgroupsLeft(uid); len(m) != 0 {
		t.Errorf("cgroups left: %v", m)
	}
}
