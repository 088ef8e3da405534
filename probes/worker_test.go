package probes

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// fakeClock moves only when told. Every After call is announced on waits,
// so a test knows the worker is idle before it moves the clock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	waits  chan time.Duration
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), waits: make(chan time.Duration, 64)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	if d <= 0 {
		ch <- c.now
	} else {
		c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	}
	c.mu.Unlock()
	c.waits <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if t.at.After(c.now) {
			kept = append(kept, t)
		} else {
			t.ch <- c.now
		}
	}
	c.timers = kept
}

// execCall is one exec of the probe command, answered by the test.
type execCall struct {
	at    time.Time
	cmd   []string
	ctx   context.Context
	reply chan execReply
}

type execReply struct {
	code int
	out  string
	err  error
}

var (
	ok   = execReply{code: 0}
	fail = execReply{code: 1, out: "nope"}
	boom = execReply{err: errors.New("boom")}
)

// harness runs one worker whose exec probe is answered by the test.
type harness struct {
	t         *testing.T
	clock     *fakeClock
	calls     chan execCall
	published chan Result
	reports   chan Attempt
	started   time.Time
	w         *Worker
}

func startWorker(t *testing.T, kind Kind, p *corev1.Probe, startedAgo time.Duration) *harness {
	t.Helper()
	h := &harness{
		t:         t,
		clock:     newFakeClock(),
		calls:     make(chan execCall),
		published: make(chan Result, 16),
		reports:   make(chan Attempt, 16),
	}
	h.started = h.clock.Now().Add(-startedAgo)
	p.Exec = &corev1.ExecAction{Command: []string{"check"}}
	target := Target{Exec: func(ctx context.Context, cmd []string, out, _ io.Writer) (int, error) {
		c := execCall{at: h.clock.Now(), cmd: cmd, ctx: ctx, reply: make(chan execReply)}
		select {
		case h.calls <- c:
		case <-ctx.Done():
			return -1, ctx.Err()
		}
		select {
		case r := <-c.reply:
			io.WriteString(out, r.out)
			return r.code, r.err
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	}}
	h.w = StartWorker(context.Background(), WorkerConfig{
		Kind: kind, Probe: p, Target: target, StartedAt: h.started, Clock: h.clock,
		Publish: func(r Result) { h.published <- r },
		Report:  func(a Attempt) { h.reports <- a },
	})
	t.Cleanup(func() {
		h.w.Stop()
		<-h.w.Done()
	})
	return h
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		panic("unreachable")
	}
}

// idle waits until the worker waits for its next tick and returns how long
// it waits.
func (h *harness) idle() time.Duration {
	h.t.Helper()
	return recv(h.t, h.clock.waits, "wait for the next tick")
}

// tick lets the worker's next tick come and answers its exec call(s) with
// replies, one per try; it returns when the tick's probe has been answered
// and checks the tick came at want after the container started.
func (h *harness) tick(want time.Duration, replies ...execReply) {
	h.t.Helper()
	h.clock.Advance(h.idle())
	for _, r := range replies {
		c := recv(h.t, h.calls, "probe exec")
		if got := c.at.Sub(h.started); got != want {
			h.t.Fatalf("probe ran %v after the start, want %v", got, want)
		}
		c.reply <- r
	}
}

// published returns what the worker published since the last call, once
// the worker is idle again (or has returned).
func (h *harness) settle() (pub []Result, reps []Attempt) {
	h.t.Helper()
	select {
	case d := <-h.clock.waits:
		// Put it back for the next idle().
		h.clock.waits <- d
	case <-h.w.Done():
	case <-time.After(10 * time.Second):
		h.t.Fatal("worker neither waits nor returns")
	}
	for {
		select {
		case r := <-h.published:
			pub = append(pub, r)
		case a := <-h.reports:
			reps = append(reps, a)
		default:
			return pub, reps
		}
	}
}

func (h *harness) expect(want ...Result) []Attempt {
	h.t.Helper()
	pub, reps := h.settle()
	if len(pub) != len(want) || len(want) > 0 && pub[0] != want[0] {
		h.t.Fatalf("published %v, want %v", pub, want)
	}
	return reps
}

func (h *harness) holds() bool {
	select {
	case <-h.w.Done():
		return true
	default:
		return false
	}
}

func TestWorkerReadinessThresholdsAndTicks(t *testing.T) {
	h := startWorker(t, Readiness, &corev1.Probe{
		InitialDelaySeconds: 5, PeriodSeconds: 10, SuccessThreshold: 2, FailureThreshold: 3,
	}, 0)
	sec := time.Second
	if d := h.idle(); d != 5*sec {
		t.Fatalf("first wait %v, want the initial delay 5s", d)
	}
	h.clock.waits <- 5 * sec // put back for tick

	h.tick(5*sec, ok)
	h.expect() // 1 success < successThreshold
	h.tick(15*sec, ok)
	h.expect(Success)
	h.tick(25*sec, ok)
	h.expect() // unchanged: not published again

	h.tick(35*sec, fail)
	reps := h.expect()
	if len(reps) != 1 || reps[0].Message() != "Readiness probe failed: nope" || reps[0].Reason() != "Unhealthy" {
		t.Fatalf("reports %+v, want one Unhealthy 'Readiness probe failed: nope'", reps)
	}
	h.tick(45*sec, fail)
	h.expect()
	h.tick(55*sec, ok) // breaks the failure streak
	h.expect()
	h.tick(65*sec, fail)
	h.expect()
	h.tick(75*sec, fail)
	h.expect()
	h.tick(85*sec, fail)
	h.expect(Failure)
	h.tick(95*sec, fail)
	h.expect() // readiness keeps probing, publishes nothing new
	if h.holds() {
		t.Fatal("readiness worker returned; it must run until stopped")
	}
}

func TestWorkerReadinessInitialFailureIsNotRepublished(t *testing.T) {
	h := startWorker(t, Readiness, &corev1.Probe{FailureThreshold: 1}, 0)
	h.tick(0, fail)
	h.expect() // Failure is the initial readiness: no change
	h.tick(10*time.Second, ok)
	h.expect(Success)
}

func TestWorkerLivenessHoldsAfterPublishingFailure(t *testing.T) {
	h := startWorker(t, Liveness, &corev1.Probe{PeriodSeconds: 1, FailureThreshold: 2}, 0)
	h.tick(0, ok)
	h.expect() // Success is the initial liveness
	h.tick(1*time.Second, fail)
	h.expect()
	h.tick(2*time.Second, fail)
	h.expect(Failure)
	select {
	case <-h.w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("liveness worker did not hold after publishing Failure")
	}
	if len(h.clock.waits) != 0 {
		t.Fatal("liveness worker waited for another tick after holding")
	}
}

func TestWorkerStartupPublishesOnceAndHolds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		replies []execReply
		want    Result
	}{
		{"success", []execReply{fail, fail, ok}, Success},
		{"failure", []execReply{fail, fail, fail}, Failure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startWorker(t, Startup, &corev1.Probe{PeriodSeconds: 2}, 0)
			for i, r := range tc.replies {
				h.tick(time.Duration(2*i)*time.Second, r)
				if i < len(tc.replies)-1 {
					h.expect()
				}
			}
			h.expect(tc.want)
			<-h.w.Done()
		})
	}
}

func TestWorkerHandlerErrorsAreRetriedThenDiscarded(t *testing.T) {
	h := startWorker(t, Liveness, &corev1.Probe{FailureThreshold: 1}, 0)
	// Three tries in one tick, all erring: nothing published, one report.
	h.tick(0, boom, boom, boom)
	reps := h.expect()
	if len(reps) != 1 || reps[0].Err == nil {
		t.Fatalf("reports %+v, want one with the handler error", reps)
	}
	const msg = `Liveness probe errored and resulted in unknown state: exec probe "check": boom`
	if got := reps[0].Message(); got != msg {
		t.Fatalf("message %q, want %q", got, msg)
	}
	// An error then a failure on the retry: the failure counts.
	h.tick(10*time.Second, boom, fail)
	h.expect(Failure)
}

func TestWorkerStopWhileWaiting(t *testing.T) {
	h := startWorker(t, Readiness, &corev1.Probe{InitialDelaySeconds: 30}, 0)
	h.idle()
	h.w.Stop()
	recv(t, h.w.Done(), "worker exit")
	h.w.Stop() // idempotent
}

func TestWorkerStopMidProbeCancelsAndReportsNothing(t *testing.T) {
	h := startWorker(t, Liveness, &corev1.Probe{}, 0)
	h.clock.Advance(h.idle())
	c := recv(t, h.calls, "probe exec")
	h.w.Stop()
	recv(t, c.ctx.Done(), "cancel of the probe's exec")
	recv(t, h.w.Done(), "worker exit")
	if len(h.published) != 0 || len(h.reports) != 0 {
		t.Fatalf("stopped worker published %d and reported %d", len(h.published), len(h.reports))
	}
}

func TestWorkerStartedLongAgoProbesAtOnce(t *testing.T) {
	h := startWorker(t, Readiness, &corev1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 10}, time.Hour)
	if d := h.idle(); d > 0 {
		t.Fatalf("first wait %v; the initial delay is long past, want none", d)
	}
	h.clock.waits <- 0
	h.tick(time.Hour, ok)
	h.expect(Success)
	if d := h.idle(); d != 10*time.Second {
		t.Fatalf("second wait %v, want the period", d)
	}
}

func TestWorkerOverrunSkipsMissedTicks(t *testing.T) {
	h := startWorker(t, Readiness, &corev1.Probe{PeriodSeconds: 10}, 0)
	h.clock.Advance(h.idle())
	c := recv(t, h.calls, "probe exec")
	h.clock.Advance(25 * time.Second) // the probe took 25s
	c.reply <- ok
	// Ticks at 10 and 20 were missed; the next is at 30, 5s from now.
	if d := h.idle(); d != 5*time.Second {
		t.Fatalf("wait after overrun %v, want 5s (to the tick at 30s)", d)
	}
}

func TestWorkerNewInstanceStartsFromInitial(t *testing.T) {
	p := &corev1.Probe{FailureThreshold: 3}
	first := startWorker(t, Liveness, p, 0)
	first.tick(0, fail)
	first.tick(10*time.Second, fail)
	first.expect()
	first.w.Stop()
	<-first.w.Done()

	// The restarted instance's worker counts from zero.
	second := startWorker(t, Liveness, p, 0)
	second.tick(0, fail)
	second.tick(10*time.Second, fail)
	second.expect()
	second.tick(20*time.Second, fail)
	second.expect(Failure)
}

func TestNextTick(t *testing.T) {
	t0 := time.Unix(0, 0)
	s := time.Second
	for _, tc := range []struct {
		now, want time.Duration
	}{
		{0, 10 * s},      // probe took no time
		{10 * s, 10 * s}, // exactly on the next tick
		{11 * s, 20 * s}, // one tick missed
		{35 * s, 40 * s}, // three missed
		{40 * s, 40 * s}, // on a later tick
		{3 * s, 10 * s},  // within the period
		{19 * s, 20 * s}, // just before a later tick
		{9999 * s, 10000 * s},
	} {
		if got := nextTick(t0, 10*s, t0.Add(tc.now)).Sub(t0); got != tc.want {
			t.Errorf("nextTick(0, 10s, %v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

func TestAttemptEvents(t *testing.T) {
	for _, tc := range []struct {
		a               Attempt
		reason, message string
	}{
		{Attempt{Kind: Liveness, Result: Failure, Output: "HTTP probe failed with statuscode: 500"},
			"Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500"},
		{Attempt{Kind: Readiness, Result: Warning, Output: "Probe terminated redirects, Response body: "},
			"ProbeWarning", "Readiness probe warning: Probe terminated redirects, Response body: "},
		{Attempt{Kind: Startup, Result: Unknown, Err: errors.New(`strconv.Atoi: parsing "http": invalid syntax`)},
			"Unhealthy", `Startup probe errored and resulted in unknown state: strconv.Atoi: parsing "http": invalid syntax`},
		{Attempt{Kind: Readiness, Result: Failure, Err: errors.New("unexpected EOF")},
			"Unhealthy", "Readiness probe errored and resulted in failure state: unexpected EOF"},
	} {
		if got := tc.a.Reason(); got != tc.reason {
			t.Errorf("%+v: reason %q, want %q", tc.a, got, tc.reason)
		}
		if got := tc.a.Message(); got != tc.message {
			t.Errorf("%+v: message %q, want %q", tc.a, got, tc.message)
		}
	}
}

func TestInitial(t *testing.T) {
	if Initial(Readiness) != Failure || Initial(Liveness) != Success || Initial(Startup) != Unknown {
		t.Fatal("initial results must be readiness Failure, liveness Success, startup Unknown")
	}
	var zero Result
	if zero != Unknown {
		t.Fatal("the zero Result must be Unknown")
	}
}
