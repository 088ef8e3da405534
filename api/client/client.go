package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
)

// DefaultSocket is where "podrun daemon" listens unless told otherwise.
const DefaultSocket = "/run/podrun/podrun.sock"

// Client talks to the daemon's API over its unix socket.
type Client struct {
	socket string
	uc     *api.UnixClient
}

// New returns a client of the daemon listening on socket.
func New(socket string) *Client {
	return &Client{socket: socket, uc: api.NewUnixClient(socket, func(err error) error {
		return fmt.Errorf("cannot reach the podrun daemon at %s (is \"podrun daemon\" running, and are you root?): %w", socket, err)
	})}
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) { return c.uc.Dial(ctx) }

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	return c.uc.Do(ctx, method, path, query, body)
}

func (c *Client) getJSON(ctx context.Context, method, path string, query url.Values, body []byte, into any) error {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if into == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// Apply creates or updates every object of a manifest; file names it in
// error messages.
func (c *Client) Apply(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	var res api.ApplyResult
	err := c.getJSON(ctx, http.MethodPost, api.ApplyPath, url.Values{"file": {file}}, data, &res)
	return res.Items, err
}

// ApplyForce is Apply that replaces the pods the daemon cannot update
// (their spec is immutable): deleted, then created again once gone.
func (c *Client) ApplyForce(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	var res api.ApplyResult
	err := c.getJSON(ctx, http.MethodPost, api.ApplyPath, url.Values{"file": {file}, "force": {"true"}}, data, &res)
	return res.Items, err
}

// Selector narrows a list or a watch, as kubectl's -l and --field-selector.
type Selector struct {
	Label, Field string
}

func (s Selector) query() url.Values {
	q := url.Values{}
	if s.Label != "" {
		q.Set("labelSelector", s.Label)
	}
	if s.Field != "" {
		q.Set("fieldSelector", s.Field)
	}
	return q
}

// List decodes the list of r in namespace ("" for all) into a *<Kind>List.
func (c *Client) List(ctx context.Context, r api.Resource, namespace string, sel Selector, into any) error {
	return c.getJSON(ctx, http.MethodGet, r.Path(namespace), sel.query(), nil, into)
}

// Get decodes one object into a *<Kind>.
func (c *Client) Get(ctx context.Context, r api.Resource, namespace, name string, into any) error {
	return c.getJSON(ctx, http.MethodGet, r.Path(namespace)+"/"+name, nil, nil, into)
}

// Delete starts deleting an object, with a grace period for pods (nil: the
// pod's own); the object may still exist when it returns.
func (c *Client) Delete(ctx context.Context, r api.Resource, namespace, name string, grace *int64) error {
	q := url.Values{}
	if grace != nil {
		q.Set("gracePeriodSeconds", strconv.FormatInt(*grace, 10))
	}
	return c.getJSON(ctx, http.MethodDelete, r.Path(namespace)+"/"+name, q, nil, nil)
}

// ErrStopWatch, returned by a Watch callback, ends the watch without error.
var ErrStopWatch = errors.New("stop watching")

// Watch calls fn with an ADDED event per existing object of r, then with
// every change, until fn returns an error (ErrStopWatch to stop cleanly),
// ctx ends, or the daemon ends the stream (then io.ErrUnexpectedEOF).
func (c *Client) Watch(ctx context.Context, r api.Resource, namespace string, sel Selector, fn func(api.WatchEvent) error) error {
	q := sel.query()
	q.Set("watch", "1")
	resp, err := c.do(ctx, http.MethodGet, r.Path(namespace), q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev api.WatchEvent
		if err := dec.Decode(&ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return io.ErrUnexpectedEOF
			}
			return fmt.Errorf("watching %s: %w", r.Name, err)
		}
		if err := fn(ev); err != nil {
			if errors.Is(err, ErrStopWatch) {
				return nil
			}
			return err
		}
	}
}

// Pod is Get of a pod.
func (c *Client) Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	var p corev1.Pod
	if err := c.Get(ctx, api.Pods, namespace, name, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Events returns the events about one pod.
func (c *Client) Events(ctx context.Context, namespace, pod string) ([]corev1.Event, error) {
	var list corev1.EventList
	err := c.List(ctx, api.Events, namespace, Selector{Field: "involvedObject.name=" + pod}, &list)
	return list.Items, err
}

// Logs streams a container's log as text lines.
func (c *Client) Logs(ctx context.Context, namespace, name string, o *corev1.PodLogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	for k, v := range map[string]bool{"follow": o.Follow, "previous": o.Previous, "timestamps": o.Timestamps} {
		if v {
			q.Set(k, "true")
		}
	}
	for k, v := range map[string]*int64{"tailLines": o.TailLines, "sinceSeconds": o.SinceSeconds, "limitBytes": o.LimitBytes} {
		if v != nil {
			q.Set(k, strconv.FormatInt(*v, 10))
		}
	}
	resp, err := c.do(ctx, http.MethodGet, api.Pods.Path(namespace)+"/"+name+"/log", q, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Metrics samples a pod's CPU and memory per container.
func (c *Client) Metrics(ctx context.Context, namespace, name string) (*api.PodMetrics, error) {
	var m api.PodMetrics
	err := c.getJSON(ctx, http.MethodGet, api.MetricsPath(namespace, name), nil, nil, &m)
	return &m, err
}

// upgrade opens a stream on a subresource of a pod.
func (c *Client) upgrade(ctx context.Context, namespace, name, sub string, q url.Values, proto string) (net.Conn, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	up, err := api.Upgrade(conn, api.Pods.Path(namespace)+"/"+name+"/"+sub, q, proto)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return up, nil
}

// PortForward connects to port on the pod's 127.0.0.1. CloseWrite on the
// connection half-closes it.
func (c *Client) PortForward(ctx context.Context, namespace, name string, port int) (net.Conn, error) {
	return c.upgrade(ctx, namespace, name, "portforward", url.Values{"ports": {strconv.Itoa(port)}}, api.PortForwardProtocol)
}

// ExecOptions say what to run in a container and where its streams go.
type ExecOptions struct {
	Container string
	Command   []string
	Stdin     io.Reader // nil: no stdin; its EOF closes the process' stdin
	Stdout    io.Writer
	Stderr    io.Writer // unused with TTY (the terminal merges the streams)
	TTY       bool
	Resize    <-chan api.TerminalSize
}

// Exec runs a command in a container and returns its exit code.
func (c *Client) Exec(ctx context.Context, namespace, name string, o ExecOptions) (int, error) {
	q := url.Values{"command": o.Command, "stdout": {"true"}}
	if o.Container != "" {
		q.Set("container", o.Container)
	}
	if o.Stdin != nil {
		q.Set("stdin", "true")
	}
	if o.TTY {
		q.Set("tty", "true")
	} else {
		q.Set("stderr", "true")
	}
	conn, err := c.upgrade(ctx, namespace, name, "exec", q, api.ExecProtocol)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	fw := api.NewFrameWriter(conn)
	if o.Stdin != nil {
		go func() {
			_, _ = io.Copy(fw.Stream(api.StreamStdin), o.Stdin)
			_ = fw.WriteFrame(api.StreamStdin, nil)
		}()
	}
	if o.Resize != nil {
		go func() {
			for sz := range o.Resize {
				b, _ := json.Marshal(sz)
				if fw.WriteFrame(api.StreamResize, b) != nil {
					return
				}
			}
		}()
	}
	for {
		stream, p, err := api.ReadFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			return -1, fmt.Errorf("exec stream ended without an exit status: %w", err)
		}
		switch stream {
		case api.StreamStdout:
			if o.Stdout != nil {
				_, _ = o.Stdout.Write(p)
			}
		case api.StreamStderr:
			if o.Stderr != nil {
				_, _ = o.Stderr.Write(p)
			}
		case api.StreamStatus:
			var st api.ExecStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return -1, fmt.Errorf("exec status: %w", err)
			}
			if st.Error != "" {
				return st.ExitCode, errors.New(st.Error)
			}
			return st.ExitCode, nil
		}
	}
}

// ServerVersion is the daemon's podrun version.
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	var v struct {
		PodrunVersion string `json:"podrunVersion"`
	}
	if err := c.getJSON(ctx, http.MethodGet, "/version", nil, nil, &v); err != nil {
		return "", err
	}
	return v.PodrunVersion, nil
}
