// Package trace records where a pod's start-up (and teardown) time goes:
// spans named by phase, with the pod and container they belong to, written
// as JSON lines (`podrun run --trace FILE`) and as debug log records with
// log/slog fields (the daemon's shims with --log-level debug).
//
// A context carries the recorder and the pod. Without one (tracing off)
// Start costs a context lookup, returns a zero Span and allocates nothing;
// End of a zero Span does nothing.
package trace

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Recorder collects the spans of one process.
type Recorder struct {
	origin time.Time
	boot   int64 // CLOCK_BOOTTIME at origin, ns
	w      io.Writer
	log    *slog.Logger

	mu    sync.Mutex
	spans []Record
}

// Record is one finished span (or an instant, Ms 0), as written.
type Record struct {
	Phase     string  `json:"phase"`
	Pod       string  `json:"pod,omitempty"`
	Container string  `json:"container,omitempty"`
	StartMs   float64 `json:"start_ms"` // since the recorder's origin
	Ms        float64 `json:"ms"`
}

// loaded is when this package was initialised: early in the process's
// package initialisation (its imports are the standard library's only).
var loaded = time.Now()

// New starts a recorder whose origin is now. Spans go to w (JSON lines, at
// Close) and to log at debug level; either may be nil. Its first span,
// "init", runs from this package's initialisation to now: the other
// packages' init functions and the command line's parsing.
func New(w io.Writer, log *slog.Logger) *Recorder {
	r := &Recorder{origin: time.Now(), boot: boottime(), w: w, log: log}
	r.add("", "", "init", loaded, r.origin)
	return r
}

// Origin is the recorder's time zero.
func (r *Recorder) Origin() time.Time { return r.origin }

func boottime() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}

type ctxKey struct{}

type scope struct {
	r              *Recorder
	pod, container string
}

// With returns ctx carrying r for the pod named pod ("" for the process's
// own phases). With a nil r it returns ctx itself.
func With(ctx context.Context, r *Recorder, pod string) context.Context {
	if r == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, &scope{r: r, pod: pod})
}

// Container returns ctx for the phases of the pod's container name. Off,
// it returns ctx itself.
func Container(ctx context.Context, name string) context.Context {
	sc, _ := ctx.Value(ctxKey{}).(*scope)
	if sc == nil {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, &scope{r: sc.r, pod: sc.pod, container: name})
}

// Span is one phase under way; End records it.
type Span struct {
	sc    *scope
	phase string
	start time.Time
}

// Start begins a phase of ctx's pod (and container, see Container), if ctx
// carries a recorder.
func Start(ctx context.Context, phase string) Span {
	sc, _ := ctx.Value(ctxKey{}).(*scope)
	if sc == nil {
		return Span{}
	}
	return Span{sc: sc, phase: phase, start: time.Now()}
}

// End records the span.
func (s Span) End() {
	if s.sc == nil {
		return
	}
	s.sc.r.add(s.sc.pod, s.sc.container, s.phase, s.start, time.Now())
}

// Mark records an instant of ctx's pod and the container named: something
// observed now (e.g. a container seen running).
func Mark(ctx context.Context, phase, container string) {
	sc, _ := ctx.Value(ctxKey{}).(*scope)
	if sc == nil {
		return
	}
	now := time.Now()
	sc.r.add(sc.pod, container, phase, now, now)
}

// Enabled says whether ctx carries a recorder.
func Enabled(ctx context.Context) bool { return ctx.Value(ctxKey{}) != nil }

func (r *Recorder) add(pod, container, phase string, start, end time.Time) {
	rec := Record{Phase: phase, Pod: pod, Container: container,
		StartMs: ms(start.Sub(r.origin)), Ms: ms(end.Sub(start))}
	if r.log != nil {
		r.log.Debug("span", "phase", phase, "pod", pod, "container", container, "start_ms", rec.StartMs, "ms", rec.Ms)
	}
	r.mu.Lock()
	r.spans = append(r.spans, rec)
	r.mu.Unlock()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// header is the trace file's first line.
type header struct {
	OriginBoottimeNs int64   `json:"origin_boottime_ns"`
	UserMs           float64 `json:"cpu_user_ms"`
	SysMs            float64 `json:"cpu_sys_ms"`
}

// Close writes every span to the recorder's writer: a header line (the
// origin on CLOCK_BOOTTIME, the process's CPU time so far), then one line
// per span in the order they ended.
func (r *Recorder) Close() error {
	if r == nil || r.w == nil {
		return nil
	}
	h := header{OriginBoottimeNs: r.boot}
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		h.UserMs = float64(ru.Utime.Nano()) / 1e6
		h.SysMs = float64(ru.Stime.Nano()) / 1e6
	}
	enc := json.NewEncoder(r.w)
	if err := enc.Encode(h); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.spans {
		if err := enc.Encode(s); err != nil {
			return err
		}
	}
	return nil
}
