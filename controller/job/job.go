// Package job runs one batch/v1 Job on this machine the way the Job
// controller of kube-controller-manager would: it keeps `parallelism` pods
// running until `completions` succeeded, replaces failed pods (restartPolicy
// Never) after a growing delay until backoffLimit is exceeded, counts
// container restarts against the limit under OnFailure, and enforces
// activeDeadlineSeconds. The pods themselves run elsewhere (a
// pod.Supervisor in this process, or a pod shim of the daemon): the
// controller sees them through PodHandle only.
package job

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/internal/podspec"
)

// A failed Job pod is replaced after 10 s, doubling per failure, capped at
// 6 minutes (the Job documentation's back-off). Variables for tests.
var (
	backoffInitial = 10 * time.Second
	backoffMax     = 6 * time.Minute
)

// Controller runs one Job.
type Controller struct {
	Job *batchv1.Job
	// Pods are the Job's first pods (from the manifest's expansion).
	Pods []*corev1.Pod
	// NewPod makes one more pod of the Job.
	NewPod func() *corev1.Pod
	// Start runs a pod.
	Start func(p *corev1.Pod) PodHandle
	// OnStatus sees the Job after each change of its status.
	OnStatus func(j *batchv1.Job)
}

// PodHandle is a running pod as the controller sees it.
type PodHandle interface {
	Pod() *corev1.Pod
	Done() <-chan struct{}
	Delete(grace *int64)
}

// run is one Run's state; only Run's goroutine touches it.
type run struct {
	*Controller
	job          *batchv1.Job
	parallelism  int32
	backoffLimit int32
	active       map[PodHandle]bool
	done         chan PodHandle
	lastFailure  time.Time
}

// Run drives the Job to completion or failure (or until ctx is cancelled,
// which deletes its pods) and returns the Job with its final status.
func (c *Controller) Run(ctx context.Context) *batchv1.Job {
	r := &run{Controller: c, job: c.Job.DeepCopy(), parallelism: 1, backoffLimit: 6,
		active: map[PodHandle]bool{}, done: make(chan PodHandle, 16)}
	spec := r.job.Spec
	if spec.Parallelism != nil {
		r.parallelism = *spec.Parallelism
	}
	if spec.BackoffLimit != nil {
		r.backoffLimit = *spec.BackoffLimit
	}
	start := metav1.Now()
	r.job.Status.StartTime = &start

	if spec.Suspend != nil && *spec.Suspend {
		r.publish()
		<-ctx.Done()
		return r.job
	}
	initial := c.Pods
	for len(initial) < int(r.parallelism) && r.wanted(len(initial)) > 0 {
		initial = append(initial, c.NewPod())
	}
	for _, p := range initial {
		if int32(len(r.active)) < r.parallelism {
			r.launch(p)
		}
	}
	r.publish()
	r.loop(ctx)
	return r.job
}

// loop reacts to finished pods, back-off ends, the deadline and ctx until
// the Job ends.
func (r *run) loop(ctx context.Context) {
	var deadline <-chan time.Time
	if ads := r.job.Spec.ActiveDeadlineSeconds; ads != nil {
		t := time.NewTimer(time.Duration(*ads) * time.Second)
		defer t.Stop()
		deadline = t.C
	}
	var retry <-chan time.Time
	tick := time.NewTicker(time.Second) // restart counts under OnFailure
	defer tick.Stop()
	for {
		select {
		case h := <-r.done:
			delete(r.active, h)
			if !r.count(h.Pod()) {
				r.lastFailure = time.Now()
			}
		case <-retry:
			retry = nil
		case <-tick.C:
		case <-deadline:
			r.finish(batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline")
			return
		case <-ctx.Done():
			r.drain()
			r.publish()
			return
		}
		if r.job.Status.Failed > r.backoffLimit || r.restartsExceed() {
			r.finish(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit")
			return
		}
		if r.complete() {
			r.finish(batchv1.JobComplete, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods")
			return
		}
		if retry == nil {
			if n := r.wanted(len(r.active)); n > 0 {
				// After a failure, new pods wait out the Job's back-off.
				if wait := time.Until(r.lastFailure.Add(r.backoff())); r.job.Status.Failed > 0 && wait > 0 {
					retry = time.After(wait)
				} else {
					for range n {
						r.launch(r.NewPod())
					}
				}
			}
		}
		r.publish()
	}
}

func (r *run) launch(p *corev1.Pod) {
	h := r.Start(p)
	r.active[h] = true
	go func() {
		<-h.Done()
		r.done <- h
	}()
}

func (r *run) publish() {
	r.job.Status.Active = int32(len(r.active))
	if r.OnStatus != nil {
		r.OnStatus(r.job.DeepCopy())
	}
}

// drain deletes the active pods and counts them as they finish.
func (r *run) drain() {
	for h := range r.active {
		h.Delete(nil)
	}
	for len(r.active) > 0 {
		h := <-r.done
		delete(r.active, h)
		r.count(h.Pod())
	}
}

// finish ends the Job: the interim condition (SuccessCriteriaMet or
// FailureTarget) first, then the remaining pods are deleted, then the
// terminal condition is set.
func (r *run) finish(typ batchv1.JobConditionType, reason, msg string) {
	now := metav1.Now()
	interim := batchv1.JobFailureTarget
	if typ == batchv1.JobComplete {
		r.job.Status.CompletionTime = &now
		interim = batchv1.JobSuccessCriteriaMet
	}
	r.job.Status.Conditions = append(r.job.Status.Conditions,
		batchv1.JobCondition{Type: interim, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now})
	r.drain()
	r.job.Status.Conditions = append(r.job.Status.Conditions,
		batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: metav1.Now()})
	r.publish()
}

// count adds a finished pod to the Job's tallies and says whether it succeeded.
func (r *run) count(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded {
		r.job.Status.Succeeded++
		return true
	}
	r.job.Status.Failed++ // failed, or deleted before finishing
	return false
}

// wanted is how many more pods should run now, with active running.
func (r *run) wanted(running int) int {
	active := int32(running)
	if r.Job.Spec.Completions == nil {
		// Work queue: once one pod succeeded, no new ones.
		if r.job.Status.Succeeded > 0 {
			return 0
		}
		return int(r.parallelism - active)
	}
	remaining := *r.Job.Spec.Completions - r.job.Status.Succeeded - active
	return int(max(0, min(r.parallelism-active, remaining)))
}

func (r *run) complete() bool {
	if r.Job.Spec.Completions == nil {
		return r.job.Status.Succeeded > 0 && len(r.active) == 0
	}
	return r.job.Status.Succeeded >= *r.Job.Spec.Completions
}

// backoff is the delay before replacing a failed pod.
func (r *run) backoff() time.Duration {
	if r.job.Status.Failed == 0 {
		return 0
	}
	d := backoffInitial
	for i := int32(1); i < r.job.Status.Failed && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// restartsExceed is the Job controller's pastBackoffLimitOnFailure.
func (r *run) restartsExceed() bool {
	if r.Job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for h := range r.active {
		st := h.Pod().Status
		for _, cs := range podspec.Statuses(&st) {
			n += cs.RestartCount
		}
	}
	if r.backoffLimit == 0 {
		return n > 0
	}
	return n >= r.backoffLimit
}
