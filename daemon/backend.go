package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/netns"
	"github.com/podrun/podrun/shim"
)

var _ api.Backend = (*Daemon)(nil)

func notFound(r api.Resource, name string) error {
	return apierrors.NewNotFound(r.GroupResource(), name)
}

func parseRV(s string) (int64, error) { return strconv.ParseInt(s, 10, 64) }

// objects is every object of every resource (d.mu held or not yet shared).
func (d *Daemon) objects() []api.Object {
	var out []api.Object
	for _, r := range []api.Resource{api.Pods, api.Deployments, api.ReplicaSets, api.Jobs, api.ConfigMaps, api.Secrets} {
		out = append(out, d.list(r, "")...)
	}
	return out
}

// list returns the objects of r in ns, "" for all, sorted by namespace and
// name (d.mu held).
func (d *Daemon) list(r api.Resource, ns string) []api.Object {
	var out []api.Object
	add := func(k key, o api.Object) {
		if ns == "" || k.ns == ns {
			out = append(out, o)
		}
	}
	switch r {
	case api.Pods:
		for k, rec := range d.pods {
			add(k, rec.pod)
		}
	case api.Deployments:
		for k, o := range d.deployments {
			add(k, o)
		}
	case api.ReplicaSets:
		for k, o := range d.replicaSets {
			add(k, o)
		}
	case api.Jobs:
		for k, rec := range d.jobs {
			add(k, rec.job)
		}
	case api.ConfigMaps:
		for k, o := range d.configMaps {
			add(k, o)
		}
	case api.Secrets:
		for k, o := range d.secrets {
			add(k, o)
		}
	case api.Events:
		for k, rec := range d.pods {
			if ns == "" || k.ns == ns {
				for _, e := range rec.eventObjects() {
					out = append(out, e)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].GetNamespace() != out[j].GetNamespace() {
			return out[i].GetNamespace() < out[j].GetNamespace()
		}
		return out[i].GetName() < out[j].GetName()
	})
	return out
}

// List implements api.Backend.
func (d *Daemon) List(r api.Resource, ns string) ([]api.Object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.list(r, ns), nil
}

// Get implements api.Backend.
func (d *Daemon) Get(r api.Resource, ns, name string) (api.Object, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := keyOf(ns, name)
	var o api.Object
	switch r {
	case api.Pods:
		if rec := d.pods[k]; rec != nil {
			o = rec.pod
		}
	case api.Deployments:
		if dep := d.deployments[k]; dep != nil {
			o = dep
		}
	case api.ReplicaSets:
		if rs := d.replicaSets[k]; rs != nil {
			o = rs
		}
	case api.Jobs:
		if rec := d.jobs[k]; rec != nil {
			o = rec.job
		}
	case api.ConfigMaps:
		if c := d.configMaps[k]; c != nil {
			o = c
		}
	case api.Secrets:
		if s := d.secrets[k]; s != nil {
			o = s
		}
	case api.Events:
		for _, e := range d.list(api.Events, ns) {
			if e.GetName() == name {
				o = e
			}
		}
	}
	if o == nil {
		return nil, notFound(r, name)
	}
	return o, nil
}

// Delete implements api.Backend.
func (d *Daemon) Delete(r api.Resource, ns, name string, grace *int64) (api.Object, error) {
	defer d.store.flush()
	switch r {
	case api.Pods:
		return d.deletePod(ns, name, grace)
	case api.Deployments:
		return d.deleteDeployment(ns, name)
	case api.Jobs:
		return d.deleteJob(ns, name)
	case api.ConfigMaps, api.Secrets:
		d.mu.Lock()
		defer d.mu.Unlock()
		k := keyOf(ns, name)
		var o api.Object
		if r == api.ConfigMaps && d.configMaps[k] != nil {
			o = d.configMaps[k]
			delete(d.configMaps, k)
		} else if r == api.Secrets && d.secrets[k] != nil {
			o = d.secrets[k]
			delete(d.secrets, k)
		}
		if o == nil {
			return nil, notFound(r, name)
		}
		d.forget(r, ns, name)
		d.emit(r, "DELETED", o)
		d.objectsChanged(ns)
		return o, nil
	}
	return nil, apierrors.NewMethodNotSupported(r.GroupResource(), "delete")
}

// Watch implements api.Backend.
func (d *Daemon) Watch(ctx context.Context, r api.Resource, ns string) (<-chan api.Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	objs := d.list(r, ns)
	w := &watcher{res: r, ns: ns, ch: make(chan api.Event, len(objs)+256)}
	for _, o := range objs {
		w.ch <- api.Event{Type: "ADDED", Object: o}
	}
	d.watchers[w] = struct{}{}
	context.AfterFunc(ctx, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if _, ok := d.watchers[w]; ok {
			delete(d.watchers, w)
			close(w.ch)
		}
	})
	return w.ch, nil
}

// runningPod returns a pod that can be exec'd into or forwarded to.
func (d *Daemon) runningPod(ns, name string) (*podRec, *corev1.Pod, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec := d.pods[keyOf(ns, name)]
	if rec == nil {
		return nil, nil, notFound(api.Pods, name)
	}
	if rec.finished {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("pod %s is not running; current phase is %s", name, rec.pod.Status.Phase))
	}
	return rec, rec.pod, nil
}

// Exec implements api.Backend: the shim runs it; frames pass through.
func (d *Daemon) Exec(ctx context.Context, ns, name string, q url.Values) (io.ReadWriteCloser, error) {
	rec, err := d.streamTo(ns, name, q)
	if err != nil {
		return nil, err
	}
	return d.shimStream(ctx, rec, name, func(c *shim.Client) (io.ReadWriteCloser, error) { return c.Exec(ctx, q) })
}

// Attach implements api.Backend: the shim serves it; frames pass through.
func (d *Daemon) Attach(ctx context.Context, ns, name string, q url.Values) (io.ReadWriteCloser, error) {
	rec, err := d.streamTo(ns, name, q)
	if err != nil {
		return nil, err
	}
	return d.shimStream(ctx, rec, name, func(c *shim.Client) (io.ReadWriteCloser, error) { return c.Attach(ctx, q) })
}

// shimReplaceWait bounds how long an exec or attach waits for the shim of
// a pod to answer: a dead shim's replacement takes a back-off (200 ms at
// first) and the new shim's start.
const shimReplaceWait = time.Minute

// shimStream opens a stream with rec's shim. While the shim is being
// replaced (it died: the owner goroutine starts a new one that takes the
// pod over) it waits for the new one to answer instead of failing with
// "connection refused".
func (d *Daemon) shimStream(ctx context.Context, rec *podRec, name string, open func(*shim.Client) (io.ReadWriteCloser, error)) (io.ReadWriteCloser, error) {
	timer := time.NewTimer(shimReplaceWait)
	defer timer.Stop()
	wait := func(ch <-chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-rec.gone:
			return apierrors.NewBadRequest(fmt.Sprintf("pod %s is not running", name))
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return apierrors.NewServiceUnavailable(fmt.Sprintf("the shim of pod %s has not answered for %v", name, shimReplaceWait))
		}
	}
	for {
		d.mu.Lock()
		gen := rec.shimGen
		d.mu.Unlock()
		if err := wait(gen.up); err != nil {
			return nil, err
		}
		c := rec.dir.Connect()
		conn, err := open(c)
		c.Close()
		if err == nil || !(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)) {
			return conn, err
		}
		// It died since it answered: the owner notices, and starts another.
		if err := wait(gen.down); err != nil {
			return nil, err
		}
	}
}

// streamTo finds the running pod of an exec or attach and names its only
// container in q when q names none.
func (d *Daemon) streamTo(ns, name string, q url.Values) (*podRec, error) {
	rec, p, err := d.runningPod(ns, name)
	if err != nil {
		return nil, err
	}
	if q.Get("container") == "" {
		if len(p.Spec.Containers) != 1 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", name, containerNames(p.Spec.Containers)))
		}
		q.Set("container", p.Spec.Containers[0].Name)
	}
	return rec, nil
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// PortForward implements api.Backend: a connection to the pod's loopback,
// dialled from inside its network namespace (the host's for hostNetwork).
func (d *Daemon) PortForward(ctx context.Context, ns, name string, port int) (net.Conn, error) {
	_, p, err := d.runningPod(ns, name)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dial := (&net.Dialer{}).DialContext
	if !p.Spec.HostNetwork {
		dial = netns.Dialer(d.node.Network.NSPath(string(p.UID)))
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("connecting to port %d of pod %s: %v", port, name, err))
	}
	return c, nil
}

// metricsWindow is how long CPU usage is averaged over.
const metricsWindow = 500 * time.Millisecond

// Metrics implements api.Backend: each running container's CPU (averaged
// over a short window) and working-set memory, from its cgroup.
func (d *Daemon) Metrics(ctx context.Context, ns, name string) (*api.PodMetrics, error) {
	_, p, err := d.runningPod(ns, name)
	if err != nil {
		return nil, err
	}
	tree := d.cfg.Node.Cgroups
	var names []string
	for _, cs := range podspec.Statuses(&p.Status) {
		if cs.State.Running != nil {
			names = append(names, cs.Name)
		}
	}
	first := map[string]uint64{}
	for _, n := range names {
		if u, err := tree.Usage(tree.ContainerPath(p, n)); err == nil {
			first[n] = u.CPUNanos
		}
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(metricsWindow):
	}
	window := time.Since(t0)
	m := &api.PodMetrics{
		TypeMeta:   metav1.TypeMeta{APIVersion: "metrics.k8s.io/v1beta1", Kind: "PodMetrics"},
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels},
		Timestamp:  metav1.Now(), Window: metav1.Duration{Duration: window},
	}
	for _, n := range names {
		u, err := tree.Usage(tree.ContainerPath(p, n))
		c0, ok := first[n]
		if err != nil || !ok {
			continue // stopped meanwhile
		}
		nanocores := cgroups.NanoCores(c0, u.CPUNanos, window)
		m.Containers = append(m.Containers, api.ContainerMetrics{Name: n, Usage: corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewScaledQuantity(nanocores, resource.Nano),
			corev1.ResourceMemory: *resource.NewQuantity(int64(u.WorkingSetBytes), resource.BinarySI),
		}})
	}
	return m, nil
}
