package pod

import (
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func presentImages(p *corev1.Pod) *corev1.Pod {
	for i := range p.Spec.InitContainers {
		p.Spec.InitContainers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
	for i := range p.Spec.Containers {
		p.Spec.Containers[i].ImagePullPolicy = corev1.PullIfNotPresent
	}
	return p
}

// The containers after the first init container are prepared while it
// runs, and still start in the kubelet's order, each at its turn.
func TestPreparedAheadStartInOrder(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"i1": quick(0), "s1": forever(), "a1": quick(0)})
	p := presentImages(testPod("Never", "i1 s1 | a1"))
	s := runPod(t, h, p, nil)
	if got := h.events("prepare "); !reflect.DeepEqual(slices.Sorted(slices.Values(got)), []string{"a1", "s1"}) {
		t.Errorf("prepared %v, want a1 and s1", got)
	}
	if got, want := h.events("start "), []string{"i1", "s1", "a1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("start order %v, want %v", got, want)
	}
	i1Exit, _ := h.when("exit i1 0")
	s1Start, _ := h.when("start s1")
	if s1Start < i1Exit {
		t.Errorf("s1 started at %v, before i1 exited at %v", s1Start, i1Exit)
	}
	if d := h.events("discard "); len(d) != 0 {
		t.Errorf("discarded %v, want none", d)
	}
	if ph := s.Pod().Status.Phase; ph != corev1.PodSucceeded && ph != corev1.PodFailed {
		t.Errorf("phase %s", ph)
	}
}

// An init container failing a restartPolicy Never pod: what was prepared
// never starts and is discarded.
func TestPreparedDiscardedWhenInitFails(t *testing.T) {
	h := newFakeHost(map[string]behaviour{"i1": quick(1), "a1": quick(0)})
	p := presentImages(testPod("Never", "i1 | a1"))
	s := runPod(t, h, p, nil)
	if got := h.events("start "); !reflect.DeepEqual(got, []string{"i1"}) {
		t.Errorf("started %v, want only i1", got)
	}
	if got := h.events("discard "); !reflect.DeepEqual(got, []string{"a1"}) {
		t.Errorf("discarded %v, want a1", got)
	}
	if ph := s.Pod().Status.Phase; ph != corev1.PodFailed {
		t.Errorf("phase %s, want Failed", ph)
	}
}

// Not prepared: a start that may pull, a subPath, env from the API, a
// shared PID namespace.
func TestNotPrepared(t *testing.T) {
	for name, mutate := range map[string]func(p *corev1.Pod){
		"pull policy Always": func(p *corev1.Pod) { p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways },
		"subPath": func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/x", SubPath: "y"}}
		},
		"env from a configMap": func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}, Key: "k"}}}}
		},
		"shared PID namespace": func(p *corev1.Pod) { share := true; p.Spec.ShareProcessNamespace = &share },
		"a pod memory limit": func(p *corev1.Pod) {
			for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
				for i := range cs {
					cs[i].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := presentImages(testPod("Never", "i1 | a1"))
			mutate(p)
			h := newFakeHost(map[string]behaviour{"i1": quick(1), "a1": quick(0)})
			runPod(t, h, p, nil)
			if got := h.events("prepare "); len(got) != 0 {
				t.Errorf("prepared %v, want none", got)
			}
		})
	}
}
