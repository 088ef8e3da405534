package cgroups

import (
	"strings"

	"github.com/podrun/podrun/internal/podspec"
	corev1 "k8s.io/api/core/v1"
)

// The functions here follow the kubelet (v1.34) on a pod as the API server
// stores it, i.e. after defaulting. They apply that defaulting themselves
// (a container limit without a request counts as that request; a pod-level
// limit without a pod-level request likewise), so a pod that was never
// defaulted gives the same answers as one that was.

// PodRequests returns the pod's effective requests, per resource, the way the
// kubelet and the scheduler compute them (component-helpers
// resource.PodRequests): the larger of the sum over app containers and
// sidecars, and the peak of any init container's use, where a regular init
// container uses its own request plus every sidecar declared before it and a
// sidecar uses every sidecar up to and including itself. Pod-level
// spec.resources requests replace the aggregate for cpu, memory and
// hugepages; spec.overhead is added last.
func PodRequests(pod *corev1.Pod) corev1.ResourceList {
	reqs, _ := aggregate(pod, containerRequests)
	if podLevelRequestsSet(pod) {
		for name, q := range podLevelRequests(pod) {
			if podLevelResource(name) {
				reqs[name] = q.DeepCopy()
			}
		}
	}
	addInto(reqs, pod.Spec.Overhead)
	return reqs
}

// PodLimits returns the pod's effective limits, aggregated like PodRequests.
// A resource is present only when the pod as a whole is bounded in it: every
// app container declares a non-zero limit for it and every init container
// does too once the sidecars started before it are counted (the kubelet's
// ResourceConfigForPod rule for cpu and memory), or spec.resources limits it.
// A missing resource is unbounded. spec.overhead is added to the limits
// present.
func PodLimits(pod *corev1.Pod) corev1.ResourceList {
	lims, uses := aggregate(pod, func(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits })
	for name := range lims {
		if !declaredByAll(uses, name) {
			delete(lims, name)
		}
	}
	if podLevelResourcesSet(pod) {
		for name, q := range pod.Spec.Resources.Limits {
			if podLevelResource(name) && !q.IsZero() {
				lims[name] = q.DeepCopy()
			}
		}
	}
	for name, q := range pod.Spec.Overhead {
		if v, ok := lims[name]; ok && !v.IsZero() {
			v.Add(q)
			lims[name] = v
		}
	}
	return lims
}

// QOSClass returns the pod's QoS class (the kubelet's ComputePodQOS): with
// spec.resources set, it is decided by the pod-level cpu and memory values
// alone; otherwise a pod is BestEffort when no container (init, sidecar or
// app) requests or limits cpu or memory, Guaranteed when every container's
// cpu and memory requests equal its limits and are non-zero, and Burstable
// otherwise.
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Spec.Resources != nil {
		return resourceQOS(podLevelRequests(pod), pod.Spec.Resources.Limits)
	}
	var class corev1.PodQOSClass
	for _, c := range podspec.Containers(&pod.Spec) {
		switch q := resourceQOS(containerRequests(c), c.Resources.Limits); {
		case q == corev1.PodQOSBurstable:
			return q
		case class == "":
			class = q
		case class != q:
			return corev1.PodQOSBurstable
		}
	}
	if class == "" {
		return corev1.PodQOSBestEffort
	}
	return class
}

func resourceQOS(reqs, lims corev1.ResourceList) corev1.PodQOSClass {
	var class corev1.PodQOSClass
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := reqs[name], lims[name]
		if !req.Equal(lim) {
			return corev1.PodQOSBurstable
		}
		q := corev1.PodQOSGuaranteed
		if req.IsZero() {
			q = corev1.PodQOSBestEffort
		}
		if class != "" && class != q {
			return corev1.PodQOSBurstable
		}
		class = q
	}
	return class
}

// aggregate folds per-container lists as component-helpers'
// aggregateContainerResourcesByFn does, and also returns each container's
// use: an app container's own list, a sidecar's running sidecar total, a
// regular init container's list plus the sidecars started before it.
func aggregate(pod *corev1.Pod, list func(*corev1.Container) corev1.ResourceList) (total corev1.ResourceList, uses []corev1.ResourceList) {
	total = corev1.ResourceList{}
	for i := range pod.Spec.Containers {
		l := list(&pod.Spec.Containers[i])
		addInto(total, l)
		uses = append(uses, l)
	}
	sidecars := corev1.ResourceList{}
	initPeak := corev1.ResourceList{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		l := list(c)
		use := corev1.ResourceList{}
		if podspec.IsSidecar(c) {
			addInto(total, l)
			addInto(sidecars, l)
			addInto(use, sidecars)
		} else {
			addInto(use, l)
			addInto(use, sidecars)
		}
		maxInto(initPeak, use)
		uses = append(uses, use)
	}
	maxInto(total, initPeak)
	return total, uses
}

func declaredByAll(uses []corev1.ResourceList, name corev1.ResourceName) bool {
	for _, use := range uses {
		if q, ok := use[name]; !ok || q.IsZero() {
			return false
		}
	}
	return true
}

// containerRequests is the container's requests after the API server's
// defaulting: a limit without a request is also the request.
func containerRequests(c *corev1.Container) corev1.ResourceList {
	return withDefaults(c.Resources.Requests, c.Resources.Limits)
}

// podLevelRequests is spec.resources.requests after defaulting from the
// pod-level limits (pkg/apis/core/v1 defaultPodRequests).
func podLevelRequests(pod *corev1.Pod) corev1.ResourceList {
	if pod.Spec.Resources == nil {
		return nil
	}
	lims := corev1.ResourceList{}
	for name, q := range pod.Spec.Resources.Limits {
		if podLevelResource(name) {
			lims[name] = q
		}
	}
	return withDefaults(pod.Spec.Resources.Requests, lims)
}

func withDefaults(reqs, lims corev1.ResourceList) corev1.ResourceList {
	if len(lims) == 0 {
		return reqs
	}
	out := make(corev1.ResourceList, len(reqs)+len(lims))
	for name, q := range reqs {
		out[name] = q
	}
	for name, q := range lims {
		if _, ok := out[name]; !ok {
			out[name] = q
		}
	}
	return out
}

func podLevelResource(name corev1.ResourceName) bool {
	return name == corev1.ResourceCPU || name == corev1.ResourceMemory ||
		strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix)
}

func podLevelRequestsSet(pod *corev1.Pod) bool {
	for name := range podLevelRequests(pod) {
		if podLevelResource(name) {
			return true
		}
	}
	return false
}

func podLevelResourcesSet(pod *corev1.Pod) bool {
	if pod.Spec.Resources == nil {
		return false
	}
	for name := range pod.Spec.Resources.Limits {
		if podLevelResource(name) {
			return true
		}
	}
	return podLevelRequestsSet(pod)
}

func addInto(dst, src corev1.ResourceList) {
	for name, q := range src {
		v, ok := dst[name]
		if !ok {
			dst[name] = q.DeepCopy()
			continue
		}
		v.Add(q)
		dst[name] = v
	}
}

func maxInto(dst, src corev1.ResourceList) {
	for name, q := range src {
		if v, ok := dst[name]; !ok || q.Cmp(v) > 0 {
			dst[name] = q.DeepCopy()
		}
	}
}
