package probes

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxProbeRetries is how many times one tick runs a probe whose handler
// errs before the tick is given up (the kubelet's constant).
const maxProbeRetries = 3

// Clock is the time a worker runs on; tests fire it by hand.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed (at once when d <= 0).
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Attempt is one tick whose probe did not simply succeed: a failure, a
// success with a warning, or a handler error that persisted through
// maxProbeRetries tries (its result was discarded). Each deserves an event.
type Attempt struct {
	Kind   Kind
	Result Result // Failure or Warning; with Err, the state the last try ended in
	Output string
	Err    error
}

// Reason is the kubelet's event reason: Unhealthy, or ProbeWarning.
func (a Attempt) Reason() string {
	if a.Err == nil && a.Result == Warning {
		return "ProbeWarning"
	}
	return "Unhealthy"
}

// Message is the kubelet's event message (prober.go).
func (a Attempt) Message() string {
	switch {
	case a.Err != nil:
		return fmt.Sprintf("%s probe errored and resulted in %s state: %s", a.Kind, strings.ToLower(a.Result.String()), a.Err)
	case a.Result == Warning:
		return fmt.Sprintf("%s probe warning: %s", a.Kind, a.Output)
	}
	return fmt.Sprintf("%s probe failed: %s", a.Kind, a.Output)
}

// WorkerConfig describes one probe of one container instance.
type WorkerConfig struct {
	Kind      Kind
	Probe     *corev1.Probe
	Target    Target
	StartedAt time.Time // when the instance started: the origin of the ticks
	Clock     Clock     // nil: the real clock
	// Publish (required) receives each change of the published result;
	// the first change is relative to Initial(Kind). It runs on the
	// worker's goroutine, so a slow Publish delays the next probe.
	Publish func(Result)
	// Report, if set, receives every Attempt, for events.
	Report func(Attempt)
}

// Worker probes one container instance periodically until it is stopped or
// holds.
type Worker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// StartWorker starts probing. The first probe runs at StartedAt +
// initialDelaySeconds (at once if that is past), then every periodSeconds
// after it; a probe that overruns its tick skips the ticks it missed. These
// ticks are aligned to the container's start, where the kubelet's run from
// when it learnt of the pod: a deliberate difference that makes a probe's
// first run predictable.
//
// A result is published after failureThreshold consecutive Failures or
// successThreshold consecutive Successes (a Warning counts as a Success),
// and only when it differs from the last one published. After publishing a
// liveness Failure, or any startup result, the worker holds: it returns, as
// the instance is about to be killed or is started, and only a new
// instance (a new worker) probes again. A readiness worker runs until
// stopped.
//
// The worker knows nothing of startup gating: start liveness and readiness
// workers when the startup probe has published Success, keeping StartedAt
// the instance's start, and stop liveness and startup workers when the pod
// starts terminating.
func StartWorker(ctx context.Context, cfg WorkerConfig) *Worker {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Worker{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer cancel()
		run(ctx, cfg)
	}()
	return w
}

// Stop ends the worker and cancels a probe under way; it does not wait
// (see Done). Once the worker has seen the stop it neither publishes nor
// reports, but a Publish or Report already running completes. Safe to call
// more than once, from any goroutine.
func (w *Worker) Stop() { w.cancel() }

// Done is closed when the worker's goroutine has returned: stopped, held, or
// its context ended.
func (w *Worker) Done() <-chan struct{} { return w.done }

func run(ctx context.Context, cfg WorkerConfig) {
	p, clock := cfg.Probe, cfg.Clock
	period := seconds(p.PeriodSeconds, 10)
	failureThreshold, successThreshold := int(p.FailureThreshold), int(p.SuccessThreshold)
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	if successThreshold <= 0 {
		successThreshold = 1
	}

	next := cfg.StartedAt.Add(seconds(p.InitialDelaySeconds, 0))
	if now := clock.Now(); next.Before(now) {
		next = now
	}
	published := Initial(cfg.Kind)
	var last Result
	streak := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(next.Sub(clock.Now())):
		}
		res, out, err := runWithRetries(ctx, p, cfg.Target)
		if ctx.Err() != nil { // stopped mid-probe: the result means nothing
			return
		}
		next = nextTick(next, period, clock.Now())
		if cfg.Report != nil && (err != nil || res != Success) {
			cfg.Report(Attempt{Kind: cfg.Kind, Result: res, Output: out, Err: err})
		}
		if err != nil {
			continue // the kubelet throws the result of an erring handler away
		}
		if res == Warning {
			res = Success
		}
		if res == last {
			streak++
		} else {
			last, streak = res, 1
		}
		if res == Failure && streak < failureThreshold || res == Success && streak < successThreshold {
			continue
		}
		if res != published {
			published = res
			cfg.Publish(res)
		}
		if cfg.Kind == Startup || cfg.Kind == Liveness && res == Failure {
			return
		}
	}
}

// runWithRetries runs p up to maxProbeRetries times while its handler errs.
func runWithRetries(ctx context.Context, p *corev1.Probe, t Target) (res Result, out string, err error) {
	for range maxProbeRetries {
		res, out, err = Run(ctx, p, t)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return res, out, err
}

// nextTick is the first tick after prev, on prev's grid of period, that is
// not before now.
func nextTick(prev time.Time, period time.Duration, now time.Time) time.Time {
	next := prev.Add(period)
	if next.Before(now) {
		next = next.Add((now.Sub(next) + period - 1) / period * period)
	}
	return next
}
