package podruntest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/controller/job"
	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/manifest"
	"github.com/podrun/podrun/netns"
	"github.com/podrun/podrun/node"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
	// The test binary is libcontainer's container init too: this import
	// runs it (and never returns) when the binary is re-executed as one.
	_ "github.com/podrun/podrun/runtime/reexec"
)

func init() {
	// As podrun's main does: keep the main goroutine on the main thread,
	// so no namespace-switching goroutine can wedge the thread-group leader.
	goruntime.LockOSThread()
}

// The in-process node's places: podruntest's own, apart from a user's
// podrun (/var/lib/podrun, podrun0) and from podrun's integration suite.
// Every test process of the machine shares them (each pod has its own
// supervision lock), so the images stay cached from one run to the next
// and what a killed test process left is removed by the next one.
var localConfig = node.Config{
	Root:    envOr("PODRUNTEST_ROOT", "/var/lib/podruntest"),
	RunRoot: "/run/podruntest",
	LogDir:  "/var/log/podruntest",
	Network: netns.Config{Bridge: "podruntest0", Subnet: envOr("PODRUNTEST_SUBNET", "10.254.0.0/20")},
	Cgroups: cgroups.Tree{Root: "podruntest", PidsLimit: -1, Driver: cgroups.DefaultDriver()},
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

var (
	mainRunning atomic.Bool
	localMu     sync.Mutex // guards theLocal
	theLocal    *local
)

// localEnv returns the process's in-process engine, created on first use.
func localEnv() (*local, error) {
	if !mainRunning.Load() {
		return nil, errors.New("running pods in-process needs podruntest.Main: call it from the package's TestMain " +
			"(func TestMain(m *testing.M) { podruntest.Main(m) }), it removes the node's state when the tests end")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("running pods in-process needs root: podrun creates containers (libcontainer), " +
			"network namespaces, a bridge and nftables rules, cgroups and overlay mounts. Run the tests as root " +
			"(e.g. go test -exec sudo), or set " + DaemonEnv + " to a running podrun daemon's socket")
	}
	localMu.Lock()
	defer localMu.Unlock()
	if theLocal != nil {
		return theLocal, nil
	}
	n, err := node.New(localConfig)
	if err != nil {
		return nil, fmt.Errorf("the in-process node: %w", err)
	}
	// What an earlier test process killed with SIGKILL left behind.
	if err := n.GC(context.Background(), nil); err != nil {
		slog.Warn("podruntest: cleaning up after earlier runs", "err", err)
	}
	theLocal = &local{node: n}
	return theLocal, nil
}

// closeLocal removes whatever no test of any process still supervises.
func closeLocal() error {
	localMu.Lock()
	defer localMu.Unlock()
	if theLocal == nil {
		return nil
	}
	return theLocal.node.GC(context.Background(), nil)
}

// local runs pods in this process with the `podrun run` engine: a
// pod.Supervisor per pod on one node.Node, job.Controller per Job.
type local struct {
	node *node.Node
}

func (l *local) loadImage(ctx context.Context, archive string) error {
	_, err := l.node.Images.Load(ctx, archive, nil)
	return err
}

func (l *local) pullImage(ctx context.Context, ref string) error {
	_, err := l.node.Images.Pull(ctx, ref, image.PullOptions{})
	return err
}

func (l *local) start(ctx context.Context, ns, file string, data []byte) ([]podConn, []jobConn, func(), error) {
	b, err := manifest.Parse(file, data)
	if err == nil {
		err = b.Unsupported()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	moveNamespace(b, ns)
	var pods []podConn
	jobPods := map[*batchv1.Job][]*corev1.Pod{}
	for _, p := range b.Pods {
		if p.Job != nil {
			jobPods[p.Job] = append(jobPods[p.Job], p.Pod)
			continue
		}
		pods = append(pods, l.run(context.Background(), p.Pod, b))
	}
	var jobs []jobConn
	for _, j := range b.Jobs {
		jobs = append(jobs, l.runJob(j, jobPods[j], b))
	}
	return pods, jobs, nil, nil
}

// moveNamespace moves the objects of the default namespace to ns.
func moveNamespace(b *manifest.Bundle, ns string) {
	var metas []*metav1.ObjectMeta
	for _, p := range b.Pods {
		metas = append(metas, &p.Pod.ObjectMeta)
	}
	for _, o := range b.Jobs {
		metas = append(metas, &o.ObjectMeta)
	}
	for _, o := range b.Deployments {
		metas = append(metas, &o.ObjectMeta)
	}
	for _, o := range b.ConfigMaps {
		metas = append(metas, &o.ObjectMeta)
	}
	for _, o := range b.Secrets {
		metas = append(metas, &o.ObjectMeta)
	}
	for _, m := range metas {
		if m.Namespace == "" || m.Namespace == corev1.NamespaceDefault {
			m.Namespace = ns
		}
	}
}

// run starts one pod's supervisor.
func (l *local) run(ctx context.Context, p *corev1.Pod, objs pod.Objects) *localPod {
	lp := &localPod{node: l.node, lines: map[string][]string{}}
	lp.sup = pod.New(p, pod.Options{
		Host:     l.node,
		Objects:  objs,
		Log:      slog.Default(),
		OnEvent:  func(*corev1.Pod, pod.Event) { lp.notify() },
		OnStatus: func(*corev1.Pod) { lp.notify() },
		Output:   lp.output,
	})
	go func() {
		_ = lp.sup.Run(ctx)
		// Logs stay in memory; the CRI files go with the pod.
		_ = os.RemoveAll(l.node.LogDir(lp.sup.Pod()))
		lp.notify()
	}()
	return lp
}

// localPod is a pod this process supervises. Its output is kept in memory
// too, for Logs and log waits (a test's pods write little).
type localPod struct {
	notifier
	node *node.Node
	sup  *pod.Supervisor

	mu    sync.Mutex          // guards lines
	lines map[string][]string // by container: every line, every instance
}

func (lp *localPod) output(_ *corev1.Pod, container, _, line string) {
	lp.mu.Lock()
	lp.lines[container] = append(lp.lines[container], strings.TrimRight(line, "\n"))
	lp.mu.Unlock()
	lp.notify()
}

func (lp *localPod) pod() *corev1.Pod       { return lp.sup.Pod() }
func (lp *localPod) done() <-chan struct{}  { return lp.sup.Done() }
func (lp *localPod) delete()                { lp.sup.Delete(nil) }
func (lp *localPod) events() []corev1.Event { return coreEvents(lp.sup.Pod(), lp.sup.Events()) }
func (lp *localPod) line(c string, i int) (string, bool) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if i < len(lp.lines[c]) {
		return lp.lines[c][i], true
	}
	return "", false
}

func (lp *localPod) logs(ctx context.Context, container string, follow bool) (io.ReadCloser, error) {
	if !hasContainer(lp.pod(), container) {
		return nil, fmt.Errorf("pod %s has no container %s", lp.pod().Name, container)
	}
	if !follow {
		lp.mu.Lock()
		defer lp.mu.Unlock()
		var s string
		if ls := lp.lines[container]; len(ls) > 0 {
			s = strings.Join(ls, "\n") + "\n"
		}
		return io.NopCloser(strings.NewReader(s)), nil
	}
	pr, pw := io.Pipe()
	go func() {
		for i := 0; ; {
			ch := lp.changed()
			if l, ok := lp.line(container, i); ok {
				if _, err := io.WriteString(pw, l+"\n"); err != nil {
					return
				}
				i++
				continue
			}
			if willNotRun(lp.pod(), container) {
				pw.Close()
				return
			}
			select {
			case <-ch:
			case <-lp.done():
				if _, ok := lp.line(container, i); !ok {
					pw.Close()
					return
				}
			case <-ctx.Done():
				pw.CloseWithError(ctx.Err())
				return
			}
		}
	}()
	return pr, nil
}

func (lp *localPod) exec(ctx context.Context, container string, cmd []string, stdout, stderr io.Writer) (int, error) {
	return lp.sup.Exec(ctx, container, runtime.ExecSpec{Args: cmd, Stdout: stdout, Stderr: stderr})
}

func (lp *localPod) dial(ctx context.Context, port int32) (net.Conn, error) {
	p := lp.pod()
	dial := (&net.Dialer{}).DialContext
	if !p.Spec.HostNetwork {
		dial = netns.Dialer(lp.node.Network.NSPath(string(p.UID)))
	}
	return dial(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
}

// runJob runs a Job's controller until the Job finishes or is stopped.
func (l *local) runJob(j *batchv1.Job, pods []*corev1.Pod, objs pod.Objects) *localJob {
	ctx, cancel := context.WithCancel(context.Background())
	lj := &localJob{cancel: cancel, end: make(chan struct{})}
	lj.cur.Store(j.DeepCopy())
	jc := &job.Controller{
		Job:    j,
		Pods:   pods,
		NewPod: func(ix int) *corev1.Pod { return manifest.NewJobPod(j, ix) },
		Start: func(p *corev1.Pod) job.PodHandle {
			lp := l.run(ctx, p, objs)
			lj.mu.Lock()
			lj.all = append(lj.all, lp)
			lj.mu.Unlock()
			lj.notify()
			return lp.sup
		},
		OnStatus: func(j *batchv1.Job) { lj.cur.Store(j.DeepCopy()); lj.notify() },
	}
	go func() {
		defer close(lj.end)
		lj.cur.Store(jc.Run(ctx))
		lj.notify()
	}()
	return lj
}

type localJob struct {
	notifier
	cur    atomic.Pointer[batchv1.Job]
	cancel context.CancelFunc
	end    chan struct{} // closed when the controller returned

	mu  sync.Mutex // guards all
	all []*localPod
}

func (lj *localJob) job() *batchv1.Job { return lj.cur.Load() }

func (lj *localJob) pods() []podConn {
	lj.mu.Lock()
	defer lj.mu.Unlock()
	var out []podConn
	for _, p := range lj.all {
		out = append(out, p)
	}
	return out
}

func (lj *localJob) stop() {
	lj.cancel() // deletes the Job's pods
	<-lj.end
	for _, p := range lj.pods() {
		<-p.done()
	}
}

// coreEvents are a supervisor's events as the API shows them.
func coreEvents(p *corev1.Pod, es []pod.Event) []corev1.Event {
	var out []corev1.Event
	for _, e := range es {
		out = append(out, corev1.Event{
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID, FieldPath: e.FieldPath},
			Type:           e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count,
			FirstTimestamp: metav1.NewTime(e.First), LastTimestamp: metav1.NewTime(e.Last),
			Source: corev1.EventSource{Component: "kubelet"},
		})
	}
	return out
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, c := range podspec.Containers(&p.Spec) {
		if c.Name == name {
			return true
		}
	}
	return false
}

// willNotRun: the container's last instance ended and it will not be
// restarted (the pod is finished or its restart policy says so).
func willNotRun(p *corev1.Pod, name string) bool {
	if ph := p.Status.Phase; ph == corev1.PodSucceeded || ph == corev1.PodFailed {
		return true
	}
	for _, cs := range podspec.Statuses(&p.Status) {
		if cs.Name != name || cs.State.Terminated == nil {
			continue
		}
		for i := range p.Spec.InitContainers {
			if c := &p.Spec.InitContainers[i]; c.Name == name {
				return !pod.ShouldRestart(p.Spec.RestartPolicy, c, true, cs.State.Terminated.ExitCode)
			}
		}
		for i := range p.Spec.Containers {
			if c := &p.Spec.Containers[i]; c.Name == name {
				return !pod.ShouldRestart(p.Spec.RestartPolicy, c, false, cs.State.Terminated.ExitCode)
			}
		}
	}
	return false
}
