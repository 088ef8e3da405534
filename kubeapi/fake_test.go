package kubeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/yaml"

	"github.com/podrun/podrun/api"
)

// fake is a small in-memory api.Backend: pods run at once (Running,
// ready), a pod's spec cannot change but its labels and images can, a
// deleted pod lingers 300 ms with its deletionTimestamp.
type fake struct {
	mu       sync.Mutex
	rv       int64
	objs     map[string]api.Object // resource/ns/name
	watchers map[*fakeWatcher]bool
	applied  int // how many applies changed something
}

type fakeWatcher struct {
	res api.Resource
	ns  string
	ch  chan api.Event
}

func newFake() *fake {
	return &fake{objs: map[string]api.Object{}, watchers: map[*fakeWatcher]bool{}}
}

func fkey(r api.Resource, ns, name string) string { return r.Name + "/" + ns + "/" + name }

func (f *fake) emit(r api.Resource, typ string, o api.Object) {
	if typ == "DELETED" { // a deletion has its own resourceVersion, as in the daemon
		o = o.DeepCopyObject().(api.Object)
		f.rv++
		o.SetResourceVersion(strconv.FormatInt(f.rv, 10))
	}
	for w := range f.watchers {
		if w.res == r && (w.ns == "" || w.ns == o.GetNamespace()) {
			w.ch <- api.Event{Type: typ, Object: o}
		}
	}
}

func resourceOfKind(kind string) (api.Resource, api.Object, bool) {
	switch kind {
	case "Pod":
		return api.Pods, &corev1.Pod{}, true
	case "ConfigMap":
		return api.ConfigMaps, &corev1.ConfigMap{}, true
	case "Secret":
		return api.Secrets, &corev1.Secret{}, true
	case "Deployment":
		return api.Deployments, &appsv1.Deployment{}, true
	case "Job":
		return api.Jobs, &batchv1.Job{}, true
	}
	return api.Resource{}, nil, false
}

func (f *fake) Apply(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	return f.apply(data, false)
}

func (f *fake) ApplyDryRun(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	return f.apply(data, true)
}

func (f *fake) apply(data []byte, dry bool) ([]api.Applied, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []api.Object
	var res []api.Resource
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, api.InvalidManifest([]string{err.Error()})
		}
		var tm metav1.TypeMeta
		_ = json.Unmarshal(raw, &tm)
		r, o, ok := resourceOfKind(tm.Kind)
		if !ok {
			return nil, api.InvalidManifest([]string{fmt.Sprintf("kind %q: podrun does not run it", tm.Kind)})
		}
		if err := json.Unmarshal(raw, o); err != nil {
			return nil, api.InvalidManifest([]string{err.Error()})
		}
		if o.GetNamespace() == "" {
			o.SetNamespace("default")
		}
		if p, ok := o.(*corev1.Pod); ok && len(p.Spec.Containers) == 0 {
			return nil, api.InvalidManifest([]string{"spec.containers: Required value"})
		}
		objs, res = append(objs, o), append(res, r)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Applied
	for i, o := range objs {
		old := f.objs[fkey(res[i], o.GetNamespace(), o.GetName())]
		action := "created"
		if old != nil {
			action = "unchanged"
			if len(o.GetManagedFields()) == 0 { // as the daemon: a manifest without them keeps them
				o.SetManagedFields(old.GetManagedFields())
			}
			if !equality.Semantic.DeepEqual(old.GetManagedFields(), o.GetManagedFields()) {
				action = "configured"
			}
			if p, ok := o.(*corev1.Pod); ok {
				a, b := old.(*corev1.Pod).Spec.DeepCopy(), p.Spec.DeepCopy()
				a.NodeName, b.NodeName = "", ""
				for i := range a.Containers {
					a.Containers[i].Image = ""
				}
				for i := range b.Containers {
					b.Containers[i].Image = ""
				}
				if !equality.Semantic.DeepEqual(a, b) {
					return nil, api.InvalidManifest([]string{fmt.Sprintf("pod %q: podrun can change only the images, labels and annotations of an existing pod, not spec.containers[0].command; delete the pod and apply it again", p.Name)})
				}
				if !equality.Semantic.DeepEqual(old.(*corev1.Pod).Spec.Containers, p.Spec.Containers) {
					action = "configured"
				}
			}
			if _, ok := o.(*corev1.Pod); !ok && !bytes.Equal(content(old), content(o)) {
				action = "configured"
			}
			if !equality.Semantic.DeepEqual(old.GetLabels(), o.GetLabels()) || !equality.Semantic.DeepEqual(old.GetAnnotations(), o.GetAnnotations()) {
				action = "configured"
			}
		}
		out = append(out, api.Applied{Kind: res[i].Kind, Namespace: o.GetNamespace(), Name: o.GetName(), Action: action})
		if dry || action == "unchanged" {
			continue
		}
		f.applied++
		f.put(res[i], o, old)
	}
	return out, nil
}

// put stores o (f.mu held), keeping what the server owns of old.
func (f *fake) put(r api.Resource, o, old api.Object) {
	f.rv++
	o.SetResourceVersion(strconv.FormatInt(f.rv, 10))
	typ := "ADDED"
	if old != nil {
		typ = "MODIFIED"
		o.SetUID(old.GetUID())
		o.SetCreationTimestamp(old.GetCreationTimestamp())
	} else {
		o.SetUID(types.UID(fmt.Sprintf("uid-%d", f.rv)))
		o.SetCreationTimestamp(metav1.NewTime(time.Now().Add(-time.Minute)))
	}
	switch v := o.(type) {
	case *corev1.Pod:
		v.APIVersion, v.Kind = "v1", "Pod"
		v.Spec.NodeName = "testnode"
		v.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.77.0.5", PodIPs: []corev1.PodIP{{IP: "10.77.0.5"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.PodInitialized, Status: corev1.ConditionTrue}}}
		for _, c := range v.Spec.Containers {
			v.Status.ContainerStatuses = append(v.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: o.GetCreationTimestamp()}}})
		}
	case *corev1.ConfigMap:
		v.APIVersion, v.Kind = "v1", "ConfigMap"
	case *corev1.Secret:
		v.APIVersion, v.Kind = "v1", "Secret"
	case *appsv1.Deployment:
		v.APIVersion, v.Kind = "apps/v1", "Deployment"
	case *batchv1.Job:
		v.APIVersion, v.Kind = "batch/v1", "Job"
	}
	f.objs[fkey(r, o.GetNamespace(), o.GetName())] = o
	f.emit(r, typ, o)
}

func (f *fake) Create(ctx context.Context, r api.Resource, ns string, data []byte) (api.Object, error) {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	meta, _ := m["metadata"].(map[string]any)
	name, _ := meta["name"].(string)
	meta["namespace"] = ns
	if _, err := f.Get(r, ns, name); err == nil {
		return nil, apierrors.NewAlreadyExists(r.GroupResource(), name)
	}
	data, _ = json.Marshal(m)
	if _, err := f.Apply(ctx, r.Name, data); err != nil {
		return nil, err
	}
	return f.Get(r, ns, name)
}

func (f *fake) List(r api.Resource, ns string) ([]api.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Object
	for _, o := range f.objs {
		if o.GetObjectKind().GroupVersionKind().Kind == r.Kind && (ns == "" || o.GetNamespace() == ns) {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].GetNamespace()+"/"+out[i].GetName() < out[j].GetNamespace()+"/"+out[j].GetName()
	})
	return out, nil
}

func (f *fake) Get(r api.Resource, ns, name string) (api.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if o := f.objs[fkey(r, ns, name)]; o != nil {
		return o, nil
	}
	return nil, apierrors.NewNotFound(r.GroupResource(), name)
}

func (f *fake) Delete(r api.Resource, ns, name string, grace *int64) (api.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := fkey(r, ns, name)
	o := f.objs[k]
	if o == nil {
		return nil, apierrors.NewNotFound(r.GroupResource(), name)
	}
	if r != api.Pods {
		delete(f.objs, k)
		f.emit(r, "DELETED", o)
		return o, nil
	}
	if o.GetDeletionTimestamp() != nil {
		return o, nil
	}
	p := o.DeepCopyObject().(*corev1.Pod)
	now := metav1.Now()
	p.DeletionTimestamp = &now
	f.rv++
	p.ResourceVersion = strconv.FormatInt(f.rv, 10)
	f.objs[k] = p
	f.emit(r, "MODIFIED", p)
	time.AfterFunc(300*time.Millisecond, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.objs, k)
		f.emit(r, "DELETED", p)
	})
	return p, nil
}

func (f *fake) ResourceVersion() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rv
}

func (f *fake) Watch(ctx context.Context, r api.Resource, ns string) (<-chan api.Event, error) {
	objs, _ := f.List(r, ns)
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWatcher{res: r, ns: ns, ch: make(chan api.Event, len(objs)+100)}
	for _, o := range objs {
		w.ch <- api.Event{Type: "ADDED", Object: o}
	}
	f.watchers[w] = true
	context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.watchers, w)
		close(w.ch)
	})
	return w.ch, nil
}

// Logs writes three lines per container; timestamps, tail and previous as
// the daemon would.
func (f *fake) Logs(ctx context.Context, ns, name string, o *corev1.PodLogOptions, w io.Writer) error {
	obj, err := f.Get(api.Pods, ns, name)
	if err != nil {
		return err
	}
	p := obj.(*corev1.Pod)
	c := o.Container
	if c == "" {
		if len(p.Spec.Containers) != 1 {
			return apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s", name))
		}
		c = p.Spec.Containers[0].Name
	}
	if o.Previous {
		return apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", c, name))
	}
	lines := []string{c + " line 1", c + " line 2", c + " line 3"}
	if o.TailLines != nil && int(*o.TailLines) < len(lines) {
		lines = lines[len(lines)-int(*o.TailLines):]
	}
	for _, l := range lines {
		if o.Timestamps {
			l = "2026-01-02T03:04:05.000000000Z " + l
		}
		if _, err := fmt.Fprintln(w, l); err != nil {
			return err
		}
	}
	if o.Follow {
		<-ctx.Done()
	}
	return nil
}

// Exec runs the command on the host (see hostExec).
func (f *fake) Exec(ctx context.Context, ns, name string, q url.Values) (io.ReadWriteCloser, error) {
	if _, err := f.Get(api.Pods, ns, name); err != nil {
		return nil, err
	}
	return hostExec(q), nil
}

// Attach attaches to a container running cat: stdin comes back on stdout.
func (f *fake) Attach(ctx context.Context, ns, name string, q url.Values) (io.ReadWriteCloser, error) {
	if _, err := f.Get(api.Pods, ns, name); err != nil {
		return nil, err
	}
	return hostExec(url.Values{"command": {"cat"}, "stdin": {q.Get("stdin")}}), nil
}

// PortForward connects to the port on the host's loopback.
func (f *fake) PortForward(ctx context.Context, ns, name string, port int) (net.Conn, error) {
	if _, err := f.Get(api.Pods, ns, name); err != nil {
		return nil, err
	}
	return (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
}

// Metrics: each container of a pod uses 5m CPU and 3 MiB.
func (f *fake) Metrics(ctx context.Context, ns, name string) (*api.PodMetrics, error) {
	o, err := f.Get(api.Pods, ns, name)
	if err != nil {
		return nil, err
	}
	p := o.(*corev1.Pod)
	m := &api.PodMetrics{TypeMeta: metav1.TypeMeta{APIVersion: "metrics.k8s.io/v1beta1", Kind: "PodMetrics"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: p.Labels}, Timestamp: metav1.Now(), Window: metav1.Duration{Duration: time.Second}}
	for _, c := range p.Spec.Containers {
		m.Containers = append(m.Containers, api.ContainerMetrics{Name: c.Name, Usage: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("5m"), corev1.ResourceMemory: resource.MustParse("3Mi")}})
	}
	return m, nil
}

// content is an object's JSON without its metadata and status.
func content(o api.Object) []byte {
	b, _ := json.Marshal(o)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "metadata")
	delete(m, "status")
	b, _ = json.Marshal(m)
	return b
}
