package job

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
func (f *fakePod) Delete(*int64)         { f.end(behaviour{phase: corev1.PodFailed, exit: 143}) }
func (f *fakePod) end(b behaviour) {
	f.once.Do(func() {
		f.mu.Lock()
		f.pod.Status.Phase = b.phase
		cs := &f.pod.Status.ContainerStatuses[0]
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: b.exit}}
		if b.phase == corev1.PodFailed && b.exit == 0 {
			cs.State.Terminated.ExitCode = 1
		}
		f.pod.Status.Conditions = append(f.pod.Status.Conditions, b.conditions...)
		f.mu.Unlock()
		f.onDone()
		close(f.done)
	})
}

// behaviour is what a pod does.
type behaviour struct {
	phase      corev1.PodPhase
	after      time.Duration // 0: runs until deleted
	restarts   int32         // its container's restartCount while it runs
	exit       int32         // its container's exit code when it fails (1 if 0)
	conditions []corev1.PodCondition
	ready      bool
}

var (
	succeed = behaviour{phase: corev1.PodSucceeded, after: 10 * time.Millisecond}
	fail    = behaviour{phase: corev1.PodFailed, after: 10 * time.Millisecond}
	forever = behaviour{}
)

func failWith(code int32) behaviour {
	return behaviour{phase: corev1.PodFailed, after: 10 * time.Millisecond, exit: code}
}

func exitRule(action batchv1.PodFailurePolicyAction, op batchv1.PodFailurePolicyOnExitCodesOperator, container string, codes ...int32) batchv1.PodFailurePolicyRule {
	r := batchv1.PodFailurePolicyRule{Action: action, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: op, Values: codes}}
	if container != "" {
		r.OnExitCodes.ContainerName = &container
	}
	return r
}

// started is one pod the controller started: its attempt number n (from 1)
// and completion index.
type started struct{ n, ix int }

type jobCase struct {
	name                      string
	rp                        corev1.RestartPolicy
	completions               *int32
	parallelism, backoffLimit int32
	edit                      func(*batchv1.Job)
	// pod is what the n-th pod (from 1) of index ix (-1: NonIndexed)
	// does; attempt counts the pods of that index so far (from 1).
	pod              func(n, ix, attempt int) behaviour
	want             string // interim and terminal conditions: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached"
	msg              string // the terminal condition's message, when checked
	succeeded        int32
	failed           int32
	started          int
	maxParallel      int
	completed        string  // status.completedIndexes
	failedIndexes    *string // status.failedIndexes
	indexes          string  // the indexes of the started pods, in start order
	failureCountsOf0 string  // the job-index-failure-count annotations of index 0's pods
}

func runCase(t *testing.T, tc jobCase) {
	j := &batchv1.Job{}
	j.Name, j.Namespace = "j", "ns"
	j.Spec.Template.Spec.RestartPolicy = tc.rp
	if j.Spec.Template.Spec.RestartPolicy == "" {
		j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	}
	j.Spec.Completions, j.Spec.Parallelism, j.Spec.BackoffLimit = tc.completions, &tc.parallelism, &tc.backoffLimit
	if tc.edit != nil {
		tc.edit(j)
	}
	var mu sync.Mutex
	var starts []started
	var failureCounts []string
	attempts := map[int]int{}
	var running, maxRunning int
	c := &Controller{
		Job: j,
		NewPod: func(ix int) *corev1.Pod {
			p := &corev1.Pod{}
			if ix >= 0 {
				p.Annotations = map[string]string{batchv1.JobCompletionIndexAnnotation: strconv.Itoa(ix)}
			}
			return p
		},
		Start: func(p *corev1.Pod) PodHandle {
			ix := completionIndex(p)
			mu.Lock()
			starts = append(starts, started{len(starts) + 1, ix})
			attempts[ix]++
			if ix == 0 {
				failureCounts = append(failureCounts, p.Annotations[batchv1.JobIndexFailureCountAnnotation])
			}
			running++
			maxRunning = max(maxRunning, running)
			b := tc.pod(len(starts), ix, attempts[ix])
			n := len(starts)
			mu.Unlock()
			p = p.DeepCopy()
			p.Name, p.Namespace = fmt.Sprintf("j-%d", n), "ns"
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: b.restarts}}
			if b.ready {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			}
			f := &fakePod{pod: p, done: make(chan struct{}), onDone: func() {
				mu.Lock()
				running--
				mu.Unlock()
			}}
			if b.after > 0 {
				time.AfterFunc(b.after, func() { f.end(b) })
			}
			return f
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := c.Run(ctx)
	if s := conditions(got); s != tc.want {
		t.Errorf("conditions %s, want %s", s, tc.want)
	}
	if tc.msg != "" {
		if last := got.Status.Conditions[len(got.Status.Conditions)-1]; last.Message != tc.msg {
			t.Errorf("message %q, want %q", last.Message, tc.msg)
		}
	}
	if got.Status.Succeeded != tc.succeeded || got.Status.Failed != tc.failed {
		t.Errorf("succeeded %d failed %d, want %d and %d", got.Status.Succeeded, got.Status.Failed, tc.succeeded, tc.failed)
	}
	if got.Status.CompletedIndexes != tc.completed {
		t.Errorf("completedIndexes %q, want %q", got.Status.CompletedIndexes, tc.completed)
	}
	if fi, want := deref(got.Status.FailedIndexes), deref(tc.failedIndexes); fi != want {
		t.Errorf("failedIndexes %s, want %s", fi, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) != tc.started || maxRunning > tc.maxParallel || running != 0 {
		t.Errorf("started %d pods (want %d), at most %d at once (want ≤ %d), %d still running", len(starts), tc.started, maxRunning, tc.maxParallel, running)
	}
	if tc.indexes != "" {
		var ixs []string
		for _, s := range starts {
			ixs = append(ixs, strconv.Itoa(s.ix))
		}
		if s := strings.Join(ixs, ","); s != tc.indexes {
			t.Errorf("started indexes %s, want %s", s, tc.indexes)
		}
	}
	if tc.failureCountsOf0 != "" {
		if s := strings.Join(failureCounts, ","); s != tc.failureCountsOf0 {
			t.Errorf("index 0's failure counts %s, want %s", s, tc.failureCountsOf0)
		}
	}
	if got.Status.Active != 0 || *got.Status.Terminating != 0 || *got.Status.Ready != 0 {
		t.Errorf("active %d, terminating %d, ready %d after the end", got.Status.Active, *got.Status.Terminating, *got.Status.Ready)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return strconv.Quote(*s)
}

func always(b behaviour) func(n, ix, attempt int) behaviour {
	return func(int, int, int) behaviour { return b }
}

func fastBackoff(t *testing.T) {
	d := backoffInitial
	backoffInitial = 20 * time.Millisecond
	t.Cleanup(func() { backoffInitial = d })
}

func TestController(t *testing.T) {
	fastBackoff(t)
	for _, tc := range []jobCase{
		{name: "completions reached", completions: ptr[int32](3), parallelism: 2, backoffLimit: 6,
			pod: always(succeed), want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached", msg: "Reached expected number of succeeded pods",
			succeeded: 3, started: 3, maxParallel: 2},
		{name: "backoff limit exceeded by the third failure", completions: ptr[int32](1), parallelism: 1, backoffLimit: 2,
			pod: always(fail), want: "FailureTarget/BackoffLimitExceeded Failed/BackoffLimitExceeded", msg: "Job has reached the specified backoff limit",
			failed: 3, started: 3, maxParallel: 1},
		{name: "a failure is replaced", completions: ptr[int32](2), parallelism: 1, backoffLimit: 6,
			pod: func(n, _, _ int) behaviour {
				if n == 1 {
					return fail
				}
				return succeed
			}, want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached", succeeded: 2, failed: 1, started: 3, maxParallel: 1},
		{name: "OnFailure restarts count against the limit", rp: corev1.RestartPolicyOnFailure, completions: ptr[int32](1), parallelism: 1, backoffLimit: 2,
			pod: always(behaviour{restarts: 2}), want: "FailureTarget/BackoffLimitExceeded Failed/BackoffLimitExceeded", failed: 1, started: 1, maxParallel: 1},
		{name: "activeDeadlineSeconds deletes the running pods", completions: ptr[int32](2), parallelism: 2, backoffLimit: 6,
			edit: func(j *batchv1.Job) { j.Spec.ActiveDeadlineSeconds = ptr[int64](1) }, pod: always(forever),
			want: "FailureTarget/DeadlineExceeded Failed/DeadlineExceeded", msg: "Job was active longer than specified deadline", failed: 2, started: 2, maxParallel: 2},
		{name: "work queue: the first success ends it once the others are done", parallelism: 2, backoffLimit: 6,
			pod: func(n, _, _ int) behaviour {
				if n == 1 {
					return succeed
				}
				return behaviour{phase: corev1.PodSucceeded, after: 200 * time.Millisecond}
			}, want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached", succeeded: 2, started: 2, maxParallel: 2},

		// Indexed.
		{name: "indexed: one success per index, lowest pending index first", completions: ptr[int32](3), parallelism: 2, backoffLimit: 6,
			edit: indexed, pod: always(succeed), want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached",
			succeeded: 3, started: 3, maxParallel: 2, completed: "0-2", indexes: "0,1,2"},
		{name: "indexed: a failed index is run again", completions: ptr[int32](3), parallelism: 3, backoffLimit: 6,
			edit: indexed, pod: func(_, ix, attempt int) behaviour {
				if ix == 1 && attempt == 1 {
					return fail
				}
				return succeed
			}, want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached",
			succeeded: 3, failed: 1, started: 4, maxParallel: 3, completed: "0-2", indexes: "0,1,2,1"},

		// podFailurePolicy.
		{name: "FailJob on an exit code fails the Job at once and deletes the others", completions: ptr[int32](2), parallelism: 2, backoffLimit: 6,
			edit: policy(exitRule(batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyOnExitCodesOpIn, "", 42)),
			pod: func(n, _, _ int) behaviour {
				if n == 1 {
					return failWith(42)
				}
				return forever
			}, want: "FailureTarget/PodFailurePolicy Failed/PodFailurePolicy",
			msg: "Container c for pod ns/j-1 failed with exit code 42 matching FailJob rule at index 0", failed: 2, started: 2, maxParallel: 2},
		{name: "FailJob with NotIn", completions: ptr[int32](1), parallelism: 1, backoffLimit: 6,
			edit: policy(exitRule(batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyOnExitCodesOpNotIn, "", 1, 2)),
			pod:  always(failWith(3)), want: "FailureTarget/PodFailurePolicy Failed/PodFailurePolicy", failed: 1, started: 1, maxParallel: 1},
		{name: "a rule for another container does not match", completions: ptr[int32](1), parallelism: 1, backoffLimit: 0,
			edit: policy(exitRule(batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyOnExitCodesOpIn, "other", 42)),
			pod:  always(failWith(42)), want: "FailureTarget/BackoffLimitExceeded Failed/BackoffLimitExceeded", failed: 1, started: 1, maxParallel: 1},
		{name: "Ignore does not count the failure", completions: ptr[int32](1), parallelism: 1, backoffLimit: 0,
			edit: policy(exitRule(batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyOnExitCodesOpIn, "c", 3)),
			pod: func(n, _, _ int) behaviour {
				if n < 3 {
					return failWith(3)
				}
				return succeed
			}, want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached", succeeded: 1, started: 3, maxParallel: 1},
		{name: "Count counts it", completions: ptr[int32](1), parallelism: 1, backoffLimit: 0,
			edit: policy(exitRule(batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyOnExitCodesOpIn, "", 3),
				exitRule(batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyOnExitCodesOpIn, "", 3)),
			pod: always(failWith(3)), want: "FailureTarget/BackoffLimitExceeded Failed/BackoffLimitExceeded", failed: 1, started: 1, maxParallel: 1},
		{name: "onPodConditions: Ignore a DisruptionTarget", completions: ptr[int32](1), parallelism: 1, backoffLimit: 0,
			edit: policy(batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionIgnore,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}}),
			pod: func(n, _, _ int) behaviour {
				if n == 1 {
					b := fail
					b.conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}
					return b
				}
				return succeed
			}, want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached", succeeded: 1, started: 2, maxParallel: 1},
		{name: "onPodConditions: FailJob", completions: ptr[int32](1), parallelism: 1, backoffLimit: 6,
			edit: policy(batchv1.PodFailurePolicyRule{Action: batchv1.PodFailurePolicyActionFailJob,
				OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}}),
			pod: func(int, int, int) behaviour {
				b := fail
				b.conditions = []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}
				return b
			}, want: "FailureTarget/PodFailurePolicy Failed/PodFailurePolicy", msg: "Pod ns/j-1 has condition DisruptionTarget matching FailJob rule at index 0",
			failed: 1, started: 1, maxParallel: 1},

		// backoffLimitPerIndex, maxFailedIndexes, FailIndex.
		{name: "backoffLimitPerIndex: an index fails after its own retries", completions: ptr[int32](2), parallelism: 2, backoffLimit: math32,
			edit: func(j *batchv1.Job) { indexed(j); j.Spec.BackoffLimitPerIndex = ptr[int32](1) },
			pod: func(_, ix, _ int) behaviour {
				if ix == 0 {
					return fail
				}
				return succeed
			}, want: "FailureTarget/FailedIndexes Failed/FailedIndexes", msg: "Job has failed indexes",
			succeeded: 1, failed: 2, started: 3, maxParallel: 2, completed: "1", failedIndexes: ptr("0"), failureCountsOf0: "0,1"},
		{name: "maxFailedIndexes exceeded", completions: ptr[int32](3), parallelism: 1, backoffLimit: math32,
			edit: func(j *batchv1.Job) {
				indexed(j)
				j.Spec.BackoffLimitPerIndex, j.Spec.MaxFailedIndexes = ptr[int32](0), ptr[int32](0)
			},
			pod: always(fail), want: "FailureTarget/MaxFailedIndexesExceeded Failed/MaxFailedIndexesExceeded", msg: "Job has exceeded the specified maximal number of failed indexes",
			failed: 1, started: 1, maxParallel: 1, failedIndexes: ptr("0")},
		{name: "FailIndex fails the index at once", completions: ptr[int32](2), parallelism: 1, backoffLimit: math32,
			edit: func(j *batchv1.Job) {
				indexed(j)
				j.Spec.BackoffLimitPerIndex = ptr[int32](5)
				policy(exitRule(batchv1.PodFailurePolicyActionFailIndex, batchv1.PodFailurePolicyOnExitCodesOpIn, "", 7))(j)
			},
			pod: func(_, ix, _ int) behaviour {
				if ix == 0 {
					return failWith(7)
				}
				return succeed
			}, want: "FailureTarget/FailedIndexes Failed/FailedIndexes", succeeded: 1, failed: 1, started: 2, maxParallel: 1,
			completed: "1", failedIndexes: ptr("0"), indexes: "0,1"},
		{name: "an ignored failure is carried in the ignored count, not the failure count", completions: ptr[int32](1), parallelism: 1, backoffLimit: math32,
			edit: func(j *batchv1.Job) {
				indexed(j)
				j.Spec.BackoffLimitPerIndex = ptr[int32](0)
				policy(exitRule(batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyOnExitCodesOpIn, "", 9))(j)
			},
			pod: func(n, _, _ int) behaviour {
				if n == 1 {
					return failWith(9)
				}
				return succeed
			}, want: "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached", succeeded: 1, started: 2, maxParallel: 1,
			completed: "0", failedIndexes: ptr(""), failureCountsOf0: "0,0"},

		// successPolicy.
		{name: "successPolicy succeededIndexes ends the Job, lingering pods are no failures", completions: ptr[int32](3), parallelism: 3, backoffLimit: 6,
			edit: func(j *batchv1.Job) {
				indexed(j)
				j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr("2")}, {SucceededIndexes: ptr("0")}}}
			},
			pod: func(_, ix, _ int) behaviour {
				if ix == 0 {
					return succeed
				}
				return forever
			}, want: "SuccessCriteriaMet/SuccessPolicy Complete/SuccessPolicy", msg: "Matched rules at index 1",
			succeeded: 1, started: 3, maxParallel: 3, completed: "0"},
		{name: "successPolicy succeededCount", completions: ptr[int32](3), parallelism: 3, backoffLimit: 6,
			edit: func(j *batchv1.Job) {
				indexed(j)
				j.Spec.SuccessPolicy = &batchv1.SuccessPolicy{Rules: []batchv1.SuccessPolicyRule{{SucceededCount: ptr[int32](2)}}}
			},
			pod: func(_, ix, _ int) behaviour {
				if ix < 2 {
					return succeed
				}
				return forever
			}, want: "SuccessCriteriaMet/SuccessPolicy Complete/SuccessPolicy", msg: "Matched rules at index 0",
			succeeded: 2, started: 3, maxParallel: 3, completed: "0,1"},
	} {
		t.Run(tc.name, func(t *testing.T) { runCase(t, tc) })
	}
}

const math32 = int32(1<<31 - 1)

func indexed(j *batchv1.Job) { j.Spec.CompletionMode = ptr(batchv1.IndexedCompletion) }

func policy(rules ...batchv1.PodFailurePolicyRule) func(*batchv1.Job) {
	return func(j *batchv1.Job) { j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: rules} }
}

func TestSuspendedStartsNothingUntilResumed(t *testing.T) {
	j := &batchv1.Job{}
	j.Spec.Suspend = ptr(true)
	j.Spec.Completions, j.Spec.Parallelism = ptr[int32](1), ptr[int32](1)
	resume := make(chan struct{})
	var statuses []*batchv1.Job
	var mu sync.Mutex
	c := &Controller{Job: j, Resume: resume,
		NewPod: func(int) *corev1.Pod { return &corev1.Pod{} },
		Start: func(p *corev1.Pod) PodHandle {
			f := &fakePod{pod: p, done: make(chan struct{}), onDone: func() {}}
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c"}}
			time.AfterFunc(10*time.Millisecond, func() { f.end(succeed) })
			return f
		},
		OnStatus: func(j *batchv1.Job) { mu.Lock(); statuses = append(statuses, j); mu.Unlock() },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { time.Sleep(50 * time.Millisecond); close(resume) }()
	got := c.Run(ctx)
	mu.Lock()
	first := statuses[0]
	mu.Unlock()
	if first.Status.StartTime != nil || conditions(first) != "Suspended/JobSuspended" || first.Status.Active != 0 {
		t.Errorf("while suspended: %s, start %v, active %d", conditions(first), first.Status.StartTime, first.Status.Active)
	}
	if s := conditions(got); s != "SuccessCriteriaMet/CompletionsReached Complete/CompletionsReached" || got.Status.StartTime == nil {
		t.Errorf("after resuming: %s, start %v", s, got.Status.StartTime)
	}
	if s := got.Status.Conditions[0]; s.Type != batchv1.JobSuspended || s.Status != corev1.ConditionFalse || s.Reason != "JobResumed" || s.Message != "Job resumed" {
		t.Errorf("Suspended condition after resuming: %+v", s)
	}
}

func TestReadyAndTerminating(t *testing.T) {
	j := &batchv1.Job{}
	j.Spec.Completions, j.Spec.Parallelism = ptr[int32](2), ptr[int32](2)
	j.Spec.ActiveDeadlineSeconds = ptr[int64](1)
	var mu sync.Mutex
	var seen []string
	n := 0
	c := &Controller{Job: j,
		NewPod: func(int) *corev1.Pod { return &corev1.Pod{} },
		Start: func(p *corev1.Pod) PodHandle {
			mu.Lock()
			n++
			ready := n == 1
			mu.Unlock()
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c"}}
			if ready {
				p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
			}
			f := &fakePod{pod: p, done: make(chan struct{}), onDone: func() {}}
			return &slowDelete{f}
		},
		OnStatus: func(j *batchv1.Job) {
			mu.Lock()
			defer mu.Unlock()
			s := fmt.Sprintf("active %d ready %d terminating %d", j.Status.Active, *j.Status.Ready, *j.Status.Terminating)
			if len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Run(ctx)
	mu.Lock()
	defer mu.Unlock()
	want := "active 2 ready 1 terminating 0|active 0 ready 0 terminating 2|active 0 ready 0 terminating 1|active 0 ready 0 terminating 0"
	if got := strings.Join(seen, "|"); got != want {
		t.Errorf("status counts\n got %s\nwant %s", got, want)
	}
}

// slowDelete ends its pod 50 ms after the delete, so that the controller
// sees it terminating.
type slowDelete struct{ *fakePod }

var slowDeletes sync.Mutex
var slowDeleteN time.Duration

func (s *slowDelete) Delete(*int64) {
	slowDeletes.Lock()
	slowDeleteN++
	d := slowDeleteN * 50 * time.Millisecond
	slowDeletes.Unlock()
	time.AfterFunc(d, func() { s.end(behaviour{phase: corev1.PodFailed, exit: 143}) })
}

func TestBackoffDoublesToItsCap(t *testing.T) {
	for failures, want := range map[int32]time.Duration{0: 0, 1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second,
		6: 320 * time.Second, 7: 10 * time.Minute, 30: 10 * time.Minute} {
		if got := backoff(failures); got != want {
			t.Errorf("%d failures: back-off %s, want %s", failures, got, want)
		}
	}
	defer func(f func() time.Time) { now = f }(now)
	t0 := time.Now()
	now = func() time.Time { return t0.Add(15 * time.Second) }
	if got := remaining(2, t0); got != 5*time.Second {
		t.Errorf("20 s back-off 15 s after the failure: %s left, want 5s", got)
	}
	if got := remaining(1, t0); got != 0 {
		t.Errorf("10 s back-off 15 s after the failure: %s left, want 0", got)
	}
}

func TestGlobalBackoffRestartsAfterASuccess(t *testing.T) {
	r := (&Controller{Job: &batchv1.Job{}}).newRun()
	mk := func(phase corev1.PodPhase) PodHandle {
		p := &corev1.Pod{Status: corev1.PodStatus{Phase: phase}}
		f := &fakePod{pod: p}
		r.active[f] = true
		return f
	}
	r.observe(mk(corev1.PodFailed))
	r.observe(mk(corev1.PodFailed))
	if r.failuresSinceSuccess != 2 {
		t.Fatalf("%d failures counted, want 2", r.failuresSinceSuccess)
	}
	r.observe(mk(corev1.PodSucceeded))
	if r.failuresSinceSuccess != 0 || r.job.Status.Failed != 2 || r.job.Status.Succeeded != 1 {
		t.Errorf("after a success: %d failures since, status %d failed %d succeeded", r.failuresSinceSuccess, r.job.Status.Failed, r.job.Status.Succeeded)
	}
}

func TestIndexes(t *testing.T) {
	for _, tc := range []struct {
		ixs  []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{0, 1}, "0,1"}, {[]int{0, 1, 2}, "0-2"}, {[]int{7, 1, 3, 4, 5}, "1,3-5,7"}, {[]int{0, 2, 3}, "0,2,3"}} {
		s := indexSet{}
		for _, ix := range tc.ixs {
			s[ix] = true
		}
		if got := s.String(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.ixs, got, tc.want)
		}
		if back := parseIndexes(tc.want, 100); back.String() != tc.want {
			t.Errorf("parse %q: %q", tc.want, back.String())
		}
	}
	if got := parseIndexes("1,3-5,x,7", 5).String(); got != "1,3,4" {
		t.Errorf("parse with completions 5: %q, want 1,3,4", got)
	}
}

func TestJudge(t *testing.T) {
	pod := func(init bool, name string, code int32, conds ...corev1.PodConditionType) *corev1.Pod {
		p := &corev1.Pod{}
		p.Name, p.Namespace = "p", "ns"
		cs := corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
		if init {
			p.Status.InitContainerStatuses = []corev1.ContainerStatus{cs}
		} else {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{cs, {Name: "running", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		}
		for _, c := range conds {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue})
		}
		return p
	}
	in, notIn := batchv1.PodFailurePolicyOnExitCodesOpIn, batchv1.PodFailurePolicyOnExitCodesOpNotIn
	failJob, ignore, count, failIndex := batchv1.PodFailurePolicyActionFailJob, batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex
	cond := func(a batchv1.PodFailurePolicyAction, typ corev1.PodConditionType) batchv1.PodFailurePolicyRule {
		return batchv1.PodFailurePolicyRule{Action: a, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: typ, Status: corev1.ConditionTrue}}}
	}
	for _, tc := range []struct {
		name  string
		rules []batchv1.PodFailurePolicyRule
		pod   *corev1.Pod
		want  string // action/counted, "-" for no match
	}{
		{"no policy counts", nil, pod(false, "c", 1), "-/true"},
		{"In matches", []batchv1.PodFailurePolicyRule{exitRule(failJob, in, "", 1, 42)}, pod(false, "c", 42), "FailJob/true"},
		{"In does not match", []batchv1.PodFailurePolicyRule{exitRule(failJob, in, "", 1)}, pod(false, "c", 42), "-/true"},
		{"NotIn matches", []batchv1.PodFailurePolicyRule{exitRule(ignore, notIn, "", 1)}, pod(false, "c", 42), "Ignore/false"},
		{"NotIn does not match", []batchv1.PodFailurePolicyRule{exitRule(ignore, notIn, "", 42)}, pod(false, "c", 42), "-/true"},
		{"exit code 0 never matches", []batchv1.PodFailurePolicyRule{exitRule(ignore, notIn, "", 42)}, pod(false, "c", 0), "-/true"},
		{"containerName matches", []batchv1.PodFailurePolicyRule{exitRule(count, in, "c", 3)}, pod(false, "c", 3), "Count/true"},
		{"containerName does not match", []batchv1.PodFailurePolicyRule{exitRule(ignore, in, "d", 3)}, pod(false, "c", 3), "-/true"},
		{"init containers are matched too", []batchv1.PodFailurePolicyRule{exitRule(ignore, in, "", 3)}, pod(true, "init", 3), "Ignore/false"},
		{"the first matching rule decides", []batchv1.PodFailurePolicyRule{exitRule(count, in, "", 5), exitRule(ignore, in, "", 3), exitRule(failJob, in, "", 3)}, pod(false, "c", 3), "Ignore/false"},
		{"FailIndex", []batchv1.PodFailurePolicyRule{exitRule(failIndex, in, "", 3)}, pod(false, "c", 3), "FailIndex/true"},
		{"onPodConditions matches", []batchv1.PodFailurePolicyRule{cond(ignore, corev1.DisruptionTarget)}, pod(false, "c", 1, corev1.DisruptionTarget), "Ignore/false"},
		{"onPodConditions does not match", []batchv1.PodFailurePolicyRule{cond(ignore, corev1.DisruptionTarget)}, pod(false, "c", 1, corev1.PodReady), "-/true"},
	} {
		v := judge(&batchv1.PodFailurePolicy{Rules: tc.rules}, tc.pod)
		if tc.rules == nil {
			v = judge(nil, tc.pod)
		}
		a := "-"
		if v.action != nil {
			a = string(*v.action)
		}
		if got := fmt.Sprintf("%s/%t", a, v.count); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if (a == "FailJob") != (v.msg != "") {
			t.Errorf("%s: message %q", tc.name, v.msg)
		}
	}
}

func TestSuccessPolicy(t *testing.T) {
	set := func(ixs ...int) indexSet {
		s := indexSet{}
		for _, ix := range ixs {
			s[ix] = true
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		rules     []batchv1.SuccessPolicyRule
		succeeded indexSet
		want      string
	}{
		{"all of succeededIndexes", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr("0-2")}}, set(0, 1, 2), "Matched rules at index 0"},
		{"not all of succeededIndexes", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr("0-2")}}, set(0, 2, 4), ""},
		{"succeededCount of succeededIndexes", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr("0-2"), SucceededCount: ptr[int32](2)}}, set(0, 2, 4), "Matched rules at index 0"},
		{"succeededCount alone", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr("9")}, {SucceededCount: ptr[int32](3)}}, set(0, 2, 4), "Matched rules at index 1"},
		{"succeededCount alone, too few", []batchv1.SuccessPolicyRule{{SucceededCount: ptr[int32](4)}}, set(0, 2, 4), ""},
		{"indexes beyond completions are dropped", []batchv1.SuccessPolicyRule{{SucceededIndexes: ptr("4-20")}}, set(4, 5), "Matched rules at index 0"},
		{"nothing succeeded", []batchv1.SuccessPolicyRule{{SucceededCount: ptr[int32](0)}}, set(), ""},
	} {
		msg, ok := successMet(&batchv1.SuccessPolicy{Rules: tc.rules}, 6, tc.succeeded)
		if ok != (tc.want != "") || msg != tc.want {
			t.Errorf("%s: %q %t, want %q", tc.name, msg, ok, tc.want)
		}
	}
}

// conditions lists the Job's true conditions as type/reason.
func conditions(j *batchv1.Job) string {
	var s []string
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			s = append(s, string(c.Type)+"/"+c.Reason)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

func ptr[T any](v T) *T { return &v }
