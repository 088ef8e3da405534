package kubectl

import (
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// DeploymentColumns are `kubectl get deployments`' columns.
var DeploymentColumns = []string{"NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"}

// DeploymentRow is printDeployment.
func DeploymentRow(d *appsv1.Deployment, now time.Time) []string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return []string{d.Name, fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, want),
		strconv.Itoa(int(d.Status.UpdatedReplicas)), strconv.Itoa(int(d.Status.AvailableReplicas)),
		Since(d.CreationTimestamp, now)}
}

// ReplicaSetColumns are `kubectl get replicasets`' columns.
var ReplicaSetColumns = []string{"NAME", "DESIRED", "CURRENT", "READY", "AGE"}

// ReplicaSetRow is printReplicaSet.
func ReplicaSetRow(rs *appsv1.ReplicaSet, now time.Time) []string {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	return []string{rs.Name, strconv.Itoa(int(want)), strconv.Itoa(int(rs.Status.Replicas)), strconv.Itoa(int(rs.Status.ReadyReplicas)),
		Since(rs.CreationTimestamp, now)}
}

// JobColumns are `kubectl get jobs`' columns.
var JobColumns = []string{"NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"}

// JobRow is printJob.
func JobRow(j *batchv1.Job, now time.Time) []string {
	var completions string
	switch {
	case j.Spec.Completions != nil:
		completions = fmt.Sprintf("%d/%d", j.Status.Succeeded, *j.Spec.Completions)
	case j.Spec.Parallelism != nil && *j.Spec.Parallelism > 1:
		completions = fmt.Sprintf("%d/1 of %d", j.Status.Succeeded, *j.Spec.Parallelism)
	default:
		completions = fmt.Sprintf("%d/1", j.Status.Succeeded)
	}
	var took string
	switch {
	case j.Status.StartTime == nil:
	case j.Status.CompletionTime == nil:
		took = duration.HumanDuration(now.Sub(j.Status.StartTime.Time))
	default:
		took = duration.HumanDuration(j.Status.CompletionTime.Sub(j.Status.StartTime.Time))
	}
	has := func(t batchv1.JobConditionType) bool {
		for _, c := range j.Status.Conditions {
			if c.Type == t && c.Status == corev1.ConditionTrue {
				return true
			}
		}
		return false
	}
	status := "Running"
	switch {
	case has(batchv1.JobComplete):
		status = "Complete"
	case has(batchv1.JobFailed):
		status = "Failed"
	case j.DeletionTimestamp != nil:
		status = "Terminating"
	case has(batchv1.JobSuspended):
		status = "Suspended"
	case has(batchv1.JobFailureTarget):
		status = "FailureTarget"
	case has(batchv1.JobSuccessCriteriaMet):
		status = "SuccessCriteriaMet"
	}
	return []string{j.Name, status, completions, took, Since(j.CreationTimestamp, now)}
}

// ConfigMapColumns are `kubectl get configmaps`' columns.
var ConfigMapColumns = []string{"NAME", "DATA", "AGE"}

// ConfigMapRow is printConfigMap.
func ConfigMapRow(c *corev1.ConfigMap, now time.Time) []string {
	return []string{c.Name, strconv.Itoa(len(c.Data) + len(c.BinaryData)), Since(c.CreationTimestamp, now)}
}

// SecretColumns are `kubectl get secrets`' columns.
var SecretColumns = []string{"NAME", "TYPE", "DATA", "AGE"}

// SecretRow is printSecret.
func SecretRow(s *corev1.Secret, now time.Time) []string {
	return []string{s.Name, string(s.Type), strconv.Itoa(len(s.Data)), Since(s.CreationTimestamp, now)}
}
