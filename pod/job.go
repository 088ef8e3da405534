package pod

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A failed Job pod is replaced after 10 s, doubling per failure, capped at
// 6 minutes (the Job documentation's back-off). Variables for tests.
var (
	jobBackoffInitial = 10 * time.Second
	jobBackoffMax     = 6 * time.Minute
)

// JobController runs one Job on this machine the way the Job controller
// would: it keeps `parallelism` pods running until `completions` succeeded,
// replaces failed pods (restartPolicy Never) after a growing delay until
// backoffLimit is exceeded, counts container restarts against the limit
// under OnFailure, and enforces activeDeadlineSeconds. Pods are supervised
// by Supervisors made with Start.
type JobController struct {
	Job *batchv1.Job
	// Pods are the Job's first pods (from the manifest's expansion).
	Pods []*corev1.Pod
	// NewPod makes one more pod of the Job.
	NewPod func() *corev1.Pod
	// Start runs a pod (a Supervisor here, or a pod shim).
	Start func(p *corev1.Pod) PodHandle
	// OnStatus sees the Job after each change of its status.
	OnStatus func(j *batchv1.Job)
}

// PodHandle is a running pod as a controller sees it: a Supervisor in this
// process, or a pod shim of the daemon.
type PodHandle interface {
	Pod() *corev1.Pod
	Done() <-chan struct{}
	Delete(grace *int64)
}

type jobPodDone struct{ s PodHandle }

// Run drives the Job to completion or failure (or until ctx is cancelled,
// which deletes its pods) and returns the Job with its final status.
func (jc *JobController) Run(ctx context.Context) *batchv1.Job {
	job := jc.Job.DeepCopy()
	spec := job.Spec
	parallelism := int32(1)
	if spec.Parallelism != nil {
		parallelism = *spec.Parallelism
	}
	backoffLimit := int32(6)
	if spec.BackoffLimit != nil {
		backoffLimit = *spec.BackoffLimit
	}
	start := metav1.Now()
	job.Status.StartTime = &start

	done := make(chan jobPodDone, 16)
	active := map[PodHandle]bool{}
	launch := func(p *corev1.Pod) {
		s := jc.Start(p)
		active[s] = true
		go func() {
			<-s.Done()
			done <- jobPodDone{s}
		}()
	}
	publish := func() {
		job.Status.Active = int32(len(active))
		if jc.OnStatus != nil {
			jc.OnStatus(job.DeepCopy())
		}
	}
	finish := func(typ batchv1.JobConditionType, reason, msg string) {
		now := metav1.Now()
		if typ == batchv1.JobComplete {
			job.Status.CompletionTime = &now
			job.Status.Conditions = append(job.Status.Conditions,
				batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now})
		} else {
			job.Status.Conditions = append(job.Status.Conditions,
				batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: now})
		}
		// Remaining pods are deleted before the terminal condition is set.
		for s := range active {
			s.Delete(nil)
		}
		for len(active) > 0 {
			d := <-done
			delete(active, d.s)
			jc.count(job, d.s.Pod())
		}
		job.Status.Conditions = append(job.Status.Conditions,
			batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: now, LastTransitionTime: metav1.Now()})
		publish()
	}

	if spec.Suspend != nil && *spec.Suspend {
		publish()
		<-ctx.Done()
		return job
	}
	initial := jc.Pods
	for len(initial) < int(parallelism) && jc.wanted(job, parallelism, len(initial)) > 0 {
		initial = append(initial, jc.NewPod())
	}
	for _, p := range initial {
		if int32(len(active)) < parallelism {
			launch(p)
		}
	}
	publish()

	var deadline <-chan time.Time
	if spec.ActiveDeadlineSeconds != nil {
		t := time.NewTimer(time.Duration(*spec.ActiveDeadlineSeconds) * time.Second)
		defer t.Stop()
		deadline = t.C
	}
	var retry <-chan time.Time
	var lastFailure time.Time
	tick := time.NewTicker(time.Second) // restart counts under OnFailure
	defer tick.Stop()
	for {
		select {
		case d := <-done:
			delete(active, d.s)
			if !jc.count(job, d.s.Pod()) {
				lastFailure = time.Now()
			}
		case <-retry:
			retry = nil
		case <-tick.C:
		case <-deadline:
			finish(batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline")
			return job
		case <-ctx.Done():
			for s := range active {
				s.Delete(nil)
			}
			for len(active) > 0 {
				d := <-done
				delete(active, d.s)
				jc.count(job, d.s.Pod())
			}
			publish()
			return job
		}
		if job.Status.Failed > backoffLimit || jc.restartsExceed(active, backoffLimit) {
			finish(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit")
			return job
		}
		if jc.complete(job, len(active)) {
			finish(batchv1.JobComplete, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods")
			return job
		}
		if retry == nil {
			if n := jc.wanted(job, parallelism, len(active)); n > 0 {
				// After a failure, new pods wait out the Job's back-off.
				if wait := time.Until(lastFailure.Add(jc.backoff(job))); job.Status.Failed > 0 && wait > 0 {
					retry = time.After(wait)
				} else {
					for range n {
						launch(jc.NewPod())
					}
				}
			}
		}
		publish()
	}
}

// count adds a finished pod to the Job's tallies and says whether it succeeded.
func (jc *JobController) count(job *batchv1.Job, p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodSucceeded {
		job.Status.Succeeded++
		return true
	}
	job.Status.Failed++ // failed, or deleted before finishing
	return false
}

// wanted is how many more pods should run now.
func (jc *JobController) wanted(job *batchv1.Job, parallelism int32, active int) int {
	if jc.Job.Spec.Completions == nil {
		// Work queue: once one pod succeeded, no new ones.
		if job.Status.Succeeded > 0 {
			return 0
		}
		return int(parallelism) - active
	}
	remaining := *jc.Job.Spec.Completions - job.Status.Succeeded - int32(active)
	return int(max(0, min(parallelism-int32(active), remaining)))
}

func (jc *JobController) complete(job *batchv1.Job, active int) bool {
	if jc.Job.Spec.Completions == nil {
		return job.Status.Succeeded > 0 && active == 0
	}
	return job.Status.Succeeded >= *jc.Job.Spec.Completions
}

// backoff is the delay before replacing a failed pod.
func (jc *JobController) backoff(job *batchv1.Job) time.Duration {
	if job.Status.Failed == 0 {
		return 0
	}
	d := jobBackoffInitial
	for i := int32(1); i < job.Status.Failed && d < jobBackoffMax; i++ {
		d *= 2
	}
	return min(d, jobBackoffMax)
}

// restartsExceed is the Job controller's pastBackoffLimitOnFailure.
func (jc *JobController) restartsExceed(active map[PodHandle]bool, limit int32) bool {
	if jc.Job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for s := range active {
		st := s.Pod().Status
		for _, cs := range append(append([]corev1.ContainerStatus{}, st.InitContainerStatuses...), st.ContainerStatuses...) {
			n += cs.RestartCount
		}
	}
	if limit == 0 {
		return n > 0
	}
	return n >= limit
}
