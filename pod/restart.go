package pod

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/podspec"
)

// ShouldRestart is the kubelet's ShouldContainerBeRestarted for a container
// of a pod that is not being deleted, once it exited with exitCode: a
// sidecar always restarts; a regular init container never after success,
// and after a failure unless the pod's restartPolicy is Never; an app
// container as the pod's restartPolicy says.
func ShouldRestart(policy corev1.RestartPolicy, c *corev1.Container, init bool, exitCode int32) bool {
	switch {
	case init && podspec.IsSidecar(c):
		return true
	case init && exitCode == 0:
		return false
	}
	switch policy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// ShowsRestart is ShouldContainerBeRestarted as the kubelet's status
// (convertToAPIContainerStatuses) uses it to show a container that is not
// running as Waiting with the reason of its last start failure rather than
// as terminated: an init container, sidecar or not, that exited 0 keeps
// its terminated state; any other container follows the pod's
// restartPolicy alone, so a sidecar under restartPolicy Never, or one that
// exited 0, shows terminated while it waits out its back-off (the
// decision to restart it is ShouldRestart's).
func ShowsRestart(policy corev1.RestartPolicy, init bool, exitCode int32) bool {
	switch {
	case init && exitCode == 0:
		return false
	case policy == corev1.RestartPolicyNever:
		return false
	case policy == corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return true
}

// DeletionGrace is the grace period a deletion gives the pod: the one
// asked for, else (nil, or negative as kubectl's --grace-period=-1) the
// pod's terminationGracePeriodSeconds, else the API default of 30 s.
func DeletionGrace(p *corev1.Pod, requested *int64) int64 {
	switch {
	case requested != nil && *requested >= 0:
		return *requested
	case p.Spec.TerminationGracePeriodSeconds != nil:
		return *p.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}
