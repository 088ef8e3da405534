package cgroups

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// list parses "cpu=100m,memory=64Mi".
func list(s string) corev1.ResourceList {
	if s == "" {
		return nil
	}
	out := corev1.ResourceList{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	return out
}

func ctr(name, req, lim string) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: list(req), Limits: list(lim)}}
}

func sidecar(name, req, lim string) corev1.Container {
	c := ctr(name, req, lim)
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	return c
}

func pod(inits []corev1.Container, apps ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{InitContainers: inits, Containers: apps}}
}

func inits(cs ...corev1.Container) []corev1.Container { return cs }

// equal compares resource lists by value, e.g. "cpu=1100m" against a list.
func equal(t *testing.T, what string, got corev1.ResourceList, want string) {
	t.Helper()
	w := list(want)
	if len(got) != len(w) {
		t.Errorf("%s = %v, want %s", what, got, want)
		return
	}
	for name, q := range w {
		g, ok := got[name]
		if !ok || g.Cmp(q) != 0 {
			t.Errorf("%s = %v, want %s", what, got, want)
			return
		}
	}
}

func TestPodRequestsAndLimits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		pod        *corev1.Pod
		reqs, lims string
	}{
		{
			// The init-containers page's rule: the larger of the biggest init
			// container and the sum of the apps.
			name: "init containers alone",
			pod: pod(inits(ctr("i1", "cpu=1,memory=2Gi", ""), ctr("i2", "cpu=2,memory=4Gi", "")),
				ctr("a", "cpu=500m,memory=1Gi", ""), ctr("b", "cpu=200m,memory=512Mi", "")),
			reqs: "cpu=2,memory=4Gi",
		},
		{
			name: "apps outweigh init",
			pod:  pod(inits(ctr("i", "cpu=100m", "")), ctr("a", "cpu=300m", ""), ctr("b", "cpu=300m", "")),
			reqs: "cpu=600m",
		},
		{
			// A sidecar declared before an init container with a higher
			// request runs alongside it: 900m + 200m.
			name: "sidecar before a bigger init",
			pod:  pod(inits(sidecar("s", "cpu=200m", ""), ctr("i", "cpu=900m", "")), ctr("a", "cpu=100m", "")),
			reqs: "cpu=1100m",
		},
		{
			// The same containers with the init first: it runs alone.
			name: "init before the sidecar",
			pod:  pod(inits(ctr("i", "cpu=900m", ""), sidecar("s", "cpu=200m", "")), ctr("a", "cpu=100m", "")),
			reqs: "cpu=900m",
		},
		{
			// The sidecar counts in the steady state too: app + sidecar (3) beats the init (1.5).
			name: "sidecar adds to the apps",
			pod:  pod(inits(sidecar("s", "cpu=1", ""), ctr("i", "cpu=500m", "")), ctr("a", "cpu=2", "")),
			reqs: "cpu=3",
		},
		{
			// Only the sidecars started before each init count for it.
			name: "inits between sidecars",
			pod: pod(inits(sidecar("s1", "cpu=100m,memory=100Mi", ""), ctr("i1", "cpu=550m,memory=50Mi", ""),
				sidecar("s2", "cpu=300m,memory=300Mi", ""), ctr("i2", "cpu=100m,memory=1Gi", "")),
				ctr("a", "cpu=200m,memory=200Mi", "")),
			// i1 uses 650m/150Mi, i2 uses 500m/1424Mi, steady state 600m/600Mi.
			reqs: "cpu=650m,memory=1424Mi",
		},
		{
			name: "limits fold like requests",
			pod: pod(inits(sidecar("s", "cpu=100m", "cpu=200m,memory=64Mi"), ctr("i", "", "cpu=1,memory=1Gi")),
				ctr("a", "", "cpu=300m,memory=128Mi")),
			// i's limit defaults its request: 1 + 100m.
			reqs: "cpu=1100m,memory=1088Mi",
			lims: "cpu=1200m,memory=1088Mi",
		},
		{
			// One app without a memory limit leaves the pod unbounded in memory.
			name: "a missing limit is unbounded",
			pod:  pod(nil, ctr("a", "", "cpu=1,memory=1Gi"), ctr("b", "", "cpu=1")),
			reqs: "cpu=2,memory=1Gi",
			lims: "cpu=2",
		},
		{
			// An init container without limits after a sidecar with limits
			// still counts as declared: the kubelet checks its use, which
			// includes the sidecar.
			name: "init without limits after a limited sidecar",
			pod:  pod(inits(sidecar("s", "", "memory=64Mi"), ctr("i", "", "")), ctr("a", "", "memory=128Mi")),
			reqs: "memory=192Mi",
			lims: "memory=192Mi",
		},
		{
			name: "init without limits first",
			pod:  pod(inits(ctr("i", "", ""), sidecar("s", "", "memory=64Mi")), ctr("a", "", "memory=128Mi")),
			reqs: "memory=192Mi",
		},
		{
			name: "overhead",
			pod: func() *corev1.Pod {
				p := pod(nil, ctr("a", "cpu=100m,memory=64Mi", "memory=128Mi"))
				p.Spec.Overhead = list("cpu=10m,memory=8Mi")
				return p
			}(),
			reqs: "cpu=110m,memory=72Mi",
			lims: "memory=136Mi",
		},
		{
			name: "pod-level resources replace the aggregate",
			pod: func() *corev1.Pod {
				p := pod(nil, ctr("a", "cpu=100m", ""), ctr("b", "memory=64Mi", "memory=64Mi"))
				p.Spec.Resources = &corev1.ResourceRequirements{Requests: list("cpu=1"), Limits: list("cpu=2,memory=1Gi")}
				return p
			}(),
			reqs: "cpu=1,memory=1Gi",
			lims: "cpu=2,memory=1Gi",
		},
		{
			name: "nothing",
			pod:  pod(nil, ctr("a", "", "")),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			equal(t, "PodRequests", PodRequests(tc.pod), tc.reqs)
			equal(t, "PodLimits", PodLimits(tc.pod), tc.lims)
		})
	}
}

func TestQOSClass(t *testing.T) {
	g := "cpu=100m,memory=64Mi"
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		{"no resources", pod(inits(ctr("i", "", "")), ctr("a", "", "")), corev1.PodQOSBestEffort},
		{"only ephemeral storage", pod(nil, ctr("a", "ephemeral-storage=1Gi", "")), corev1.PodQOSBestEffort},
		{"requests equal limits everywhere", pod(inits(ctr("i", g, g), sidecar("s", g, g)), ctr("a", g, g)), corev1.PodQOSGuaranteed},
		{"limits only default the requests", pod(nil, ctr("a", "", g), ctr("b", "", g)), corev1.PodQOSGuaranteed},
		{"an init container without resources", pod(inits(ctr("i", "", "")), ctr("a", g, g)), corev1.PodQOSBurstable},
		{"a sidecar without resources", pod(inits(sidecar("s", "", "")), ctr("a", g, g)), corev1.PodQOSBurstable},
		{"cpu only", pod(nil, ctr("a", "", "cpu=1")), corev1.PodQOSBurstable},
		{"request below limit", pod(nil, ctr("a", "cpu=100m,memory=64Mi", "cpu=200m,memory=64Mi")), corev1.PodQOSBurstable},
		{"requests only", pod(nil, ctr("a", "memory=64Mi", "")), corev1.PodQOSBurstable},
		{"pod-level limits", func() *corev1.Pod {
			p := pod(nil, ctr("a", "", ""))
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: list("cpu=1,memory=1Gi")}
			return p
		}(), corev1.PodQOSGuaranteed},
		{"pod-level memory only", func() *corev1.Pod {
			p := pod(nil, ctr("a", "", g))
			p.Spec.Resources = &corev1.ResourceRequirements{Limits: list("memory=1Gi")}
			return p
		}(), corev1.PodQOSBurstable},
	} {
		if got := QOSClass(tc.pod); got != tc.want {
			t.Errorf("%s: QOSClass = %s, want %s", tc.name, got, tc.want)
		}
	}
}
