package pod

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func runJob(t *testing.T, h *fakeHost, job *batchv1.Job) *batchv1.Job {
	t.Helper()
	n := 0
	jc := &JobController{
		Job: job,
		NewPod: func() *corev1.Pod {
			n++
			p := &corev1.Pod{Spec: *job.Spec.Template.Spec.DeepCopy()}
			p.Name, p.Namespace, p.UID = fmt.Sprintf("%s-%d", job.Name, n), "default", types.UID(fmt.Sprint("uid-", n))
			return p
		},
		Start: func(p *corev1.Pod) PodHandle {
			s := New(p, Options{Host: h})
			go func() { _ = s.Run(context.Background()) }()
			return s
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return jc.Run(ctx)
}

func condition(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return string(c.Type) + "/" + c.Reason
		}
	}
	return "none"
}

func jobOf(rp corev1.RestartPolicy, completions, parallelism, backoff int32) *batchv1.Job {
	tpl := testPod(rp, "| a1")
	j := &batchv1.Job{}
	j.Name = "j"
	j.Spec.Template.Spec = tpl.Spec
	j.Spec.Completions, j.Spec.Parallelism, j.Spec.BackoffLimit = &completions, &parallelism, &backoff
	return j
}

func TestJobCompletions(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"a1": quick(0)})
	j := runJob(t, h, jobOf(corev1.RestartPolicyNever, 3, 2, 6))
	if got := condition(j); got != "Complete/CompletionsReached" {
		t.Errorf("condition %s", got)
	}
	if j.Status.Succeeded != 3 || j.Status.Failed != 0 {
		t.Errorf("succeeded %d failed %d, want 3 and 0", j.Status.Succeeded, j.Status.Failed)
	}
	if n := len(h.events("start ")); n != 3 {
		t.Errorf("%d pods ran, want 3", n)
	}
}

func TestJobBackoffLimit(t *testing.T) {
	defer func(d time.Duration) { jobBackoffInitial = d }(jobBackoffInitial)
	jobBackoffInitial = 50 * time.Millisecond
	h := newFakeHost(map[string]behaviour{"a1": quick(1)})
	j := runJob(t, h, jobOf(corev1.RestartPolicyNever, 1, 1, 2))
	if got := condition(j); got != "Failed/BackoffLimitExceeded" {
		t.Errorf("condition %s", got)
	}
	// backoffLimit 2: the third failure exceeds it.
	if j.Status.Failed != 3 || j.Status.Succeeded != 0 {
		t.Errorf("failed %d succeeded %d, want 3 and 0", j.Status.Failed, j.Status.Succeeded)
	}
}
