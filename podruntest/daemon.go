package podruntest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

// daemon runs pods on a podrun daemon through its API.
type daemon struct {
	c *client.Client
}

func newDaemon(socket string) *daemon {
	if socket == "" {
		socket = client.DefaultSocket
	}
	return &daemon{c: client.New(socket)}
}

var errDaemonImages = errors.New("images of a daemon are the daemon's: load or pull them with `podrun image load -i` / `podrun image pull` before the tests")

func (d *daemon) loadImage(context.Context, string) error { return errDaemonImages }
func (d *daemon) pullImage(context.Context, string) error { return errDaemonImages }

func (d *daemon) start(ctx context.Context, ns, file string, data []byte) ([]podConn, []jobConn, func(), error) {
	data, err := inNamespace(data, ns)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	applied, err := d.c.Apply(ctx, file, data)
	var pods []podConn
	var jobs []jobConn
	var rest []api.Applied
	for _, a := range applied {
		switch a.Kind {
		case "Pod":
			pods = append(pods, d.watchPod(a.Namespace, a.Name))
		case "Job":
			jobs = append(jobs, d.watchJob(a.Namespace, a.Name))
		default:
			rest = append(rest, a)
		}
	}
	stop := func() {
		for _, a := range rest {
			for _, r := range api.Resources {
				if r.Kind == a.Kind {
					_ = d.c.Delete(context.Background(), r, a.Namespace, a.Name, nil)
				}
			}
		}
	}
	return pods, jobs, stop, err
}

// watch follows one object until it is deleted, calling fn with each
// version; it reconnects when the stream breaks.
func (d *daemon) watch(ctx context.Context, r api.Resource, ns, name string, fn func(json.RawMessage), gone func()) {
	defer gone()
	for ctx.Err() == nil {
		err := d.c.Watch(ctx, r, ns, client.Selector{Field: "metadata.name=" + name}, func(ev api.WatchEvent) error {
			if ev.Type == "DELETED" {
				return client.ErrStopWatch
			}
			fn(ev.Object)
			return nil
		})
		if err == nil {
			return // deleted
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // the daemon restarts
		}
	}
}

func (d *daemon) watchPod(ns, name string) *daemonPod {
	ctx, cancel := context.WithCancel(context.Background())
	dp := &daemonPod{d: d, ns: ns, name: name, gone: make(chan struct{}), cancel: cancel}
	dp.cur.Store(&corev1.Pod{})
	dp.cur.Load().Name, dp.cur.Load().Namespace = name, ns
	ready := make(chan struct{})
	var once sync.Once
	go d.watch(ctx, api.Pods, ns, name, func(raw json.RawMessage) {
		var p corev1.Pod
		if json.Unmarshal(raw, &p) == nil {
			dp.cur.Store(&p)
			dp.notify()
		}
		once.Do(func() { close(ready) })
	}, func() { close(dp.gone); dp.notify(); once.Do(func() { close(ready) }) })
	select { // the first version, so that pod() has the spec
	case <-ready:
	case <-time.After(10 * time.Second):
	}
	return dp
}

// daemonPod is a pod of the daemon, followed through a watch.
type daemonPod struct {
	notifier
	d        *daemon
	ns, name string
	cur      atomic.Pointer[corev1.Pod]
	gone     chan struct{}
	cancel   context.CancelFunc
}

func (dp *daemonPod) pod() *corev1.Pod      { return dp.cur.Load() }
func (dp *daemonPod) done() <-chan struct{} { return dp.gone }

func (dp *daemonPod) delete() {
	_ = dp.d.c.Delete(context.Background(), api.Pods, dp.ns, dp.name, nil)
}

func (dp *daemonPod) events() []corev1.Event {
	evs, err := dp.d.c.Events(context.Background(), dp.ns, dp.name)
	if err != nil {
		return []corev1.Event{{Type: "Warning", Reason: "PodruntestEvents", Message: err.Error()}}
	}
	return evs
}

func (dp *daemonPod) logs(ctx context.Context, container string, follow bool) (io.ReadCloser, error) {
	if follow {
		// The daemon has no log of a container not created yet.
		if err := (&Pod{c: dp}).waitPod(ctx, Condition{met: func(p *corev1.Pod) (bool, error) {
			for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
				if cs.Name == container && (cs.State.Running != nil || cs.State.Terminated != nil || cs.RestartCount > 0) {
					return true, nil
				}
			}
			return false, terminalErr(p)
		}}); err != nil {
			return nil, err
		}
	}
	return dp.d.c.Logs(ctx, dp.ns, dp.name, &corev1.PodLogOptions{Container: container, Follow: follow})
}

func (dp *daemonPod) exec(ctx context.Context, container string, cmd []string, stdout, stderr io.Writer) (int, error) {
	return dp.d.c.Exec(ctx, dp.ns, dp.name, client.ExecOptions{Container: container, Command: cmd, Stdout: stdout, Stderr: stderr})
}

func (dp *daemonPod) dial(ctx context.Context, port int32) (net.Conn, error) {
	return dp.d.c.PortForward(ctx, dp.ns, dp.name, int(port))
}

func (d *daemon) watchJob(ns, name string) *daemonJob {
	ctx, cancel := context.WithCancel(context.Background())
	dj := &daemonJob{d: d, ns: ns, name: name, gone: make(chan struct{}), cancel: cancel, byName: map[string]*daemonPod{}}
	first := &batchv1.Job{}
	first.Name, first.Namespace = name, ns
	dj.cur.Store(first)
	go d.watch(ctx, api.Jobs, ns, name, func(raw json.RawMessage) {
		var j batchv1.Job
		if json.Unmarshal(raw, &j) == nil {
			dj.cur.Store(&j)
			dj.notify()
		}
	}, func() { close(dj.gone); dj.notify() })
	return dj
}

// daemonJob is a Job of the daemon, followed through a watch.
type daemonJob struct {
	notifier
	d        *daemon
	ns, name string
	cur      atomic.Pointer[batchv1.Job]
	gone     chan struct{}
	cancel   context.CancelFunc

	mu     sync.Mutex // guards byName
	byName map[string]*daemonPod
}

func (dj *daemonJob) job() *batchv1.Job { return dj.cur.Load() }

func (dj *daemonJob) pods() []podConn {
	var list corev1.PodList
	_ = dj.d.c.List(context.Background(), api.Pods, dj.ns, client.Selector{Label: batchv1.JobNameLabel + "=" + dj.name}, &list)
	var out []podConn
	for _, p := range list.Items {
		dj.mu.Lock()
		dp := dj.byName[p.Name]
		if dp == nil {
			dp = dj.d.watchPod(dj.ns, p.Name)
			dj.byName[p.Name] = dp
		}
		dj.mu.Unlock()
		out = append(out, dp)
	}
	return out
}

func (dj *daemonJob) stop() {
	pods := dj.pods()
	_ = dj.d.c.Delete(context.Background(), api.Jobs, dj.ns, dj.name, nil)
	timeout := time.After(cleanupTimeout)
	select {
	case <-dj.gone:
	case <-timeout:
	}
	for _, p := range pods {
		p.delete()
		select {
		case <-p.done():
		case <-timeout:
		}
	}
	dj.cancel()
}
