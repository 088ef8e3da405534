package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/podspec"
)

// chunk is output a container wrote.
type chunk struct {
	stream string
	p      []byte
}

// attachBuffer is how many chunks an attached client may lag behind before
// it is dropped (the container's output must never wait for a client).
const attachBuffer = 1024

// attachments fans the containers' output out to attached clients.
type attachments struct {
	mu   sync.Mutex
	subs map[string]map[chan chunk]bool // by container
}

// write is pod.Options.Raw.
func (a *attachments) write(container, stream string, p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch := range a.subs[container] {
		select {
		case ch <- chunk{stream, slices.Clone(p)}:
		default: // too slow: its channel closes
			delete(a.subs[container], ch)
			close(ch)
		}
	}
}

// subscribe receives container's output from now on until cancel.
func (a *attachments) subscribe(container string) (<-chan chunk, func()) {
	ch := make(chan chunk, attachBuffer)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.subs == nil {
		a.subs = map[string]map[chan chunk]bool{}
	}
	if a.subs[container] == nil {
		a.subs[container] = map[chan chunk]bool{}
	}
	a.subs[container][ch] = true
	return ch, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.subs[container][ch] {
			delete(a.subs[container], ch)
			close(ch)
		}
	}
}

// terminal is what a running container offers an attached client.
type terminal interface {
	Stdin() io.WriteCloser
	Resize(cols, rows uint16) error
}

// attach connects a client to a running container's output and, with
// stdin, to its stdin, over a hijacked connection with exec's framing; it
// ends (status 0) when the container exits or the client goes. With
// stdinOnce the container's stdin closes when the client closes its own.
func (sh *shim) attach(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("container")
	p := sh.sup.Load().Pod()
	if err := execable(p, name, 1); err != nil {
		api.WriteError(w, err)
		return
	}
	c, running := sh.sup.Load().Running(name)
	spec := podspec.Container(&p.Spec, name)
	if !running || spec == nil {
		api.WriteError(w, apierrors.NewBadRequest(fmt.Sprintf("container %s is not running in pod %s", name, p.Name)))
		return
	}
	out, cancel := sh.attached.subscribe(name)
	defer cancel()
	conn, br, err := api.SwitchProtocols(w, api.ExecProtocol)
	if err != nil {
		sh.log.Warn("attach: upgrade", "err", err)
		return
	}
	defer conn.Close()
	t, _ := c.(terminal)
	var stdin io.WriteCloser
	if isTrue(q.Get("stdin")) && t != nil {
		stdin = t.Stdin()
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		defer stop()
		feedAttach(br, stdin, t, spec)
	}()
	fw := api.NewFrameWriter(conn)
	stderr := isTrue(q.Get("stderr"))
	send := func(ch chunk) bool {
		s := api.StreamStdout
		if ch.stream == "stderr" {
			if !stderr {
				return true
			}
			s = api.StreamStderr
		}
		return fw.WriteFrame(s, ch.p) == nil
	}
	for {
		select {
		case ch, ok := <-out:
			if !ok || !send(ch) {
				return
			}
			continue
		case <-c.Done():
		case <-ctx.Done():
			return
		}
		// Exited: what it wrote last is queued already (Done waits for
		// the copiers).
		for len(out) > 0 {
			if !send(<-out) {
				return
			}
		}
		b, _ := json.Marshal(api.ExecStatus{})
		_ = fw.WriteFrame(api.StreamStatus, b)
		return
	}
}

// feedAttach passes the client's frames on until it goes: stdin to the
// container's (closed at the client's end with stdinOnce), terminal sizes.
func feedAttach(br io.Reader, stdin io.WriteCloser, t terminal, spec *corev1.Container) {
	for {
		stream, payload, err := api.ReadFrame(br)
		if err != nil {
			return
		}
		switch {
		case stream == api.StreamStdin && stdin != nil && len(payload) == 0:
			if spec.StdinOnce {
				stdin.Close()
			}
			stdin = nil
		case stream == api.StreamStdin && stdin != nil:
			if _, err := stdin.Write(payload); err != nil {
				stdin = nil
			}
		case stream == api.StreamResize && t != nil:
			var sz api.TerminalSize
			if json.Unmarshal(payload, &sz) == nil {
				_ = t.Resize(sz.Width, sz.Height)
			}
		}
	}
}
