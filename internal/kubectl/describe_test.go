package kubectl

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDescribePod(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	started := metav1.NewTime(now.Add(-time.Minute))
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Labels: map[string]string{"b": "2", "a": "1"}},
		Spec: corev1.PodSpec{
			NodeName:       "node",
			InitContainers: []corev1.Container{{Name: "side", Image: "busybox", RestartPolicy: &always}},
			Containers: []corev1.Container{{Name: "app", Image: "busybox", Command: []string{"sh", "-c", "one\ntwo"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, HostIP: "192.0.2.1", PodIP: "10.0.0.2", PodIPs: []corev1.PodIP{{IP: "10.0.0.2"}},
			QOSClass: corev1.PodQOSBestEffort, StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "podrun://x", Ready: true, RestartCount: 2,
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
					ExitCode: 137, Reason: "Error", StartedAt: started, FinishedAt: started}}}},
		},
	}
	events := []corev1.Event{{Type: "Normal", Reason: "Started", Message: "Started container app", Count: 3,
		FirstTimestamp: metav1.NewTime(now.Add(-90 * time.Second)), LastTimestamp: metav1.NewTime(now.Add(-30 * time.Second)),
		Source: corev1.EventSource{Component: "kubelet"}, InvolvedObject: corev1.ObjectReference{FieldPath: "spec.containers{app}"}}}
	var b strings.Builder
	if err := DescribePod(&b, p, events, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Name:         web\n",
		"Node:         node/192.0.2.1\n",
		"Labels:       a=1\n              b=2\n",
		"Init Containers:\n  side:\n    Image:        busybox\n    Port:         <none>\n",
		"    Command:\n      sh\n      -c\n      one\n      two\n",
		"    State:          Running\n",
		"    Last State:     Terminated\n      Reason:       Error\n      Exit Code:    137\n",
		"    Restart Count:  2\n",
		"    Mounts:\n      /data from data (ro)\n",
		"Conditions:\n  Type    Status\n  Ready   True \n",
		"  data:\n    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:      \n    SizeLimit:   <unset>\n",
		"QoS Class:       BestEffort\n",
		"  Normal  Started  30s (x3 over 90s)  kubelet  Started container app\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestWorkloadRows(t *testing.T) {
	now := time.Now()
	three, one := int32(3), int32(1)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "d", CreationTimestamp: metav1.NewTime(now.Add(-2 * time.Minute))},
		Spec: appsv1.DeploymentSpec{Replicas: &three}, Status: appsv1.DeploymentStatus{ReadyReplicas: 2, UpdatedReplicas: 3, AvailableReplicas: 2}}
	if got := strings.Join(DeploymentRow(d, now), " "); got != "d 2/3 3 2 2m" {
		t.Errorf("deployment row %q", got)
	}
	start := metav1.NewTime(now.Add(-10 * time.Second))
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "j", CreationTimestamp: start},
		Spec:   batchv1.JobSpec{Completions: &one},
		Status: batchv1.JobStatus{StartTime: &start, Succeeded: 0}}
	if got := strings.Join(JobRow(j, now), " "); got != "j Running 0/1 10s 10s" {
		t.Errorf("running job row %q", got)
	}
	done := metav1.NewTime(now.Add(-4 * time.Second))
	j.Status.Succeeded, j.Status.CompletionTime = 1, &done
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	if got := strings.Join(JobRow(j, now), " "); got != "j Complete 1/1 6s 10s" {
		t.Errorf("complete job row %q", got)
	}
}
