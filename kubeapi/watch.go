package kubeapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/podrun/podrun/api"
)

// bookmarkEvery is how often a watch that allows bookmarks gets one.
var bookmarkEvery = 30 * time.Second

// watchOptions are the query parameters of a watch.
type watchOptions struct {
	since       int64 // resume after this resourceVersion
	initial     bool  // an ADDED event per object first
	sendInitial bool  // and then the initial-events-end BOOKMARK
	bookmarks   bool
	timeout     time.Duration
}

// watchOptionsOf reads and checks the parameters as the API server does:
// sendInitialEvents needs allowWatchBookmarks and
// resourceVersionMatch=NotOlderThan, and resourceVersionMatch is only for
// sendInitialEvents (422 Invalid ListOptions otherwise).
func watchOptionsOf(r *http.Request, out output) (watchOptions, error) {
	q := r.URL.Query()
	var o watchOptions
	if v := q.Get("timeoutSeconds"); v != "" {
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			return o, apierrors.NewBadRequest(fmt.Sprintf("timeoutSeconds: %q is not a number of seconds", v))
		}
		o.timeout = time.Duration(secs) * time.Second
	}
	rv := q.Get("resourceVersion")
	if rv != "" && rv != "0" {
		n, err := strconv.ParseInt(rv, 10, 64)
		if err != nil || n < 0 {
			return o, apierrors.NewBadRequest(fmt.Sprintf("resourceVersion: %q is not a resource version of podrun", rv))
		}
		o.since = n
	}
	o.bookmarks = isTrue(q.Get("allowWatchBookmarks")) && !out.table
	var errs field.ErrorList
	match := q.Get("resourceVersionMatch")
	if v, set := q["sendInitialEvents"]; set {
		o.sendInitial = isTrue(v[0])
		if o.sendInitial && !isTrue(q.Get("allowWatchBookmarks")) {
			errs = append(errs, field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires setting allowWatchBookmarks to true"))
		}
		if match != string(metav1.ResourceVersionMatchNotOlderThan) {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"),
				"sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
		}
		o.initial = o.sendInitial
		if !o.sendInitial && (rv == "" || rv == "0") {
			o.since = math.MaxInt64 // from now on: no initial events, nothing to replay
		}
	} else {
		if match != "" {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
		}
		o.initial = rv == "" || rv == "0" // the legacy "most recent": the objects first
	}
	if len(errs) > 0 {
		return o, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs)
	}
	return o, nil
}

// watch streams the changes of a kind as the API server does, from the
// kind's history (history.go):
//
//   - resourceVersion unset or "0": an ADDED event per object, then every
//     change;
//   - resourceVersion N: the changes after N, replayed from the history,
//     then every change; an N older than the history keeps is answered
//     with an ERROR event, 410 Expired, as the watch cache answers;
//   - sendInitialEvents=true: the objects, then a BOOKMARK annotated
//     k8s.io/initial-events-end (client-go's WatchList);
//   - allowWatchBookmarks: a BOOKMARK with the newest resourceVersion
//     every bookmarkEvery; timeoutSeconds ends the stream.
//
// With a selector, an object that stops matching is DELETED for the
// watch, one that starts matching ADDED.
func (s *server) watch(w http.ResponseWriter, r *http.Request, t target, match func(api.Object) bool, out output) {
	o, err := watchOptionsOf(r, out)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	ctx := r.Context()
	if o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	first, rv, live, stop, expired, err := s.watchSource(t, o)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	defer stop()
	w.Header().Set("Content-Type", watchContentType(out.info))
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := watchEncoder(w, out.info)
	send := func(typ string, obj runtime.Object) bool {
		return enc(typ, obj) == nil && rc.Flush() == nil
	}
	if expired != nil {
		st := expired.(apierrors.APIStatus).Status()
		st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
		send("ERROR", &st)
		return
	}
	bookmark := func(rv int64, end bool) bool {
		o, err := bookmarkOf(t.k, rv, end)
		if err == nil && out.partialGV != "" {
			o = partial(o, out.partialGV)
		}
		return err == nil && send("BOOKMARK", o)
	}
	event := func(c change) bool {
		typ, obj := eventFor(c, match)
		if typ == "" {
			return true
		}
		var o runtime.Object = obj
		switch {
		case out.table:
			o = s.table(t.k, []api.Object{obj}, obj.GetResourceVersion(), out)
		case out.partialGV != "":
			o = partial(obj, out.partialGV)
		}
		return send(typ, o)
	}
	for _, c := range first {
		if !event(c) {
			return
		}
	}
	if o.sendInitial && !bookmark(rv, true) {
		return
	}
	tick := time.NewTicker(bookmarkEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if o.bookmarks && !bookmark(rv, false) {
				return
			}
		case c, ok := <-live:
			if !ok || !event(c) {
				return // the client resumes from the last event it got
			}
			rv = max(rv, c.rv)
		}
	}
}

// watchSource is where a watch's events come from: first the ones
// before it starts, at rv, then live (nil for a synthesized kind, whose
// objects do not change). expired is a resourceVersion too old for the
// history; stop ends the subscription.
func (s *server) watchSource(t target, o watchOptions) (first []change, rv int64, live <-chan change, stop func(), expired, err error) {
	stop = func() {}
	if !t.k.watched() {
		objs, err := s.objects(t.k, "")
		if err != nil {
			return nil, 0, nil, stop, nil, err
		}
		for _, obj := range objs {
			first = append(first, change{typ: "ADDED", obj: obj, rv: rvOf(obj)})
		}
		return first, maxRV(objs), nil, stop, nil, nil
	}
	h, err := s.historyOf(t.k)
	if err != nil {
		return nil, 0, nil, stop, nil, err
	}
	first, rv, sub, err := h.subscribe(t.ns, o.since, o.initial)
	if err != nil {
		return nil, 0, nil, stop, err, nil
	}
	return first, rv, sub.ch, func() { h.unsubscribe(sub) }, nil, nil
}

// eventFor is what a change is to a watch with a selector: the object
// that starts matching is ADDED, the one that stops DELETED (as it was,
// at the change's resourceVersion); "" when the watch does not see it.
func eventFor(c change, match func(api.Object) bool) (string, api.Object) {
	if c.typ == "DELETED" {
		if match(c.obj) {
			return "DELETED", c.obj
		}
		return "", nil
	}
	now, before := match(c.obj), c.prev != nil && match(c.prev)
	switch {
	case now && before:
		return "MODIFIED", c.obj
	case now:
		return "ADDED", c.obj
	case before:
		gone := c.prev.DeepCopyObject().(api.Object)
		gone.SetResourceVersion(c.obj.GetResourceVersion())
		return "DELETED", gone
	}
	return "", nil
}

// bookmarkOf is the object of a BOOKMARK event: an empty object of k with
// only a resourceVersion (and the end-of-initial-events annotation).
func bookmarkOf(k *kind, rv int64, end bool) (runtime.Object, error) {
	o, err := scheme().New(k.gvk())
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
