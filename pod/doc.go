// Package pod is the supervisor: a kubelet for one pod. One goroutine owns
// the pod; a pure function computes the next actions from the spec and the
// observed state; an executor carries them out through small interfaces that
// the concrete leaves (runtime, image, netns, cgroups, volumes, probes)
// implement and that fakes implement in tests.
package pod
