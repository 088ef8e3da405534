// Package job runs one batch/v1 Job on this machine the way the Job
// controller of kube-controller-manager (v1.34) would: it keeps
// `parallelism` pods running until the Job's success criteria are met,
// gives an Indexed Job's pods their completion indexes, replaces failed
// pods after a growing delay (per index under backoffLimitPerIndex), applies
// the podFailurePolicy and successPolicy, counts container restarts against
// backoffLimit under OnFailure, enforces activeDeadlineSeconds and reports
// the 1.34 status (conditions with their interim SuccessCriteriaMet and
// FailureTarget, ready, terminating, completedIndexes, failedIndexes). The
// pods themselves run elsewhere (a pod.Supervisor in this process, or a pod
// shim of the daemon): the controller sees them through PodHandle only.
// docs/controllers.md lists where it differs from kube-controller-manager.
package job

import (
	"context"
	"math"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A failed Job pod is replaced after 10 s, doubling per failure since the
// last success, capped at 10 minutes: the controller's
// DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff (the Job
// documentation says six minutes; the code says ten). Variables for tests.
var (
	backoffInitial = 10 * time.Second
	backoffMax     = 10 * time.Minute
	now            = time.Now
)

// Controller runs one Job.
type Controller struct {
	Job *batchv1.Job
	// Pods are the Job's first pods (from the manifest's expansion, or
	// those a restarted daemon found).
	Pods []*corev1.Pod
	// NewPod makes one more pod of the Job; index is its completion index
	// in an Indexed Job, -1 otherwise.
	NewPod func(index int) *corev1.Pod
	// Start runs a pod.
	Start func(p *corev1.Pod) PodHandle
	// OnStatus sees the Job after each change of its status.
	OnStatus func(j *batchv1.Job)
	// Resume, when it is closed, un-suspends a suspended Job (the daemon's
	// apply of spec.suspend: false). Nil: a suspended Job stays suspended.
	Resume <-chan struct{}
}

// PodHandle is a running pod as the controller sees it.
type PodHandle interface {
	Pod() *corev1.Pod
	Done() <-chan struct{}
	Delete(grace *int64)
}

// indexFailure is what the controller remembers of an index's last failed
// pod under backoffLimitPerIndex: the counts its replacement carries in its
// annotations, and when it failed.
type indexFailure struct {
	failures, ignored int32
	at                time.Time
}

// run is one Run's state; only Run's goroutine touches it.
type run struct {
	*Controller
	job          *batchv1.Job
	parallelism  int32
	backoffLimit int32
	indexed      bool
	completions  int // Indexed only
	perIndex     bool
	active       map[PodHandle]bool
	deleted      map[PodHandle]bool // deleted by the controller, not finished yet
	settled      map[PodHandle]bool // counted already (settle)
	done         chan PodHandle

	succeededIx, failedIx indexSet
	lastFailed            map[int]indexFailure // per index, until it is replaced

	failuresSinceSuccess int32 // the global back-off
	lastFailure          time.Time

	failJob  string                // a FailJob rule's message
	interim  *batchv1.JobCondition // SuccessCriteriaMet or FailureTarget, once met
	retry    *time.Timer
	finished bool
}

// Run drives the Job to completion or failure (or until ctx is cancelled,
// which deletes its pods) and returns the Job with its final status.
func (c *Controller) Run(ctx context.Context) *batchv1.Job {
	r := c.newRun()
	defer r.retry.Stop()
	if s := r.job.Spec.Suspend; s != nil && *s {
		r.setCondition(batchv1.JobSuspended, corev1.ConditionTrue, "JobSuspended", "Job suspended")
		r.publish()
		select {
		case <-ctx.Done():
			return r.job
		case <-c.Resume:
		}
		r.job.Spec.Suspend = ptrTo(false)
		r.setCondition(batchv1.JobSuspended, corev1.ConditionFalse, "JobResumed", "Job resumed")
		r.job.Status.StartTime = nil // a resumed Job's deadline counts from now
	}
	if r.job.Status.StartTime == nil {
		t := metav1.NewTime(now())
		r.job.Status.StartTime = &t
	}
	for _, p := range c.Pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || r.running() < r.parallelism {
			r.launch(p)
		}
	}
	r.loop(ctx)
	return r.job
}

func (c *Controller) newRun() *run {
	r := &run{Controller: c, job: c.Job.DeepCopy(), parallelism: 1, backoffLimit: 6,
		active: map[PodHandle]bool{}, deleted: map[PodHandle]bool{}, settled: map[PodHandle]bool{}, done: make(chan PodHandle, 16),
		lastFailed: map[int]indexFailure{}, retry: time.NewTimer(time.Hour)}
	r.retry.Stop()
	spec := &r.job.Spec
	if spec.Parallelism != nil {
		r.parallelism = *spec.Parallelism
	}
	if spec.BackoffLimit != nil {
		r.backoffLimit = *spec.BackoffLimit
	} else if spec.BackoffLimitPerIndex != nil {
		r.backoffLimit = math.MaxInt32
	}
	r.indexed = spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion && spec.Completions != nil
	if r.indexed {
		r.completions = int(*spec.Completions)
		r.perIndex = spec.BackoffLimitPerIndex != nil
		// A resumed controller goes on from the Job's status.
		r.succeededIx = parseIndexes(r.job.Status.CompletedIndexes, r.completions)
		r.failedIx = indexSet{}
		if fi := r.job.Status.FailedIndexes; fi != nil {
			r.failedIx = parseIndexes(*fi, r.completions)
		}
	}
	return r
}

// loop syncs after every event (a pod finished, a back-off or the deadline
// ended, a tick for restart counts and readiness) until the Job ends.
func (r *run) loop(ctx context.Context) {
	var deadline <-chan time.Time
	if ads := r.job.Spec.ActiveDeadlineSeconds; ads != nil {
		t := time.NewTimer(time.Until(r.job.Status.StartTime.Add(time.Duration(*ads) * time.Second)))
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r.sync()
		if r.finished {
			return
		}
		select {
		case h := <-r.done:
			r.observe(h)
		case <-r.retry.C:
		case <-tick.C:
		case <-deadline:
		case <-ctx.Done():
			r.deleteActive()
			for len(r.active) > 0 {
				r.observe(<-r.done)
			}
			r.publish()
			return
		}
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

// running is the number of active pods not being deleted.
func (r *run) running() int32 { return int32(len(r.active) - len(r.deleted)) }

// observe counts a finished pod, the way the controller's
// trackJobStatusAndRemoveFinalizers does.
func (r *run) observe(h PodHandle) {
	settled := r.settled[h]
	delete(r.active, h)
	delete(r.deleted, h)
	delete(r.settled, h)
	if settled {
		return // counted when the Job's fate was decided
	}
	p := h.Pod()
	ix := -1
	if r.indexed {
		if ix = completionIndex(p); ix >= r.completions {
			ix = -1
		}
	}
	if p.Status.Phase == corev1.PodSucceeded {
		r.failuresSinceSuccess = 0
		switch {
		case !r.indexed:
			r.job.Status.Succeeded++
		case ix >= 0 && !r.succeededIx[ix]:
			r.succeededIx[ix] = true
			r.job.Status.Succeeded = int32(len(r.succeededIx))
		}
		delete(r.lastFailed, ix)
		return
	}
	// Failed, or deleted before it finished.
	if r.indexed && ix < 0 {
		return // not one of the Job's indexes: not counted
	}
	v := judge(r.job.Spec.PodFailurePolicy, p)
	if v.count {
		r.job.Status.Failed++
	}
	r.failuresSinceSuccess++
	r.lastFailure = now()
	if r.interim != nil {
		return // the Job's fate is known: its deleted pods decide nothing
	}
	if v.msg != "" && r.failJob == "" {
		r.failJob = v.msg
	}
	if !r.perIndex {
		return
	}
	f := indexFailure{failures: int32(annotationInt(p, batchv1.JobIndexFailureCountAnnotation, 0)),
		ignored: int32(annotationInt(p, batchv1.JobIndexIgnoredFailureCountAnnotation, 0)), at: now()}
	switch {
	case v.action != nil && *v.action == batchv1.PodFailurePolicyActionFailIndex,
		v.count && f.failures >= *r.job.Spec.BackoffLimitPerIndex:
		if !r.succeededIx[ix] {
			r.failedIx[ix] = true
		}
		delete(r.lastFailed, ix)
	case v.count:
		f.failures++
		r.lastFailed[ix] = f
	default:
		f.ignored++
		r.lastFailed[ix] = f
	}
}

// sync is one pass of the controller's syncJob: the interim condition once
// the Job's fate is known, then deleting its pods and the terminal
// condition once they are gone; otherwise pods to create.
func (r *run) sync() {
	if r.interim == nil {
		r.interim = r.check()
		if r.interim != nil {
			r.job.Status.Conditions = append(r.job.Status.Conditions, *r.interim)
			r.settle()
			r.deleteActive()
		}
	}
	if r.interim != nil {
		if len(r.active) == 0 {
			r.terminal()
		}
		r.publish()
		return
	}
	r.manage()
	r.publish()
}

// check decides whether the Job has failed or succeeded, in syncJob's
// order: a FailJob rule, backoffLimit, activeDeadlineSeconds, the failed
// indexes, the successPolicy, completions.
func (r *run) check() *batchv1.JobCondition {
	s := &r.job.Spec
	st := &r.job.Status
	fail := func(reason, msg string) *batchv1.JobCondition {
		return condition(batchv1.JobFailureTarget, reason, msg)
	}
	switch {
	case r.failJob != "":
		return fail(batchv1.JobReasonPodFailurePolicy, r.failJob)
	case st.Failed > r.backoffLimit || r.restartsExceed():
		return fail(batchv1.JobReasonBackoffLimitExceeded, "Job has reached the specified backoff limit")
	case s.ActiveDeadlineSeconds != nil && now().Sub(st.StartTime.Time) >= time.Duration(*s.ActiveDeadlineSeconds)*time.Second:
		return fail(batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline")
	}
	if r.indexed {
		if r.perIndex {
			if s.MaxFailedIndexes != nil && len(r.failedIx) > int(*s.MaxFailedIndexes) {
				return fail(batchv1.JobReasonMaxFailedIndexesExceeded, "Job has exceeded the specified maximal number of failed indexes")
			}
			if len(r.failedIx) > 0 && len(r.failedIx)+len(r.succeededIx) >= r.completions {
				return fail(batchv1.JobReasonFailedIndexes, "Job has failed indexes")
			}
		}
		if msg, ok := successMet(s.SuccessPolicy, r.completions, r.succeededIx); ok {
			return condition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonSuccessPolicy, msg)
		}
	}
	complete := st.Succeeded > 0 && len(r.active) == 0 // work queue: one success, once the others are done
	if s.Completions != nil {
		complete = st.Succeeded >= *s.Completions && len(r.active) == 0
	}
	if complete {
		return condition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached, "Reached expected number of succeeded pods")
	}
	return nil
}

// settle accounts for the pods still running when the Job's fate is
// decided, as the controller does in that same sync: after a failure each
// counts as failed (unless a podFailurePolicy rule ignores it), after
// success it is not counted at all. How they end later changes nothing. A
// pod that had already succeeded is left to observe.
func (r *run) settle() {
	failure := r.interim.Type == batchv1.JobFailureTarget
	for h := range r.active {
		p := h.Pod()
		if p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		r.settled[h] = true
		if failure && judge(r.job.Spec.PodFailurePolicy, p).count {
			r.job.Status.Failed++
		}
	}
}

// terminal adds Complete or Failed with the interim condition's reason and
// message, once every pod has terminated.
func (r *run) terminal() {
	typ := batchv1.JobFailed
	if r.interim.Type == batchv1.JobSuccessCriteriaMet {
		typ = batchv1.JobComplete
	}
	c := condition(typ, r.interim.Reason, r.interim.Message)
	r.job.Status.Conditions = append(r.job.Status.Conditions, *c)
	if typ == batchv1.JobComplete {
		r.job.Status.CompletionTime = &c.LastTransitionTime
	}
	r.finished = true
}

func condition(typ batchv1.JobConditionType, reason, msg string) *batchv1.JobCondition {
	t := metav1.NewTime(now())
	return &batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastProbeTime: t, LastTransitionTime: t}
}

// setCondition is the controller's ensureJobConditionStatus.
func (r *run) setCondition(typ batchv1.JobConditionType, status corev1.ConditionStatus, reason, msg string) {
	t := metav1.NewTime(now())
	for i := range r.job.Status.Conditions {
		c := &r.job.Status.Conditions[i]
		if c.Type == typ {
			if c.Status != status || c.Reason != reason || c.Message != msg {
				*c = batchv1.JobCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastProbeTime: t, LastTransitionTime: t}
			}
			return
		}
	}
	if status == corev1.ConditionTrue {
		r.job.Status.Conditions = append(r.job.Status.Conditions,
			batchv1.JobCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastProbeTime: t, LastTransitionTime: t})
	}
}

// manage is the controller's manageJob for a Job that is neither finished
// nor suspended: it creates the missing pods unless their back-off holds.
// Pods being deleted still count as active until they have terminated
// (podReplacementPolicy Failed, whatever the policy says).
func (r *run) manage() {
	var want int32
	st := &r.job.Status
	switch {
	case r.indexed:
		want = min(r.parallelism, int32(r.completions-len(r.succeededIx)-len(r.failedIx)))
	case r.job.Spec.Completions == nil:
		want = r.parallelism
		if st.Succeeded > 0 {
			want = 0 // work queue: once one pod succeeded, no new ones
		}
	default:
		want = min(r.parallelism, *r.job.Spec.Completions-st.Succeeded)
	}
	n := int(want) - len(r.active)
	if n <= 0 {
		return
	}
	if !r.perIndex {
		if wait := remaining(r.failuresSinceSuccess, r.lastFailure); wait > 0 {
			r.retry.Reset(wait)
			return
		}
	}
	if !r.indexed {
		for range n {
			r.launch(r.NewPod(-1))
		}
		return
	}
	var soonest time.Duration
	created := 0
	for _, ix := range r.pendingIndexes(n) {
		f, failedBefore := r.lastFailed[ix]
		if r.perIndex && failedBefore {
			if wait := remaining(f.failures+f.ignored, f.at); wait > 0 {
				if soonest == 0 || wait < soonest {
					soonest = wait
				}
				continue
			}
		}
		p := r.NewPod(ix)
		if r.perIndex {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[batchv1.JobIndexFailureCountAnnotation] = strconv.Itoa(int(f.failures))
			if f.ignored > 0 {
				p.Annotations[batchv1.JobIndexIgnoredFailureCountAnnotation] = strconv.Itoa(int(f.ignored))
			}
		}
		delete(r.lastFailed, ix)
		r.launch(p)
		created++
	}
	if created == 0 && soonest > 0 {
		r.retry.Reset(soonest)
	}
}

// pendingIndexes are the n lowest indexes neither succeeded, failed nor
// held by an active pod.
func (r *run) pendingIndexes(n int) []int {
	held := indexSet{}
	for h := range r.active {
		if ix := completionIndex(h.Pod()); ix >= 0 {
			held[ix] = true
		}
	}
	var ixs []int
	for ix := 0; ix < r.completions && len(ixs) < n; ix++ {
		if !held[ix] && !r.succeededIx[ix] && !r.failedIx[ix] {
			ixs = append(ixs, ix)
		}
	}
	return ixs
}

// remaining is how long a replacement still waits after failures
// consecutive failures, the last at last.
func remaining(failures int32, last time.Time) time.Duration {
	if failures == 0 {
		return 0
	}
	return max(0, backoff(failures)-now().Sub(last))
}

// backoff is the delay before replacing a pod after that many
// consecutive failures.
func backoff(failures int32) time.Duration {
	if failures <= 0 {
		return 0
	}
	d := backoffInitial
	for i := int32(1); i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// deleteActive deletes the active pods not yet deleted.
func (r *run) deleteActive() {
	for h := range r.active {
		if !r.deleted[h] {
			r.deleted[h] = true
			h.Delete(nil)
		}
	}
}

// publish fills the counts of active, ready and terminating pods and hands
// the status out.
func (r *run) publish() {
	st := &r.job.Status
	var active, ready, terminating int32
	for h := range r.active {
		p := h.Pod()
		if r.deleted[h] || p.DeletionTimestamp != nil {
			terminating++
			continue
		}
		active++
		if podReady(p) {
			ready++
		}
	}
	st.Active, st.Ready, st.Terminating = active, &ready, &terminating
	if r.indexed {
		st.CompletedIndexes = r.succeededIx.String()
		if r.perIndex {
			st.FailedIndexes = ptrTo(r.failedIx.String())
		}
	}
	if r.OnStatus != nil {
		r.OnStatus(r.job.DeepCopy())
	}
}

// restartsExceed is the Job controller's pastBackoffLimitOnFailure.
func (r *run) restartsExceed() bool {
	if r.job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		return false
	}
	var n int32
	for h := range r.active {
		n += restarts(h.Pod())
	}
	if r.backoffLimit == 0 {
		return n > 0
	}
	return n >= r.backoffLimit
}

func ptrTo[T any](v T) *T { return &v }
