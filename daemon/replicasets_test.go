package daemon

import (
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestScaleDownOrder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	pod := func(name string, phase corev1.PodPhase, readyAt int, restarts int32, createdAt int) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(createdAt) * time.Second))}}
		p.Status.Phase = phase
		if readyAt >= 0 {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0.Add(time.Duration(readyAt) * time.Second))}}
		}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "c", RestartCount: restarts}}
		return p
	}
	pods := []*corev1.Pod{
		pod("ready-long", corev1.PodRunning, 10, 0, 0),
		pod("ready-short", corev1.PodRunning, 50, 0, 0),
		pod("unready-old", corev1.PodRunning, -1, 0, 1),
		pod("unready-new", corev1.PodRunning, -1, 0, 2),
		pod("unready-restarts", corev1.PodRunning, -1, 3, 0),
		pod("pending", corev1.PodPending, -1, 0, 0),
		pod("ready-long-restarts", corev1.PodRunning, 10, 2, 0),
	}
	sort.SliceStable(pods, func(i, j int) bool { return deleteFirst(pods[i], pods[j]) })
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	want := "pending unready-restarts unready-new unready-old ready-short ready-long-restarts ready-long"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("deletion order\n got %s\nwant %s", got, want)
	}
}
