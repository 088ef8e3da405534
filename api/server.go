package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/podrun/podrun/internal/buildinfo"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// Object is any API object: a *corev1.Pod, *appsv1.Deployment, ...
type Object interface {
	metav1.Object
	runtime.Object
}

// Event is one change a watch reports.
type Event struct {
	Type   string // ADDED, MODIFIED, DELETED
	Object Object
}

// Backend is what the API serves: the daemon, or a fake in tests. Errors
// that are *apierrors.StatusError keep their code; others are 500s.
type Backend interface {
	// Apply creates or updates every object of a manifest.
	Apply(ctx context.Context, file string, data []byte) ([]Applied, error)
	// Create makes one object of r from its manifest; AlreadyExists if it does.
	Create(ctx context.Context, r Resource, namespace string, data []byte) (Object, error)
	// List returns the objects of r in namespace ("" for all), with TypeMeta set.
	List(r Resource, namespace string) ([]Object, error)
	Get(r Resource, namespace, name string) (Object, error)
	// Delete starts the deletion and returns the object as it is then.
	Delete(r Resource, namespace, name string, grace *int64) (Object, error)
	// Watch sends an ADDED event per existing object, then every change,
	// until ctx ends; the channel is closed when the backend gives up on a
	// watcher that does not keep up.
	Watch(ctx context.Context, r Resource, namespace string) (<-chan Event, error)
	// Logs writes a container's log; errors before the first write are
	// answered as errors, later ones end the stream.
	Logs(ctx context.Context, namespace, name string, o *corev1.PodLogOptions, w io.Writer) error
	// Exec opens an exec stream to the pod (already past its upgrade).
	Exec(ctx context.Context, namespace, name string, query url.Values) (io.ReadWriteCloser, error)
	// Attach opens a stream to a running container's output (and stdin,
	// terminal) with Exec's framing; it ends with status 0 when the
	// container exits.
	Attach(ctx context.Context, namespace, name string, query url.Values) (io.ReadWriteCloser, error)
	// PortForward connects to a port on the pod's loopback.
	PortForward(ctx context.Context, namespace, name string, port int) (net.Conn, error)
	Metrics(ctx context.Context, namespace, name string) (*PodMetrics, error)
}

// maxBody bounds a manifest sent to the API.
const maxBody = 16 << 20

// ReadBody reads a request body of at most limit bytes. A longer one is
// refused whole, as the API server refuses it: 413 RequestEntityTooLarge.
// The error is a metav1.Status error for WriteError.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", limit))
	} else if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	return data, nil
}

type server struct {
	b   Backend
	log *slog.Logger
}

// Handler serves the API of b.
func Handler(b Backend, log *slog.Logger) http.Handler {
	s := &server{b: b, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"platform": "podrun", "gitVersion": "v1.34.0-podrun", "podrunVersion": buildinfo.String()})
	})
	mux.HandleFunc("POST "+ApplyPath, s.apply)
	for _, prefix := range []string{"/api/{version}", "/apis/{group}/{version}"} {
		mux.HandleFunc("GET "+prefix+"/{resource}", s.list)
		mux.HandleFunc("GET "+prefix+"/namespaces/{ns}/{resource}", s.list)
		mux.HandleFunc("POST "+prefix+"/namespaces/{ns}/{resource}", s.create)
		mux.HandleFunc("GET "+prefix+"/namespaces/{ns}/{resource}/{name}", s.get)
		mux.HandleFunc("PUT "+prefix+"/namespaces/{ns}/{resource}/{name}", s.put)
		mux.HandleFunc("DELETE "+prefix+"/namespaces/{ns}/{resource}/{name}", s.delete)
	}
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}/status", s.get)
	mux.HandleFunc("GET /api/v1/namespaces/{ns}/pods/{name}/log", s.logs)
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /api/v1/namespaces/{ns}/pods/{name}/exec", s.exec)
		mux.HandleFunc(m+" /api/v1/namespaces/{ns}/pods/{name}/portforward", s.portForward)
	}
	mux.HandleFunc("GET /apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}", s.metrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound,
			Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource"}})
	})
	return mux
}

// resource finds the request's resource and checks its group and version.
func resource(r *http.Request) (Resource, error) {
	res, ok := ResourceFor(r.PathValue("resource"))
	if !ok || res.Group != r.PathValue("group") || res.Version != r.PathValue("version") {
		return Resource{}, &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: http.StatusNotFound,
			Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource"}}
	}
	return res, nil
}

// object finds the request's resource: its {resource}, or pods for the
// pod subresources.
func (s *server) object(w http.ResponseWriter, r *http.Request) (Resource, bool) {
	res := Pods
	if r.PathValue("resource") != "" {
		var err error
		if res, err = resource(r); err != nil {
			WriteError(w, err)
			return Resource{}, false
		}
	}
	return res, true
}

func (s *server) list(w http.ResponseWriter, r *http.Request) {
	res, ok := s.object(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	match, err := selector(res, q)
	if err != nil {
		WriteError(w, err)
		return
	}
	ns := r.PathValue("ns")
	if isTrue(q.Get("watch")) {
		s.watch(w, r, res, ns, match)
		return
	}
	objs, err := s.b.List(res, ns)
	if err != nil {
		WriteError(w, err)
		return
	}
	items := []Object{}
	rv := 0
	for _, o := range objs {
		if match(o) {
			items = append(items, o)
		}
		if v, _ := strconv.Atoi(o.GetResourceVersion()); v > rv {
			rv = v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"apiVersion": res.APIVersion(),
		"kind":       res.Kind + "List",
		"metadata":   map[string]string{"resourceVersion": strconv.Itoa(rv)},
		"items":      items,
	})
}

func (s *server) watch(w http.ResponseWriter, r *http.Request, res Resource, ns string, match func(Object) bool) {
	ch, err := s.b.Watch(r.Context(), res, ns)
	if err != nil {
		WriteError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if !match(ev.Object) {
				continue
			}
			if err := enc.Encode(map[string]any{"type": ev.Type, "object": ev.Object}); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// selector reads labelSelector and fieldSelector.
func selector(res Resource, q url.Values) (func(Object) bool, error) {
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("labelSelector: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("fieldSelector: %v", err))
	}
	return func(o Object) bool {
		return ls.Matches(labels.Set(o.GetLabels())) && fs.Matches(fieldSet(o))
	}, nil
}

// fieldSet is what a fieldSelector can select on.
func fieldSet(o Object) fields.Set {
	set := fields.Set{"metadata.name": o.GetName(), "metadata.namespace": o.GetNamespace()}
	switch v := o.(type) {
	case *corev1.Pod:
		set["status.phase"] = string(v.Status.Phase)
		set["spec.nodeName"] = v.Spec.NodeName
	case *corev1.Event:
		set["involvedObject.kind"] = v.InvolvedObject.Kind
		set["involvedObject.name"] = v.InvolvedObject.Name
		set["involvedObject.namespace"] = v.InvolvedObject.Namespace
		set["involvedObject.uid"] = string(v.InvolvedObject.UID)
		set["reason"] = v.Reason
		set["type"] = v.Type
	}
	return set
}

func (s *server) get(w http.ResponseWriter, r *http.Request) {
	res, ok := s.object(w, r)
	if !ok {
		return
	}
	o, err := s.b.Get(res, r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *server) create(w http.ResponseWriter, r *http.Request) {
	res, ok := s.object(w, r)
	if !ok {
		return
	}
	data, err := ReadBody(w, r, maxBody)
	if err != nil {
		WriteError(w, err)
		return
	}
	o, err := s.b.Create(r.Context(), res, r.PathValue("ns"), data)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, o)
}

// put replaces an object: an apply of that one object.
func (s *server) put(w http.ResponseWriter, r *http.Request) {
	res, ok := s.object(w, r)
	if !ok {
		return
	}
	data, err := ReadBody(w, r, maxBody)
	if err != nil {
		WriteError(w, err)
		return
	}
	refs, err := Refs(data)
	if err != nil || len(refs) != 1 || refs[0].Kind != res.Kind || refs[0].Name != r.PathValue("name") {
		WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("the body must be the %s %q", res.Kind, r.PathValue("name"))))
		return
	}
	if _, err := s.b.Apply(r.Context(), res.Name+"/"+r.PathValue("name"), data); err != nil {
		WriteError(w, err)
		return
	}
	s.get(w, r)
}

func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	res, ok := s.object(w, r)
	if !ok {
		return
	}
	var grace *int64
	if g := r.URL.Query().Get("gracePeriodSeconds"); g != "" {
		v, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			WriteError(w, apierrors.NewBadRequest("gracePeriodSeconds: "+err.Error()))
			return
		}
		grace = &v
	} else if r.ContentLength > 0 {
		var opts metav1.DeleteOptions
		data, err := ReadBody(w, r, maxBody)
		if err != nil {
			WriteError(w, err)
			return
		}
		if err := json.Unmarshal(data, &opts); err != nil {
			WriteError(w, apierrors.NewBadRequest("DeleteOptions: "+err.Error()))
			return
		}
		grace = opts.GracePeriodSeconds
	}
	o, err := s.b.Delete(res, r.PathValue("ns"), r.PathValue("name"), grace)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, o)
}

func (s *server) apply(w http.ResponseWriter, r *http.Request) {
	data, err := ReadBody(w, r, maxBody)
	if err != nil {
		WriteError(w, err)
		return
	}
	file := r.URL.Query().Get("file")
	if file == "" {
		file = "-"
	}
	items, err := s.b.Apply(r.Context(), file, data)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ApplyResult{Items: items})
}

func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := &corev1.PodLogOptions{Container: q.Get("container"), Follow: isTrue(q.Get("follow")),
		Previous: isTrue(q.Get("previous")), Timestamps: isTrue(q.Get("timestamps"))}
	for name, dst := range map[string]**int64{"tailLines": &o.TailLines, "sinceSeconds": &o.SinceSeconds, "limitBytes": &o.LimitBytes} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || name == "sinceSeconds" && n == 0 {
				WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("%s: %q is not a valid value", name, v)))
				return
			}
			*dst = &n
		}
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			WriteError(w, apierrors.NewBadRequest("sinceTime: "+err.Error()))
			return
		}
		mt := metav1.NewTime(t)
		o.SinceTime = &mt
	}
	lw := &logWriter{w: w, rc: http.NewResponseController(w)}
	err := s.b.Logs(r.Context(), r.PathValue("ns"), r.PathValue("name"), o, lw)
	switch {
	case err != nil && !lw.wrote:
		WriteError(w, err)
	case err != nil && r.Context().Err() == nil:
		s.log.Warn("log stream ended", "pod", r.PathValue("ns")+"/"+r.PathValue("name"), "err", err)
	case !lw.wrote:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
	}
}

// logWriter flushes every write, so that a followed log streams.
type logWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	wrote bool
}

func (l *logWriter) Write(p []byte) (int, error) {
	if !l.wrote {
		l.w.Header().Set("Content-Type", "text/plain")
		l.w.WriteHeader(http.StatusOK)
		l.wrote = true
	}
	n, err := l.w.Write(p)
	if err == nil {
		err = l.rc.Flush()
	}
	return n, err
}

func (s *server) exec(w http.ResponseWriter, r *http.Request) {
	if !upgrading(r, ExecProtocol) {
		WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("exec needs an upgrade to %s", ExecProtocol)))
		return
	}
	up, err := s.b.Exec(r.Context(), r.PathValue("ns"), r.PathValue("name"), r.URL.Query())
	if err != nil {
		WriteError(w, err)
		return
	}
	defer up.Close()
	conn, buf, err := SwitchProtocols(w, ExecProtocol)
	if err != nil {
		s.log.Warn("exec: upgrade", "err", err)
		return
	}
	defer conn.Close()
	// Frames pass through unchanged. The shim ends the stream after the
	// status frame; a client that goes away ends it too.
	go func() {
		_, _ = io.Copy(up, buf)
		up.Close()
	}()
	_, _ = io.Copy(conn, up)
}

func (s *server) portForward(w http.ResponseWriter, r *http.Request) {
	if !upgrading(r, PortForwardProtocol) {
		WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("portforward needs an upgrade to %s", PortForwardProtocol)))
		return
	}
	port, err := strconv.Atoi(r.URL.Query().Get("ports"))
	if err != nil || port < 1 || port > 65535 {
		WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("ports: %q is not a port number", r.URL.Query().Get("ports"))))
		return
	}
	up, err := s.b.PortForward(r.Context(), r.PathValue("ns"), r.PathValue("name"), port)
	if err != nil {
		WriteError(w, err)
		return
	}
	defer up.Close()
	conn, buf, err := SwitchProtocols(w, PortForwardProtocol)
	if err != nil {
		s.log.Warn("portforward: upgrade", "err", err)
		return
	}
	defer conn.Close()
	Pipe(conn, buf, up)
}

// Pipe copies both ways between a and b until both directions ended,
// passing a half-close on; ar reads a (it may hold bytes already buffered).
func Pipe(a net.Conn, ar io.Reader, b net.Conn) {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(b, ar)
		closeWrite(b)
		close(done)
	}()
	_, _ = io.Copy(a, b)
	closeWrite(a)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	m, err := s.b.Metrics(r.Context(), r.PathValue("ns"), r.PathValue("name"))
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m)
}

func upgrading(r *http.Request, proto string) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), proto) &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// SwitchProtocols answers 101 and takes the connection over.
func SwitchProtocols(w http.ResponseWriter, proto string) (net.Conn, *bufio.Reader, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, brw.Reader, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func isTrue(s string) bool { b, _ := strconv.ParseBool(s); return b }
