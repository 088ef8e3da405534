package kubeapi

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
)

// historySize is how many changes of each kind are kept, so that a watch
// can resume from an older resourceVersion (the API server's watch cache
// keeps a window too); older ones are 410 Expired.
var historySize = 1000

// Versioned is a backend that tells its newest resourceVersion: a history
// started then knows every change after it (the daemon). Without it, a
// history is complete only after the newest object it found.
type Versioned interface {
	ResourceVersion() int64
}

// change is one event of a history, with the object as it was before
// (nil for ADDED), which watches with selectors need.
type change struct {
	typ       string
	obj, prev api.Object
	rv        int64
}

// history is the watch cache of one kind: its objects now, the last
// changes, and the watches it feeds. It is fed by one backend watch.
type history struct {
	mu       sync.Mutex
	changed  *sync.Cond // broadcast at every change
	objs     map[string]api.Object
	changes  []change // oldest first
	floor    int64    // every change after floor is in changes
	rv       int64    // the resourceVersion of objs
	watchers map[*subscriber]struct{}
}

// subscriber is one watch fed by a history; ch is closed when it falls
// behind or the history restarts.
type subscriber struct {
	ns string
	ch chan change
}

func objKey(o api.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func rvOf(o api.Object) int64 {
	v, _ := strconv.ParseInt(o.GetResourceVersion(), 10, 64)
	return v
}

// historyOf is k's history, started at its first use.
func (s *server) historyOf(k *kind) (*history, error) {
	if k.Resource == namespacesResource {
		return s.ns.h, nil
	}
	s.histMu.Lock()
	defer s.histMu.Unlock()
	if h := s.hist[k.Resource]; h != nil {
		return h, nil
	}
	h := &history{}
	h.changed = sync.NewCond(&h.mu)
	ch, err := h.start(s.cfg.Context, s.b, k.Resource)
	if err != nil {
		return nil, err
	}
	go h.run(s.cfg.Context, s.b, k.Resource, ch)
	s.hist[k.Resource] = h
	return h, nil
}

// start watches r and takes the objects it reports first as the state.
func (h *history) start(ctx context.Context, b api.Backend, r api.Resource) (<-chan api.Event, error) {
	ch, err := b.Watch(ctx, r, "")
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.objs, h.changes, h.rv = map[string]api.Object{}, nil, 0
	for n := len(ch); n > 0; n-- { // the existing objects, sent before Watch returned (and maybe a change)
		ev := <-ch
		if ev.Type == "DELETED" {
			delete(h.objs, objKey(ev.Object))
		} else {
			h.objs[objKey(ev.Object)] = ev.Object
		}
		h.rv = max(h.rv, rvOf(ev.Object))
	}
	if v, ok := b.(Versioned); ok {
		h.rv = max(h.rv, v.ResourceVersion())
	}
	h.floor = h.rv
	for w := range h.watchers {
		close(w.ch)
	}
	h.watchers = map[*subscriber]struct{}{}
	h.changed.Broadcast()
	return ch, nil
}

// run records the backend's changes until ctx ends; when the backend
// drops the watch, the history starts again and its watches end (their
// clients resume, or relist after a 410).
func (h *history) run(ctx context.Context, b api.Backend, r api.Resource, ch <-chan api.Event) {
	for {
		for ev := range ch {
			h.record(ev)
		}
		for ctx.Err() == nil {
			var err error
			if ch, err = h.start(ctx, b, r); err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (h *history) record(ev api.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := objKey(ev.Object)
	c := change{typ: ev.Type, obj: ev.Object, prev: h.objs[k], rv: rvOf(ev.Object)}
	if c.typ == "DELETED" {
		delete(h.objs, k)
	} else {
		h.objs[k] = ev.Object
	}
	h.rv = max(h.rv, c.rv)
	h.changes = append(h.changes, c)
	if n := len(h.changes) - historySize; n > 0 {
		h.floor = max(h.floor, h.changes[n-1].rv)
		h.changes = append(h.changes[:0:0], h.changes[n:]...)
	}
	for w := range h.watchers {
		if w.ns != "" && w.ns != ev.Object.GetNamespace() {
			continue
		}
		select {
		case w.ch <- c:
		default: // too slow: its client resumes from the last event it got
			close(w.ch)
			delete(h.watchers, w)
		}
	}
	h.changed.Broadcast()
}

// list is the objects in ns ("" for all), sorted, and their resourceVersion.
func (h *history) list(ns string) ([]api.Object, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.listLocked(ns), h.rv
}

func (h *history) listLocked(ns string) []api.Object {
	out := []api.Object{}
	for _, o := range h.objs {
		if ns == "" || o.GetNamespace() == ns {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return objKey(out[i]) < objKey(out[j]) })
	return out
}

// subscribe starts a watch in ns. From a resourceVersion since, the
// changes after it come first (410 Expired when they are no longer all
// kept); with initial, an ADDED change per object instead, at rv.
func (h *history) subscribe(ns string, since int64, initial bool) (first []change, rv int64, sub *subscriber, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if initial {
		for _, o := range h.listLocked(ns) {
			first = append(first, change{typ: "ADDED", obj: o, rv: rvOf(o)})
		}
	} else {
		if since < h.floor {
			return nil, 0, nil, apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %d (%d)", since, h.floor))
		}
		for _, c := range h.changes {
			if c.rv > since && (ns == "" || c.obj.GetNamespace() == ns) {
				first = append(first, c)
			}
		}
	}
	sub = &subscriber{ns: ns, ch: make(chan change, 256)}
	h.watchers[sub] = struct{}{}
	return first, h.rv, sub, nil
}

func (h *history) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.watchers[sub]; ok {
		delete(h.watchers, sub)
		close(sub.ch)
	}
}

// await returns once ok holds of the objects (h.mu held while it runs),
// or after a second: a write answers after its change is in the history,
// so that the writer's next list sees it.
func (h *history) await(ok func(objs map[string]api.Object) bool) {
	timer := time.AfterFunc(time.Second, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changed.Broadcast()
	})
	defer timer.Stop()
	deadline := time.Now().Add(time.Second)
	h.mu.Lock()
	defer h.mu.Unlock()
	for !ok(h.objs) && time.Now().Before(deadline) {
		h.changed.Wait()
	}
}

// settled waits until k's history, if it is started, has o's write: o at
// its resourceVersion or newer, or, deleted, o gone or changed since.
func (s *server) settled(k *kind, o api.Object, deleted bool) {
	s.histMu.Lock()
	h := s.hist[k.Resource]
	s.histMu.Unlock()
	if h == nil || o == nil {
		return
	}
	key, rv := objKey(o), rvOf(o)
	h.await(func(objs map[string]api.Object) bool {
		cur, ok := objs[key]
		if deleted {
			return !ok || rvOf(cur) > rv
		}
		return ok && rvOf(cur) >= rv
	})
}
