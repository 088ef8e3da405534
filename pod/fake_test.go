package pod

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/runtime"
)

// behaviour scripts a fake container: it exits by itself after runFor
// (0: never) with code; on SIGTERM it exits after onTerm with termCode, or
// ignores it when onTerm < 0 (a PID 1 without a handler).
type behaviour struct {
	runFor   time.Duration
	code     int
	onTerm   time.Duration
	termCode int
	unknown  bool // its exit status cannot be known (re-attached, not its parent)
}

// fakeHost runs fake containers and keeps a timeline of what happened.
type fakeHost struct {
	mu       sync.Mutex
	t0       time.Time
	timeline []string
	at       map[string]time.Duration // first time of each timeline entry
	script   map[string]behaviour     // by container name
	nextID   int
	live     map[string]*fakeContainer // what AttachContainer finds, by ID
	refresh  error                     // what RefreshVolumes returns
}

func newFakeHost(script map[string]behaviour) *fakeHost {
	return &fakeHost{t0: time.Now(), at: map[string]time.Duration{}, script: script}
}

func (h *fakeHost) log(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := fmt.Sprintf(format, args...)
	h.timeline = append(h.timeline, e)
	if _, ok := h.at[e]; !ok {
		h.at[e] = time.Since(h.t0)
	}
}

func (h *fakeHost) when(e string) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	d, ok := h.at[e]
	return d, ok
}

func (h *fakeHost) events(prefix string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.timeline {
		if strings.HasPrefix(e, prefix) {
			out = append(out, strings.TrimPrefix(e, prefix))
		}
	}
	return out
}

func (h *fakeHost) CreateSandbox(ctx context.Context, p *corev1.Pod, objs Objects) (*Sandbox, error) {
	h.log("sandbox")
	return &Sandbox{PodIP: "10.0.0.2", HostIP: "192.0.2.1"}, nil
}

func (h *fakeHost) RestoreSandbox(ctx context.Context, p *corev1.Pod, objs Objects, podIP string) (*Sandbox, error) {
	h.log("restore sandbox")
	return &Sandbox{PodIP: podIP}, nil
}

func (h *fakeHost) RefreshVolumes(p *corev1.Pod, objs Objects) ([]string, error) {
	h.log("refresh volumes")
	h.mu.Lock()
	defer h.mu.Unlock()
	return nil, h.refresh
}

func (h *fakeHost) AttachContainer(ctx context.Context, p *corev1.Pod, c *corev1.Container, restarts int32, id string) (Container, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fc := h.live[id]; fc != nil {
		h.timeline = append(h.timeline, "attach "+id)
		return fc, nil
	}
	return nil, errors.New("gone")
}

// running starts a fake container as an earlier supervisor would have left
// it, for AttachContainer to find.
func (h *fakeHost) running(name, id string, b behaviour) *fakeContainer {
	c := &fakeContainer{h: h, name: name, id: id, b: b, started: time.Now(), done: make(chan struct{}), sig: make(chan syscall.Signal, 4)}
	h.mu.Lock()
	if h.live == nil {
		h.live = map[string]*fakeContainer{}
	}
	h.live[id] = c
	h.mu.Unlock()
	go c.run()
	return c
}

func (h *fakeHost) DestroySandbox(ctx context.Context, p *corev1.Pod) error {
	h.log("teardown")
	return nil
}

var busybox = &image.Image{Ref: "docker.io/library/busybox:latest", ID: "sha256:feed", Config: image.Config{Cmd: []string{"sh"}}}

func (h *fakeHost) LookupImage(ref string) (*image.Image, error) {
	if ref == "busybox" {
		return busybox, nil
	}
	return nil, image.ErrNotFound
}

func (h *fakeHost) PullImage(ctx context.Context, p *corev1.Pod, ref string) (*image.Image, error) {
	h.log("pull %s", ref)
	if strings.HasPrefix(ref, "busybox") {
		return busybox, nil
	}
	return nil, errors.New("manifest unknown")
}

func (h *fakeHost) StartContainer(ctx context.Context, r *ContainerRequest) (Container, error) {
	name := r.Container.Name
	h.mu.Lock()
	h.nextID++
	id := fmt.Sprintf("%s-%d", name, h.nextID)
	b := h.script[name]
	h.mu.Unlock()
	c := &fakeContainer{h: h, name: name, id: id, b: b, started: time.Now(), done: make(chan struct{}), sig: make(chan syscall.Signal, 4)}
	h.log("start %s", name)
	go c.run()
	return c, nil
}

// PrepareContainer: the fake container starts (and logs "start") at Start.
func (h *fakeHost) PrepareContainer(ctx context.Context, r *ContainerRequest) (Prepared, error) {
	h.log("prepare %s", r.Container.Name)
	return &fakePrepared{h: h, r: r}, nil
}

type fakePrepared struct {
	h *fakeHost
	r *ContainerRequest
}

func (p *fakePrepared) Start(ctx context.Context) (Container, error) {
	return p.h.StartContainer(ctx, p.r)
}
func (p *fakePrepared) Discard() error {
	p.h.log("discard %s", p.r.Container.Name)
	return nil
}

type fakeContainer struct {
	h       *fakeHost
	name    string
	id      string
	b       behaviour
	started time.Time
	done    chan struct{}
	sig     chan syscall.Signal
	exit    runtime.Exit
}

func (c *fakeContainer) run() {
	var self <-chan time.Time
	if c.b.runFor > 0 {
		self = time.After(c.b.runFor)
	}
	var term <-chan time.Time
	code := 0
	for {
		select {
		case <-self:
			code = c.b.code
		case <-term:
			code = c.b.termCode
		case s := <-c.sig:
			c.h.log("signal %s %s", c.name, s)
			if s == syscall.SIGKILL {
				code = 137
			} else if c.b.onTerm >= 0 && term == nil {
				term = time.After(c.b.onTerm)
				continue
			} else {
				continue
			}
		}
		break
	}
	c.exit = runtime.Exit{Code: code, FinishedAt: time.Now(), Unknown: c.b.unknown}
	c.h.log("exit %s %d", c.name, code)
	close(c.done)
}

func (c *fakeContainer) ID() string                 { return c.id }
func (c *fakeContainer) StartedAt() time.Time       { return c.started }
func (c *fakeContainer) Done() <-chan struct{}      { return c.done }
func (c *fakeContainer) Exit() runtime.Exit         { return c.exit }
func (c *fakeContainer) TerminationMessage() string { return "" }
func (c *fakeContainer) Remove() error              { return nil }
func (c *fakeContainer) Signal(s syscall.Signal) error {
	select {
	case <-c.done:
	case c.sig <- s:
	}
	return nil
}

func (c *fakeContainer) Exec(ctx context.Context, e runtime.ExecSpec) (int, error) {
	return 0, nil
}

// runPod supervises p on h until it finishes or the test times out.
func runPod(t *testing.T, h *fakeHost, p *corev1.Pod, during func(s *Supervisor)) *Supervisor {
	t.Helper()
	return supervise(t, h, New(p, Options{Host: h}), during)
}

// supervise runs s until it finishes (during, if set, runs meanwhile) or
// the test times out.
func supervise(t *testing.T, h *fakeHost, s *Supervisor, during func(s *Supervisor)) *Supervisor {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	go func() { _ = s.Run(ctx) }()
	if during != nil {
		during(s)
	}
	select {
	case <-s.Done():
	case <-time.After(25 * time.Second):
		t.Fatalf("pod did not finish; timeline %v", h.timeline)
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
