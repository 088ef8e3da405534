package integration

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

func indexedJob(name string, completions, parallelism int32, app corev1.Container, s *scenario) *batchv1.Job {
	indexed := batchv1.IndexedCompletion
	backoff := int32(6)
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{
			CompletionMode: &indexed, Completions: &completions, Parallelism: &parallelism, BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Subdomain:     "workers",
				Containers:    []corev1.Container{app},
				Volumes:       s.pod.Spec.Volumes,
			}},
		},
	}
}

// TestIndexedJob: an Indexed Job of 3 completions and parallelism 2 runs
// the indexes 0, 1 and 2 once each, never more than 2 at a time, each pod
// with its JOB_COMPLETION_INDEX, its hostname <job>-<index> and its
// subdomain's name in /etc/hosts.
func TestIndexedJob(t *testing.T) {
	s := newScenario(t, "unused", corev1.RestartPolicyNever)
	app := container("app", `log "start $JOB_COMPLETION_INDEX $(hostname) $(grep -c "$(hostname).workers.default.svc" /etc/hosts)"; sleep 0.5; log "end $JOB_COMPLETION_INDEX"`)
	r := podrun(t, s.dir, []any{indexedJob("ix", 3, 2, app, s)})
	if r.code != 0 || !strings.Contains(r.stderr, "job.batch/ix: Complete (CompletionsReached): succeeded 3, failed 0, completed indexes 0-2") {
		t.Fatalf("exit %d, want the Job complete:\n%s", r.code, r.stderr)
	}
	var starts []string
	running, most := 0, 0
	for _, e := range r.ev.lines {
		switch {
		case strings.HasPrefix(e.what, "start "):
			starts = append(starts, strings.TrimPrefix(e.what, "start "))
			running++
			most = max(most, running)
		case strings.HasPrefix(e.what, "end "):
			running--
		}
	}
	sort.Strings(starts)
	if got := strings.Join(starts, "|"); got != "0 ix-0 1|1 ix-1 1|2 ix-2 1" {
		t.Errorf("pods saw (index hostname hosts-entries) %s, want 0 ix-0 1|1 ix-1 1|2 ix-2 1", got)
	}
	if most > 2 {
		t.Errorf("%d pods ran at once, want at most 2", most)
	}
	if len(r.pods) != 3 {
		t.Fatalf("%d pods, want 3", len(r.pods))
	}
	for _, p := range r.pods {
		ix := p.Annotations[batchv1.JobCompletionIndexAnnotation]
		if !regexp.MustCompile(`^ix-`+ix+`-[a-z0-9]{5}$`).MatchString(p.Name) || p.Labels[batchv1.JobCompletionIndexAnnotation] != ix || p.Status.Phase != corev1.PodSucceeded {
			t.Errorf("pod %s: index %q, labels %v, phase %s", p.Name, ix, p.Labels, p.Status.Phase)
		}
	}
}

// TestJobPodFailurePolicyFailJob: a FailJob rule on exit code 42 fails the
// Job as soon as one pod exits 42 (reason PodFailurePolicy), deletes the
// other pod, which is counted as failed (when the Job failed, not when it
// ended: it exits 0 on TERM), and starts no replacement.
func TestJobPodFailurePolicyFailJob(t *testing.T) {
	s := newScenario(t, "unused", corev1.RestartPolicyNever)
	app := container("app", `if [ "$JOB_COMPLETION_INDEX" = 0 ]; then sleep 0.3; log exit42; exit 42; fi; `+serve)
	j := indexedJob("pfp", 2, 2, app, s)
	j.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
		Action:      batchv1.PodFailurePolicyActionFailJob,
		OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}},
	}}}
	r := podrun(t, s.dir, []any{j})
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (a Job failed)", r.code)
	}
	if !regexp.MustCompile(`job.batch/pfp: Failed \(PodFailurePolicy\): succeeded 0, failed 2: Container app for pod default/pfp-0-[a-z0-9]{5} failed with exit code 42 matching FailJob rule at index 0`).MatchString(r.stderr) {
		t.Errorf("the Job did not fail by its podFailurePolicy:\n%s", r.stderr)
	}
	if r.took.Seconds() > 15 {
		t.Errorf("took %s: the Job did not fail at once", r.took)
	}
	if len(r.pods) != 2 {
		t.Errorf("%d pods, want 2 (no replacement)", len(r.pods))
	}
	if len(r.ev.all("app", "Exiting")) != 1 {
		t.Errorf("the other pod was not stopped: %v", r.ev)
	}
}

// TestDaemonJobSuspendResumeTTL: a suspended Job starts no pod and reports
// Suspended; applying it with suspend: false runs it; once complete, the
// daemon deletes it and its pods after ttlSecondsAfterFinished.
func TestDaemonJobSuspendResumeTTL(t *testing.T) {
	d := startDaemon(t)
	s := newScenario(t, "unused", corev1.RestartPolicyNever)
	j := indexedJob("later", 2, 2, container("app", `log "ran $JOB_COMPLETION_INDEX"`), s)
	j.Spec.Suspend, j.Spec.TTLSecondsAfterFinished = ptrTo(true), ptrTo[int32](2)
	d.apply(j)
	get := func() (*batchv1.Job, error) {
		var got batchv1.Job
		err := d.cl.Get(context.Background(), api.Jobs, "default", "later", &got)
		return &got, err
	}
	time.Sleep(time.Second)
	got, err := get()
	if err != nil || len(got.Status.Conditions) != 1 || got.Status.Conditions[0].Type != batchv1.JobSuspended || got.Status.Conditions[0].Reason != "JobSuspended" || got.Status.StartTime != nil {
		t.Fatalf("suspended Job: %+v %v", got.Status, err)
	}
	var pods corev1.PodList
	if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "job-name=later"}, &pods); err != nil || len(pods.Items) != 0 {
		t.Fatalf("a suspended Job has %d pods (%v)", len(pods.Items), err)
	}
	j.Spec.Suspend = ptrTo(false)
	if out := d.apply(j); !strings.Contains(out, "configured") {
		t.Errorf("apply of suspend: false: %s", out)
	}
	var finished time.Time
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		got, err = get()
		if err == nil && got.Status.CompletionTime != nil {
			finished = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the resumed Job did not complete: %+v %v", got.Status, err)
		}
	}
	if got.Status.CompletedIndexes != "0,1" || got.Status.Succeeded != 2 {
		t.Errorf("status %+v", got.Status)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := get(); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Job outlived its ttlSecondsAfterFinished")
		}
	}
	if gone := time.Since(finished); gone < time.Second {
		t.Errorf("deleted %s after it finished, before its 2 s TTL", gone)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := d.cl.List(context.Background(), api.Pods, "default", client.Selector{Label: "job-name=later"}, &pods); err == nil && len(pods.Items) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired Job's pods remain: %d", len(pods.Items))
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
