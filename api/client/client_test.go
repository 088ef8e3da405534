package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
)

// fake is an api.Backend holding pods in memory.
type fake struct {
	mu      sync.Mutex
	pods    []*corev1.Pod
	watch   chan api.Event
	exec    func(q url.Values) (io.ReadWriteCloser, error)
	forward func(port int) (net.Conn, error)
	applied []byte
}

func (f *fake) Apply(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	f.applied = data
	if strings.Contains(string(data), "bad") {
		return nil, api.InvalidManifest([]string{file + ":3: Pod/x: spec.containers: Required value", file + ":9: Pod/y: metadata.name: Invalid value"})
	}
	return []api.Applied{{Kind: "Pod", Namespace: "default", Name: "x", Action: "created"}}, nil
}

func (f *fake) Create(ctx context.Context, r api.Resource, ns string, data []byte) (api.Object, error) {
	return nil, apierrors.NewMethodNotSupported(r.GroupResource(), "create")
}

func (f *fake) List(r api.Resource, ns string) ([]api.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Object
	for _, p := range f.pods {
		if ns == "" || p.Namespace == ns {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fake) Get(r api.Resource, ns, name string) (api.Object, error) {
	objs, _ := f.List(r, ns)
	for _, o := range objs {
		if o.GetName() == name {
			return o, nil
		}
	}
	return nil, apierrors.NewNotFound(r.GroupResource(), name)
}

func (f *fake) Delete(r api.Resource, ns, name string, grace *int64) (api.Object, error) {
	o, err := f.Get(r, ns, name)
	if err != nil {
		return nil, err
	}
	p := o.(*corev1.Pod).DeepCopy()
	p.DeletionGracePeriodSeconds = grace
	return p, nil
}

func (f *fake) Watch(ctx context.Context, r api.Resource, ns string) (<-chan api.Event, error) {
	objs, _ := f.List(r, ns)
	ch := make(chan api.Event, len(objs)+8)
	for _, o := range objs {
		ch <- api.Event{Type: "ADDED", Object: o}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-f.watch:
				ch <- ev
			}
		}
	}()
	return ch, nil
}

func (f *fake) Logs(ctx context.Context, ns, name string, o *corev1.PodLogOptions, w io.Writer) error {
	if o.Container != "app" {
		return apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", o.Container, name))
	}
	fmt.Fprintf(w, "line 1 tail=%d\n", *o.TailLines)
	_, err := fmt.Fprintf(w, "line 2 follow=%v\n", o.Follow)
	return err
}

func (f *fake) Exec(ctx context.Context, ns, name string, q url.Values) (io.ReadWriteCloser, error) {
	return f.exec(q)
}

func (f *fake) Attach(ctx context.Context, ns, name string, q url.Values) (io.ReadWriteCloser, error) {
	return nil, apierrors.NewBadRequest("no attach in the fake")
}

func (f *fake) PortForward(ctx context.Context, ns, name string, port int) (net.Conn, error) {
	return f.forward(port)
}

func (f *fake) Metrics(ctx context.Context, ns, name string) (*api.PodMetrics, error) {
	return nil, apierrors.NewNotFound(api.Pods.GroupResource(), name)
}

func pod(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, ResourceVersion: "3"}}
}

// serve runs the API of f on a unix socket for the test.
func serve(t *testing.T, f *fake) (*Client, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler(f, slog.Default())}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return New(sock), sock
}

func TestErrorsAreStatuses(t *testing.T) {
	c, sock := serve(t, &fake{})
	_, err := c.Pod(context.Background(), "default", "nope")
	if !apierrors.IsNotFound(err) || err.Error() != `pods "nope" not found` {
		t.Fatalf("err %v, want the API server's NotFound", err)
	}
	// The wire shape is metav1.Status, for kubectl and client-go.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	for path, code := range map[string]int{
		"/api/v1/namespaces/default/pods/nope":                         404,
		"/api/v1/namespaces/default/widgets":                           404,
		"/apis/apps/v1/namespaces/default/pods":                        404, // pods are not in apps
		"/api/v1/namespaces/default/pods/x/exec":                       400, // no upgrade
		"/api/v1/namespaces/default/pods?watch=1&labelSelector=a%20in": 400,
	} {
		resp, err := hc.Get("http://x" + path)
		if err != nil {
			t.Fatal(err)
		}
		var st metav1.Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != code || st.Kind != "Status" || st.APIVersion != "v1" || int(st.Code) != code || st.Status != metav1.StatusFailure {
			t.Errorf("%s: %d %+v (%v), want a Status with code %d", path, resp.StatusCode, st, err, code)
		}
	}
}

func TestUnreachableDaemonSaysWhere(t *testing.T) {
	c := New(filepath.Join(t.TempDir(), "none.sock"))
	_, err := c.Pod(context.Background(), "default", "x")
	if err == nil || !strings.Contains(err.Error(), "none.sock") || !strings.Contains(err.Error(), "podrun daemon") {
		t.Errorf("err %v, want one naming the socket and the daemon", err)
	}
}

func TestListFiltersBySelectors(t *testing.T) {
	f := &fake{pods: []*corev1.Pod{pod("default", "a", map[string]string{"app": "web"}), pod("default", "b", map[string]string{"app": "db"}), pod("other", "c", nil)}}
	c, _ := serve(t, f)
	names := func(sel Selector, ns string) string {
		var list corev1.PodList
		if err := c.List(context.Background(), api.Pods, ns, sel, &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "PodList" || list.ResourceVersion != "3" {
			t.Errorf("list kind %q resourceVersion %q", list.Kind, list.ResourceVersion)
		}
		var out []string
		for _, p := range list.Items {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct {
		sel  Selector
		ns   string
		want string
	}{
		{Selector{}, "", "a,b,c"},
		{Selector{}, "default", "a,b"},
		{Selector{Label: "app=web"}, "", "a"},
		{Selector{Label: "app"}, "", "a,b"},
		{Selector{Field: "metadata.name=b"}, "", "b"},
		{Selector{Field: "metadata.namespace!=default"}, "", "c"},
	} {
		if got := names(tc.sel, tc.ns); got != tc.want {
			t.Errorf("%+v in %q: %s, want %s", tc.sel, tc.ns, got, tc.want)
		}
	}
}

func TestWatchStreamsAddedThenChanges(t *testing.T) {
	f := &fake{pods: []*corev1.Pod{pod("default", "a", nil), pod("default", "b", nil)}, watch: make(chan api.Event)}
	c, _ := serve(t, f)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	err := c.Watch(ctx, api.Pods, "default", Selector{Field: "metadata.name=a"}, func(ev api.WatchEvent) error {
		var p corev1.Pod
		if err := json.Unmarshal(ev.Object, &p); err != nil {
			return err
		}
		got = append(got, ev.Type+" "+p.Name)
		switch len(got) {
		case 1:
			go func() {
				f.watch <- api.Event{Type: "MODIFIED", Object: pod("default", "b", nil)} // filtered out
				f.watch <- api.Event{Type: "DELETED", Object: pod("default", "a", nil)}
			}()
		case 2:
			return ErrStopWatch
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ";") != "ADDED a;DELETED a" {
		t.Errorf("events %q", got)
	}
}

func TestApplyInvalidListsEveryProblem(t *testing.T) {
	c, _ := serve(t, &fake{})
	items, err := c.Apply(context.Background(), "m.yaml", []byte("kind: Pod"))
	if err != nil || len(items) != 1 || items[0].Action != "created" {
		t.Fatalf("apply: %v %v", items, err)
	}
	_, err = c.Apply(context.Background(), "m.yaml", []byte("bad"))
	if !apierrors.IsInvalid(err) {
		t.Fatalf("err %v, want Invalid", err)
	}
	if p := api.Problems(err); len(p) != 2 || !strings.HasPrefix(p[0], "m.yaml:3: ") || !strings.HasPrefix(p[1], "m.yaml:9: ") {
		t.Errorf("problems %q", p)
	}
}

func TestLogs(t *testing.T) {
	c, _ := serve(t, &fake{pods: []*corev1.Pod{pod("default", "p", nil)}})
	tail := int64(4)
	rc, err := c.Logs(context.Background(), "default", "p", &corev1.PodLogOptions{Container: "app", Follow: true, TailLines: &tail})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "line 1 tail=4\nline 2 follow=true\n" {
		t.Errorf("logs %q", b)
	}
	if _, err := c.Logs(context.Background(), "default", "p", &corev1.PodLogOptions{Container: "x"}); !apierrors.IsBadRequest(err) {
		t.Errorf("err %v, want BadRequest", err)
	}
}

// TestExecFramesPassThrough plays the pod shim behind the API: stdin up to
// its end, stdout and stderr, a resize, then the exit code.
func TestExecFramesPassThrough(t *testing.T) {
	f := &fake{}
	shimSide := make(chan url.Values, 1)
	f.exec = func(q url.Values) (io.ReadWriteCloser, error) {
		if q.Get("container") == "missing" {
			return nil, apierrors.NewBadRequest("container missing is not valid for pod p")
		}
		ours, theirs := net.Pipe()
		shimSide <- q
		go func() {
			defer theirs.Close()
			fw := api.NewFrameWriter(theirs)
			var in bytes.Buffer
			var size api.TerminalSize
			for stdinDone := false; !stdinDone || size.Width == 0; { // both arrive, in any order
				s, p, err := api.ReadFrame(theirs)
				if err != nil {
					return
				}
				switch {
				case s == api.StreamResize:
					_ = json.Unmarshal(p, &size)
				case s == api.StreamStdin && len(p) == 0:
					stdinDone = true
				case s == api.StreamStdin:
					in.Write(p)
				}
			}
			_, _ = fmt.Fprintf(fw.Stream(api.StreamStdout), "got %q at %dx%d", strings.ToUpper(in.String()), size.Width, size.Height)
			_, _ = io.WriteString(fw.Stream(api.StreamStderr), "warning")
			b, _ := json.Marshal(api.ExecStatus{ExitCode: 7})
			_ = fw.WriteFrame(api.StreamStatus, b)
		}()
		return ours, nil
	}
	c, _ := serve(t, f)
	resize := make(chan api.TerminalSize, 1)
	resize <- api.TerminalSize{Width: 80, Height: 24}
	var out, errOut bytes.Buffer
	code, err := c.Exec(context.Background(), "default", "p", ExecOptions{Container: "app", Command: []string{"cat", "-"},
		Stdin: strings.NewReader("hello"), Stdout: &out, Stderr: &errOut, Resize: resize})
	close(resize)
	if err != nil || code != 7 {
		t.Fatalf("exit %d, err %v; want 7", code, err)
	}
	q := <-shimSide
	if q.Get("container") != "app" || strings.Join(q["command"], " ") != "cat -" || q.Get("stdin") != "true" || q.Get("stderr") != "true" {
		t.Errorf("the shim got %v", q)
	}
	if out.String() != `got "HELLO" at 80x24` || errOut.String() != "warning" {
		t.Errorf("stdout %q, stderr %q", out.String(), errOut.String())
	}
	_, err = c.Exec(context.Background(), "default", "p", ExecOptions{Container: "missing", Command: []string{"x"}})
	if !apierrors.IsBadRequest(err) {
		t.Errorf("err %v, want the BadRequest from before the upgrade", err)
	}
}

func TestPortForwardPassesHalfClose(t *testing.T) {
	// An echo server that answers once its input ended.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn)
		conn.Write(append([]byte("echo: "), b...))
	}()
	f := &fake{forward: func(port int) (net.Conn, error) {
		if port != 8080 {
			return nil, errors.New("wrong port")
		}
		return net.Dial("tcp", ln.Addr().String())
	}}
	c, _ := serve(t, f)
	conn, err := c.PortForward(context.Background(), "default", "p", 8080)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "ping")
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	if err != nil || string(b) != "echo: ping" {
		t.Errorf("read %q, %v", b, err)
	}
}
