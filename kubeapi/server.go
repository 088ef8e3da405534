package kubeapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/klog/v2"

	"github.com/podrun/podrun/api"
)

// KubernetesVersion is the Kubernetes release whose semantics podrun
// follows, as /version reports it (with a +podrun suffix).
const KubernetesVersion = "v1.34.0"

// Config configures the adapter.
type Config struct {
	// NodeName is the one Node's name (the pods' spec.nodeName).
	NodeName string
	Log      *slog.Logger
	// Now is the clock of ages and synthesized timestamps; default time.Now.
	Now func() time.Time
	// Context ends the watches of the backend the adapter keeps (its
	// watch histories); default: they run as long as the process.
	Context context.Context
	// StateDir keeps the namespaces created through this API; "" keeps
	// them in memory.
	StateDir string
}

type server struct {
	b       api.Backend
	cfg     Config
	inner   http.Handler // the podrun API: logs, exec, port-forward, apply
	started time.Time

	histMu sync.Mutex
	hist   map[api.Resource]*history // started at a kind's first list or watch
	ns     *nsStore
}

// Handler serves b's objects as a Kubernetes API server would. It does
// not authenticate: wrap it in Authenticate.
func Handler(b api.Backend, cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NodeName == "" {
		cfg.NodeName = "localhost"
	}
	if cfg.Context == nil {
		cfg.Context = context.Background()
	}
	// The streaming libraries (stream.go) log through klog: into this log.
	klog.SetSlogLogger(cfg.Log.With("component", "kubeapi"))
	ns, err := newNSStore(cfg.StateDir)
	if err != nil { // kept on disk as it is; the namespaces made now are in memory only
		cfg.Log.Error("the namespaces created through the Kubernetes API are lost", "err", err)
		ns, _ = newNSStore("")
	}
	s := &server{b: b, cfg: cfg, inner: api.Handler(b, cfg.Log), started: cfg.Now(), hist: map[api.Resource]*history{}, ns: ns}
	s.resumeTerminating(cfg.Context)
	return s
}

// target is what a resource path names.
type target struct {
	k        *kind
	ns, name string
	sub      string
}

func notFoundPath() error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound,
		Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource"}}
}

// notServed is the 404 of a resource podrun does not serve: the API
// server's NotFound, naming what podrun serves instead.
func notServed(gv schema.GroupVersion, rest []string) error {
	if len(rest) >= 3 && rest[0] == "namespaces" {
		rest = rest[2:]
	}
	if kindFor(gv.Group, gv.Version, rest[0]) != nil {
		return notFoundPath() // a kind served, a path that is not
	}
	var served []string
	for _, k := range kinds {
		served = append(served, k.GroupResource().String())
	}
	err := notFoundPath().(*apierrors.StatusError)
	err.ErrStatus.Message += fmt.Sprintf(": podrun serves %s, not %s", strings.Join(served, ", "),
		schema.GroupResource{Group: gv.Group, Resource: rest[0]})
	return err
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	switch p {
	case "/version":
		s.version(w)
		return
	case "/healthz", "/livez", "/readyz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok")
		return
	case "/api":
		s.serveDiscovery(w, r, true)
		return
	case "/apis":
		s.serveDiscovery(w, r, false)
		return
	}
	if p == "/openapi/v2" || p == "/openapi/v3" || strings.HasPrefix(p, "/openapi/v3/") {
		s.serveOpenAPI(w, r, p)
		return
	}
	if strings.HasPrefix(p, "/apis/podrun.dev/") {
		s.inner.ServeHTTP(w, r)
		return
	}
	gv, rest, ok := splitPath(p)
	if !ok {
		api.WriteError(w, notFoundPath())
		return
	}
	if len(rest) == 0 {
		s.groupDocument(w, gv)
		return
	}
	t, ok := resolve(gv, rest)
	if !ok {
		api.WriteError(w, notServed(gv, rest))
		return
	}
	s.serveResource(w, r, t)
}

func (s *server) version(w http.ResponseWriter) {
	v, _ := strings.CutPrefix(KubernetesVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	writeJSON(w, http.StatusOK, version.Info{Major: parts[0], Minor: parts[1], GitVersion: KubernetesVersion + "+podrun",
		Platform: "linux/" + goarch(), GoVersion: goVersion(), Compiler: "gc"})
}

// splitPath splits /api/v1/rest... and /apis/group/version/rest...; an
// empty version means the path names a group.
func splitPath(p string) (schema.GroupVersion, []string, bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api" && segs[1] == "v1":
		return schema.GroupVersion{Version: "v1"}, segs[2:], true
	case len(segs) == 2 && segs[0] == "apis":
		return schema.GroupVersion{Group: segs[1]}, nil, true
	case len(segs) >= 3 && segs[0] == "apis":
		return schema.GroupVersion{Group: segs[1], Version: segs[2]}, segs[3:], true
	}
	return schema.GroupVersion{}, nil, false
}

func (s *server) groupDocument(w http.ResponseWriter, gv schema.GroupVersion) {
	if gv.Version == "" {
		if g := group(gv.Group); g != nil {
			writeJSON(w, http.StatusOK, g)
			return
		}
		api.WriteError(w, notFoundPath())
		return
	}
	for _, known := range groupVersions() {
		if known == gv {
			writeJSON(w, http.StatusOK, resourceList(gv))
			return
		}
	}
	api.WriteError(w, notFoundPath())
}

// resolve reads [namespaces/NS/]RESOURCE[/NAME[/SUB]].
func resolve(gv schema.GroupVersion, rest []string) (target, bool) {
	var t target
	if len(rest) >= 3 && rest[0] == "namespaces" {
		if k := kindFor(gv.Group, gv.Version, rest[2]); k != nil && k.Namespaced {
			t.ns, rest = rest[1], rest[2:]
		}
	}
	if t.k = kindFor(gv.Group, gv.Version, rest[0]); t.k == nil || len(rest) > 3 {
		return t, false
	}
	if len(rest) > 1 {
		t.name = rest[1]
	}
	if len(rest) > 2 {
		t.sub = rest[2]
		if t.k.sub(t.sub) == nil {
			return t, false
		}
	}
	if t.name != "" && t.k.Namespaced && t.ns == "" || t.name == "" && t.ns != "" && !t.k.Namespaced {
		return t, false
	}
	return t, t.name != "" || t.sub == ""
}

func (s *server) serveResource(w http.ResponseWriter, r *http.Request, t target) {
	switch t.sub {
	case "log":
		s.inner.ServeHTTP(w, r)
		return
	case "exec", "attach", "portforward":
		s.serveStream(w, r, t)
		return
	}
	verb := map[string]string{http.MethodGet: "get", http.MethodPost: "create", http.MethodPut: "update",
		http.MethodPatch: "patch", http.MethodDelete: "delete"}[r.Method]
	if verb == "get" && t.name == "" {
		verb = "list"
		if isTrue(r.URL.Query().Get("watch")) {
			verb = "watch"
		}
	}
	if verb == "create" && t.name != "" || verb != "create" && verb != "list" && verb != "watch" && t.name == "" {
		verb = "" // a POST to an object, or deletecollection
	}
	allowed := verb != "" && contains(t.k.Verbs, verb)
	if t.sub != "" {
		allowed = verb != "" && contains(t.k.sub(t.sub).Verbs, verb)
	}
	if !allowed {
		api.WriteError(w, apierrors.NewMethodNotSupported(t.k.GroupResource(), strings.ToLower(r.Method)))
		return
	}
	if isMetrics(t.k) {
		s.serveMetrics(w, r, t)
		return
	}
	if isReview(t.k) {
		s.review(w, r, t)
		return
	}
	switch verb {
	case "list", "watch":
		s.list(w, r, t, verb == "watch")
	case "get":
		s.get(w, r, t)
	case "create":
		s.create(w, r, t)
	case "update":
		s.put(w, r, t)
	case "patch":
		s.patch(w, r, t)
	case "delete":
		s.delete(w, r, t)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// objects lists a kind in ns ("" for all), the synthetic ones included.
func (s *server) objects(k *kind, ns string) ([]api.Object, error) {
	switch k.Resource {
	case namespacesResource:
		objs, _, err := s.allNamespaces()
		return objs, err
	case nodesResource:
		return []api.Object{s.node()}, nil
	}
	return s.b.List(k.Resource, ns)
}

// watched is whether k's lists and watches come from its history.
func (k *kind) watched() bool {
	return k.Resource == namespacesResource || !k.synthetic && contains(k.Verbs, "watch")
}

// listed is what a list of k in ns answers and its resourceVersion: from
// k's history when it has one, so that a watch from that resourceVersion
// misses nothing and repeats nothing.
func (s *server) listed(k *kind, ns string) ([]api.Object, int64, error) {
	if k.Resource == namespacesResource {
		return s.allNamespaces()
	}
	if k.watched() {
		h, err := s.historyOf(k)
		if err != nil {
			return nil, 0, err
		}
		objs, rv := h.list(ns)
		return objs, rv, nil
	}
	objs, err := s.objects(k, ns)
	return objs, maxRV(objs), err
}

func (s *server) object(t target) (api.Object, error) {
	if !t.k.synthetic {
		return s.b.Get(t.k.Resource, t.ns, t.name)
	}
	objs, err := s.objects(t.k, "")
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if o.GetName() == t.name {
			return o, nil
		}
	}
	return nil, apierrors.NewNotFound(t.k.GroupResource(), t.name)
}

// maxRV is the highest resourceVersion of objs.
func maxRV(objs []api.Object) int64 {
	var rv int64
	for _, o := range objs {
		if v, err := strconv.ParseInt(o.GetResourceVersion(), 10, 64); err == nil && v > rv {
			rv = v
		}
	}
	return rv
}

func (s *server) list(w http.ResponseWriter, r *http.Request, t target, watch bool) {
	q := r.URL.Query()
	out, err := negotiate(r, watch)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	match, err := selector(t.k, q)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if watch {
		s.watch(w, r, t, match, out)
		return
	}
	// A limit is answered with the whole list and no continue token, as
	// ListOptions allows ("servers may choose not to support the limit
	// argument"); so a continue token is one podrun never gave.
	if c := q.Get("continue"); c != "" {
		api.WriteError(w, apierrors.NewBadRequest("continue key is not valid: podrun answers every list whole and gives no continue tokens"))
		return
	}
	all, listRV, err := s.listed(t.k, t.ns)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	items := []api.Object{}
	for _, o := range all {
		if match(o) {
			items = append(items, o)
		}
	}
	rv := strconv.FormatInt(listRV, 10)
	if out.table {
		writeObject(w, out, http.StatusOK, s.table(t.k, items, rv, out))
		return
	}
	l, err := listOf(t.k, items, rv)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	writeObject(w, out, http.StatusOK, l)
}

func (s *server) get(w http.ResponseWriter, r *http.Request, t target) {
	out, err := negotiate(r, false)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	o, err := s.object(t)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	if t.sub == "scale" {
		writeObject(w, out, http.StatusOK, scaleOf(o))
		return
	}
	if out.table {
		writeObject(w, out, http.StatusOK, s.table(t.k, []api.Object{o}, o.GetResourceVersion(), out))
		return
	}
	writeObject(w, out, http.StatusOK, o)
}

func writeJSON(w http.ResponseWriter, code int, v any) { writeJSONType(w, "application/json", code, v) }

func writeJSONType(w http.ResponseWriter, typ string, code int, v any) {
	w.Header().Set("Content-Type", typ)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func isTrue(s string) bool { b, _ := strconv.ParseBool(s); return b }
