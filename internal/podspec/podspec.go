// Package podspec holds the few facts about a pod's shape that several
// packages need, so that each has one home: the order of its containers and
// statuses, and the names of a container instance's directory and log file
// (the kubelet's /var/log/pods layout).
package podspec

import (
	"fmt"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
)

// Containers returns the pod's init containers (sidecars among them), then
// its app containers, in spec order.
func Containers(s *corev1.PodSpec) []*corev1.Container {
	out := make([]*corev1.Container, 0, len(s.InitContainers)+len(s.Containers))
	for i := range s.InitContainers {
		out = append(out, &s.InitContainers[i])
	}
	for i := range s.Containers {
		out = append(out, &s.Containers[i])
	}
	return out
}

// Statuses returns the init container statuses, then the app containers'.
func Statuses(st *corev1.PodStatus) []corev1.ContainerStatus {
	return append(append(make([]corev1.ContainerStatus, 0, len(st.InitContainerStatuses)+len(st.ContainerStatuses)),
		st.InitContainerStatuses...), st.ContainerStatuses...)
}

// IsSidecar reports whether an init container is a sidecar
// (restartPolicy: Always).
func IsSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// LogDir is the kubelet's directory of a pod's logs under the log root:
// <namespace>_<name>_<uid>.
func LogDir(root string, p *corev1.Pod) string {
	return filepath.Join(root, fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID))
}

// LogFile is one container instance's log under its pod's LogDir:
// <container>/<restart count>.log.
func LogFile(podLogDir, container string, restart int32) string {
	return filepath.Join(podLogDir, container, fmt.Sprintf("%d.log", restart))
}

// InstanceDir is one container instance's directory (root filesystem,
// termination log) under its pod's directory: containers/<name>-<restart>.
func InstanceDir(podDir, container string, restart int32) string {
	return filepath.Join(podDir, "containers", fmt.Sprintf("%s-%d", container, restart))
}

// SetImages gives each container of dst the image (and, when set, the pull
// policy) of the container of src with its name: the one change a running
// pod takes (the kubelet restarts a container whose image changed).
func SetImages(dst, src *corev1.PodSpec) {
	byName := map[string]*corev1.Container{}
	for _, c := range Containers(src) {
		byName[c.Name] = c
	}
	for _, c := range Containers(dst) {
		if n := byName[c.Name]; n != nil && n.Image != c.Image {
			c.Image = n.Image
			if n.ImagePullPolicy != "" {
				c.ImagePullPolicy = n.ImagePullPolicy
			}
		}
	}
}

// Container returns the pod's container (init or app) of that name, or nil.
func Container(s *corev1.PodSpec, name string) *corev1.Container {
	for _, c := range Containers(s) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Status returns the status of the named container (init or app), or nil.
func Status(st *corev1.PodStatus, name string) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// Condition returns the pod's condition of type t, or nil.
func Condition(st *corev1.PodStatus, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// Ready reports whether the pod's Ready condition is True.
func Ready(p *corev1.Pod) bool {
	c := Condition(&p.Status, corev1.PodReady)
	return c != nil && c.Status == corev1.ConditionTrue
}
