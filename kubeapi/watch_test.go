package kubeapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

func configMap(name string, labels map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: map[string]string{"k": "v"}}
}

// next is the next event of w, failing at the test's context's end.
func next(ctx context.Context, t *testing.T, w watch.Interface) watch.Event {
	t.Helper()
	select {
	case ev, ok := <-w.ResultChan():
		if !ok {
			t.Fatal("the watch ended")
		}
		return ev
	case <-ctx.Done():
		t.Fatal("no watch event")
	}
	return watch.Event{}
}

func eventString(ev watch.Event) string {
	if ev.Type == watch.Error {
		return "ERROR " + apierrors.FromObject(ev.Object).Error()
	}
	o := ev.Object.(metav1.Object)
	return string(ev.Type) + " " + o.GetName()
}

func watchFrom(ctx context.Context, t *testing.T, cs *kubernetes.Clientset, opts metav1.ListOptions) watch.Interface {
	t.Helper()
	w, err := cs.CoreV1().ConfigMaps("default").Watch(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// TestWatchResumes: a watch from a resourceVersion replays what changed
// after it, deletions included, each with a newer resourceVersion; from a
// resourceVersion older than the kept history it is 410 Expired.
func TestWatchResumes(t *testing.T) {
	c := startCluster(t, "")
	cs, _ := c.protobufClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cms := cs.CoreV1().ConfigMaps("default")
	for _, n := range []string{"a", "b"} {
		if _, err := cms.Create(ctx, configMap(n, nil), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := cms.List(ctx, metav1.ListOptions{})
	if err != nil || len(l.Items) != 2 {
		t.Fatalf("list: %v %v", err, l)
	}
	a := configMap("a", map[string]string{"v": "2"})
	if _, err := cms.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w := watchFrom(ctx, t, cs, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	listed, _ := strconv.Atoi(l.ResourceVersion)
	rvs := []int{listed}
	for _, want := range []string{"MODIFIED a", "DELETED b"} {
		ev := next(ctx, t, w)
		if got := eventString(ev); got != want {
			t.Fatalf("replay: %s, want %s", got, want)
		}
		rv, _ := strconv.Atoi(ev.Object.(metav1.Object).GetResourceVersion())
		rvs = append(rvs, rv)
	}
	if !(rvs[0] < rvs[1] && rvs[1] < rvs[2]) {
		t.Errorf("resourceVersions: list, then the events: %v", rvs)
	}

	defer func(n int) { historySize = n }(historySize)
	historySize = 2
	for i := range 3 {
		a.Data = map[string]string{"i": string(rune('0' + i))}
		if _, err := cms.Update(ctx, a, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w = watchFrom(ctx, t, cs, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	ev := next(ctx, t, w)
	if ev.Type != watch.Error || !apierrors.IsResourceExpired(apierrors.FromObject(ev.Object)) ||
		!strings.Contains(eventString(ev), "too old resource version: "+l.ResourceVersion) {
		t.Errorf("a watch from before the history: %s", eventString(ev))
	}
	// From the newest list, nothing is replayed.
	l, _ = cms.List(ctx, metav1.ListOptions{})
	w = watchFrom(ctx, t, cs, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if _, err := cms.Create(ctx, configMap("c", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := eventString(next(ctx, t, w)); got != "ADDED c" {
		t.Errorf("after the newest list: %s, want ADDED c", got)
	}
}

// TestWatchListAndBookmarks: sendInitialEvents sends the objects, then the
// initial-events-end BOOKMARK; bookmarks come when allowed; a selector's
// watch sees an object that stops matching DELETED; timeoutSeconds ends
// the stream.
func TestWatchListAndBookmarks(t *testing.T) {
	defer func(d time.Duration) { bookmarkEvery = d }(bookmarkEvery)
	bookmarkEvery = 50 * time.Millisecond
	c := startCluster(t, "")
	cs, _ := c.protobufClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cms := cs.CoreV1().ConfigMaps("default")
	for _, n := range []string{"a", "b"} {
		if _, err := cms.Create(ctx, configMap(n, map[string]string{"app": "x"}), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	yes := true
	w := watchFrom(ctx, t, cs, metav1.ListOptions{SendInitialEvents: &yes, AllowWatchBookmarks: true,
		ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan, LabelSelector: "app=x"})
	for _, want := range []string{"ADDED a", "ADDED b", "BOOKMARK "} {
		ev := next(ctx, t, w)
		if got := eventString(ev); got != want {
			t.Fatalf("initial events: %s, want %s", got, want)
		}
		if ev.Type == watch.Bookmark && ev.Object.(metav1.Object).GetAnnotations()[metav1.InitialEventsAnnotationKey] != "true" {
			t.Errorf("the bookmark after the initial events: %v", ev.Object)
		}
	}
	if _, err := cms.Update(ctx, configMap("a", map[string]string{"app": "y"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		ev := next(ctx, t, w)
		if ev.Type == watch.Bookmark {
			continue // periodic ones
		}
		if got := eventString(ev); got != "DELETED a" {
			t.Errorf("after a stops matching: %s", got)
		}
		break
	}
	// A periodic bookmark.
	if ev := next(ctx, t, w); ev.Type != watch.Bookmark || ev.Object.(metav1.Object).GetResourceVersion() == "" {
		t.Errorf("want a bookmark: %s", eventString(ev))
	}

	if _, err := cms.Watch(ctx, metav1.ListOptions{SendInitialEvents: &yes}); !apierrors.IsInvalid(err) ||
		!strings.Contains(err.Error(), "sendInitialEvents requires setting allowWatchBookmarks to true") {
		t.Errorf("sendInitialEvents without bookmarks: %v", err)
	}

	secs := int64(1)
	w = watchFrom(ctx, t, cs, metav1.ListOptions{TimeoutSeconds: &secs})
	for {
		select {
		case _, ok := <-w.ResultChan():
			if ok {
				continue
			}
		case <-ctx.Done():
			t.Fatal("timeoutSeconds did not end the watch")
		}
		break
	}
}

// TestWrongKindBody: a body of another kind is refused, naming it.
func TestWrongKindBody(t *testing.T) {
	c := startCluster(t, "")
	req, _ := http.NewRequest("POST", c.srv.URL+"/api/v1/namespaces/default/pods",
		strings.NewReader(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":"1"}}`))
	req.Header.Set("Authorization", "Bearer "+c.creds.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `the body must be a Pod, not \"ConfigMap\"`) {
		t.Errorf("a ConfigMap posted as a pod: %d %s", resp.StatusCode, body)
	}
}
