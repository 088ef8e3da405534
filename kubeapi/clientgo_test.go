package kubeapi

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// typeRecorder records the Content-Type of every request and response.
type typeRecorder struct {
	mu         sync.Mutex
	sent, got  map[string]int
	underlying http.RoundTripper
}

func (tr *typeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tr.underlying.RoundTrip(r)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		tr.sent[ct]++
	}
	if err == nil {
		tr.got[resp.Header.Get("Content-Type")]++
	}
	return resp, err
}

// protobufClient is a typed clientset that sends and accepts only
// protobuf, and what it sent and got.
func (c *testCluster) protobufClient(t *testing.T) (*kubernetes.Clientset, *typeRecorder) {
	tr := &typeRecorder{sent: map[string]int{}, got: map[string]int{}}
	cfg := &rest.Config{Host: c.srv.URL, BearerToken: c.creds.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.creds.CA},
		ContentConfig: rest.ContentConfig{ContentType: runtime.ContentTypeProtobuf,
			AcceptContentTypes: runtime.ContentTypeProtobuf},
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { tr.underlying = rt; return tr },
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs, tr
}

// TestClientGoProtobuf: a typed clientset speaking only protobuf and a
// shared informer (which lists with WatchList, sendInitialEvents) create,
// list, watch and delete pods and a ConfigMap.
func TestClientGoProtobuf(t *testing.T) {
	c := startCluster(t, "")
	cs, tr := c.protobufClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"a": "1"}}
	got, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	if err != nil || got.Data["a"] != "1" || got.UID == "" {
		t.Fatalf("create configmap: %v %+v", err, got)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}

	events := make(chan string, 100)
	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { events <- "add " + o.(*corev1.Pod).Name },
		UpdateFunc: func(_, o any) { events <- "update " + o.(*corev1.Pod).Name },
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			events <- "delete " + o.(*corev1.Pod).Name
		},
	}); err != nil {
		t.Fatal(err)
	}
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox", Command: []string{"sleep", "3600"}}}}}
	}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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
				if got[:6] != "update" {
					t.Fatalf("informer: %q while waiting for %q", got, ev)
				}
			case <-ctx.Done():
				t.Fatalf("informer: no %q", ev)
			}
		}
	}
	want("add before")

	list, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{LabelSelector: "app=before"})
	if err != nil || len(list.Items) != 1 || list.Items[0].Status.Phase != corev1.PodRunning || list.ResourceVersion == "" {
		t.Fatalf("list: %v %+v", err, list)
	}
	w, err := cs.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod("after"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want("add after")
	if ev := <-w.ResultChan(); ev.Type != watch.Added || ev.Object.(*corev1.Pod).Name != "after" {
		t.Errorf("watch from the list's resourceVersion: %s %v", ev.Type, ev.Object)
	}
	if err := cs.CoreV1().Pods("default").Delete(ctx, "after", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want("delete after")
	if err := cs.CoreV1().ConfigMaps("default").Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "settings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after delete: %v", err)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	for ct := range tr.sent {
		if ct != runtime.ContentTypeProtobuf {
			t.Errorf("client-go sent a %s body", ct)
		}
	}
	for ct, n := range tr.got {
		if ct != runtime.ContentTypeProtobuf && ct != runtime.ContentTypeProtobuf+";stream=watch" && ct != "application/json" {
			t.Errorf("%d answers in %s", n, ct)
		}
	}
	if tr.got[runtime.ContentTypeProtobuf] == 0 || tr.got[runtime.ContentTypeProtobuf+";stream=watch"] == 0 {
		t.Errorf("answers: %v, want protobuf objects and watches", tr.got)
	}
}

// TestMetadataClient: client-go's metadata client and a metadata informer
// (as=PartialObjectMetadata[List], protobuf) get, list and watch pods.
func TestMetadataClient(t *testing.T) {
	c := startCluster(t, "")
	cs, _ := c.protobufClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr := &typeRecorder{sent: map[string]int{}, got: map[string]int{}}
	cfg := &rest.Config{Host: c.srv.URL, BearerToken: c.creds.Token, TLSClientConfig: rest.TLSClientConfig{CAData: c.creds.CA},
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { tr.underlying = rt; return tr }}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pods := corev1.SchemeGroupVersion.WithResource("pods")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m, err := mc.Resource(pods).Namespace("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil || m.Labels["app"] != "web" || m.UID == "" || len(m.ManagedFields) == 0 {
		t.Fatalf("metadata get: %v %+v", err, m)
	}
	l, err := mc.Resource(pods).List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 1 || l.Items[0].Name != "web" || l.ResourceVersion == "" {
		t.Fatalf("metadata list: %v %+v", err, l)
	}
	factory := metadatainformer.NewSharedInformerFactory(mc, 0)
	inf := factory.ForResource(pods).Informer()
	added := make(chan string, 10)
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(o any) { added <- o.(*metav1.PartialObjectMetadata).Name }})
	stop := make(chan struct{})
	factory.Start(stop)
	defer factory.Shutdown()
	defer close(stop)
	for _, want := range []string{"web", "db"} {
		if want == "db" {
			pod.Name = "db"
			if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case got := <-added:
			if got != want {
				t.Errorf("metadata informer: added %s, want %s", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("metadata informer: no %s", want)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.got[runtime.ContentTypeProtobuf] == 0 {
		t.Errorf("answers: %v, want protobuf", tr.got)
	}
}
