package kubeapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/podrun/podrun/api"
)

// bookmarkEvery is how often a watch that allows bookmarks gets one.
var bookmarkEvery = 30 * time.Second

// watch streams the changes of a kind as the API server does:
//
//   - resourceVersion unset or "0": an ADDED event per object that exists,
//     then every change;
//   - resourceVersion N: only what changed after N, so that a client that
//     listed at N (kubectl get -w) sees no object twice;
//   - sendInitialEvents=true: the existing objects whatever N, then a
//     BOOKMARK marked k8s.io/initial-events-end;
//   - allowWatchBookmarks: a BOOKMARK with the newest resourceVersion now
//     and then; timeoutSeconds ends the stream.
//
// The backend keeps no history: an object deleted between the list at N
// and the watch is not reported (the client sees it at its next list).
func (s *server) watch(w http.ResponseWriter, r *http.Request, t target, match func(api.Object) bool, out output) {
	q := r.URL.Query()
	ctx := r.Context()
	if v := q.Get("timeoutSeconds"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			api.WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("timeoutSeconds: %q is not a number of seconds", v)))
			return
		}
		if secs > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Duration(secs)*time.Second)
			defer cancel()
		}
	}
	var since int64
	if v := q.Get("resourceVersion"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			api.WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("resourceVersion: %q is not a resource version of podrun", v)))
			return
		}
		since = n
	}
	sendInitial := isTrue(q.Get("sendInitialEvents"))
	if sendInitial {
		since = 0
	}
	bookmarks := isTrue(q.Get("allowWatchBookmarks")) && !out.table

	ch, initial, err := s.events(ctx, t)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", watchContentType(out.info))
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := watchEncoder(w, out.info)
	newest := since
	send := func(typ string, obj runtime.Object) bool {
		return enc(typ, obj) == nil && rc.Flush() == nil
	}
	bookmark := func(end bool) bool {
		o, err := bookmarkOf(t.k, newest, end)
		return err == nil && send("BOOKMARK", o)
	}
	if sendInitial && initial == 0 && !bookmark(true) {
		return
	}
	tick := time.NewTicker(bookmarkEvery)
	defer tick.Stop()
	for seen := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if bookmarks && !bookmark(false) {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			seen++
			rv, _ := strconv.ParseInt(ev.Object.GetResourceVersion(), 10, 64)
			if rv > newest {
				newest = rv
			}
			// An object already there at the client's resourceVersion.
			skip := ev.Type == "ADDED" && since > 0 && rv <= since
			if !skip && match(ev.Object) {
				var obj runtime.Object = ev.Object
				if out.table {
					obj = s.table(t.k, []api.Object{ev.Object}, ev.Object.GetResourceVersion(), out)
				}
				if !send(ev.Type, obj) {
					return
				}
			}
			if sendInitial && seen == initial && !bookmark(true) {
				return
			}
		}
	}
}

// events is the backend's watch of t's kind, or, for a synthesized kind,
// its objects once (they never change while the daemon runs); initial is
// how many events were already waiting: the existing objects.
func (s *server) events(ctx context.Context, t target) (<-chan api.Event, int, error) {
	if !t.k.synthetic {
		ch, err := s.b.Watch(ctx, t.k.Resource, t.ns)
		if err != nil {
			return nil, 0, err
		}
		return ch, len(ch), nil
	}
	objs, err := s.objects(t.k, "")
	if err != nil {
		return nil, 0, err
	}
	ch := make(chan api.Event, len(objs))
	for _, o := range objs {
		ch <- api.Event{Type: "ADDED", Object: o}
	}
	return ch, len(objs), nil
}

// bookmarkOf is the object of a BOOKMARK event: an empty object of k with
// only a resourceVersion (and the end-of-initial-events annotation).
func bookmarkOf(k *kind, rv int64, end bool) (runtime.Object, error) {
	o, err := scheme.New(k.gvk())
	if err != nil {
		return nil, err
	}
	o.GetObjectKind().SetGroupVersionKind(k.gvk())
	m, err := meta.Accessor(o)
	if err != nil {
		return nil, err
	}
	m.SetResourceVersion(strconv.FormatInt(rv, 10))
	if end {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return o, nil
}
