package job

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// fakePod finishes on its own with a phase after a delay (never when the
// delay is 0), or as Failed when deleted, like a pod deleted before it ended.
type fakePod struct {
	mu     sync.Mutex
	pod    *corev1.Pod
	done   chan struct{}
	once   sync.Once
	onDone func() // before Done closes
}

func (f *fakePod) Pod() *corev1.Pod {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pod.DeepCopy()
}
func (f *fakePod) Done() <-chan struct{} { return f.done }
func (f *fakePod) Delete(*int64)         { f.end(corev1.PodFailed) }
func (f *fakePod) end(phase corev1.PodPhase) {
	f.once.Do(func() {
		f.mu.Lock()
		f.pod.Status.Phase = phase
		f.mu.Unlock()
		f.onDone()
		close(f.done)
	})
}

// behaviour is what the n-th pod (from 1) does.
type behaviour struct {
	phase    corev1.PodPhase
	after    time.Duration // 0: runs until deleted
	restarts int32         // its container's restartCount while it runs
}

func TestController(t *testing.T) {
	defer func(d time.Duration) { backoffInitial = d }(backoffInitial)
	backoffInitial = 20 * time.Millisecond
	succeed := func(int) behaviour { return behaviour{phase: corev1.PodSucceeded, after: 10 * time.Millisecond} }
	fail := func(int) behaviour { return behaviour{phase: corev1.PodFailed, after: 10 * time.Millisecond} }
	for _, tc := range []struct {
		name                       string
		rp                         corev1.RestartPolicy
		completions                *int32
		parallelism, backoffLimit  int32
		deadline                   *int64
		pod                        func(n int) behaviour
		want                       string // the terminal condition
		succeeded, failed, started int32
		maxParallel                int
	}{
		{name: "completions reached", rp: corev1.RestartPolicyNever, completions: ptr[int32](3), parallelism: 2, backoffLimit: 6,
			pod: succeed, want: "Complete/CompletionsReached", succeeded: 3, started: 3, maxParallel: 2},
		{name: "backoff limit exceeded by the third failure", rp: corev1.RestartPolicyNever, completions: ptr[int32](1), parallelism: 1, backoffLimit: 2,
			pod: fail, want: "Failed/BackoffLimitExceeded", failed: 3, started: 3, maxParallel: 1},
		{name: "a failure is replaced", rp: corev1.RestartPolicyNever, completions: ptr[int32](2), parallelism: 1, backoffLimit: 6,
			pod: func(n int) behaviour {
				if n == 1 {
					return fail(n)
				}
				return succeed(n)
			}, want: "Complete/CompletionsReached", succeeded: 2, failed: 1, started: 3, maxParallel: 1},
		{name: "OnFailure restarts count against the limit", rp: corev1.RestartPolicyOnFailure, completions: ptr[int32](1), parallelism: 1, backoffLimit: 2,
			pod: func(int) behaviour { return behaviour{restarts: 2} }, want: "Failed/BackoffLimitExceeded", failed: 1, started: 1, maxParallel: 1},
		{name: "activeDeadlineSeconds deletes the running pods", rp: corev1.RestartPolicyNever, completions: ptr[int32](2), parallelism: 2, backoffLimit: 6,
			deadline: ptr[int64](1), pod: func(int) behaviour { return behaviour{} }, want: "Failed/DeadlineExceeded", failed: 2, started: 2, maxParallel: 2},
		{name: "work queue: the first success ends it once the others are done", rp: corev1.RestartPolicyNever, parallelism: 2, backoffLimit: 6,
			pod: func(n int) behaviour {
				if n == 1 {
					return succeed(n)
				}
				return behaviour{phase: corev1.PodSucceeded, after: 200 * time.Millisecond}
			}, want: "Complete/CompletionsReached", succeeded: 2, started: 2, maxParallel: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := &batchv1.Job{}
			j.Name = "j"
			j.Spec.Template.Spec.RestartPolicy = tc.rp
			j.Spec.Completions, j.Spec.Parallelism, j.Spec.BackoffLimit = tc.completions, &tc.parallelism, &tc.backoffLimit
			j.Spec.ActiveDeadlineSeconds = tc.deadline
			var mu sync.Mutex
			var started, running, maxRunning int
			c := &Controller{
				Job:    j,
				NewPod: func() *corev1.Pod { return &corev1.Pod{} },
				Start: func(p *corev1.Pod) PodHandle {
					mu.Lock()
					started++
					running++
					maxRunning = max(maxRunning, running)
					b := tc.pod(started)
					mu.Unlock()
					p = p.DeepCopy()
					p.Name = fmt.Sprintf("j-%d", started)
					p.Status.Phase = corev1.PodRunning
					p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: b.restarts}}
					f := &fakePod{pod: p, done: make(chan struct{}), onDone: func() {
						mu.Lock()
						running--
						mu.Unlock()
					}}
					if b.after > 0 {
						time.AfterFunc(b.after, func() { f.end(b.phase) })
					}
					return f
				},
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := c.Run(ctx)
			if s := terminal(got); s != tc.want {
				t.Errorf("condition %s, want %s", s, tc.want)
			}
			if got.Status.Succeeded != tc.succeeded || got.Status.Failed != tc.failed {
				t.Errorf("succeeded %d failed %d, want %d and %d", got.Status.Succeeded, got.Status.Failed, tc.succeeded, tc.failed)
			}
			mu.Lock()
			defer mu.Unlock()
			if int32(started) != tc.started || maxRunning > tc.maxParallel || running != 0 {
				t.Errorf("started %d pods (want %d), at most %d at once (want ≤ %d), %d still running", started, tc.started, maxRunning, tc.maxParallel, running)
			}
			if got.Status.Active != 0 {
				t.Errorf("active %d after the end", got.Status.Active)
			}
		})
	}
}

func TestSuspendedStartsNothing(t *testing.T) {
	j := &batchv1.Job{}
	j.Spec.Suspend = ptr(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := &Controller{Job: j, NewPod: func() *corev1.Pod { t.Error("a pod of a suspended Job"); return &corev1.Pod{} }}
	if got := c.Run(ctx); len(got.Status.Conditions) != 0 || got.Status.StartTime == nil {
		t.Errorf("status %+v", got.Status)
	}
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	r := &run{job: &batchv1.Job{}}
	for failed, want := range map[int32]time.Duration{0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 7: 6 * time.Minute, 30: 6 * time.Minute} {
		r.job.Status.Failed = failed
		if got := r.backoff(); got != want {
			t.Errorf("%d failures: back-off %s, want %s", failed, got, want)
		}
	}
}

func terminal(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return string(c.Type) + "/" + c.Reason
		}
	}
	return "none"
}

func ptr[T any](v T) *T { return &v }
