package integration

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
