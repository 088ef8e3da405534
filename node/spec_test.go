package node

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/runtime"
)

func TestRecursiveReadOnly(t *testing.T) {
	mode := func(m corev1.RecursiveReadOnlyMode) *corev1.RecursiveReadOnlyMode { return &m }
	hostToContainer := corev1.MountPropagationHostToContainer
	for _, tc := range []struct {
		name      string
		vm        corev1.VolumeMount
		supported bool
		want      bool
		err       string
	}{
		{"unset", corev1.VolumeMount{Name: "v", ReadOnly: true}, true, false, ""},
		{"disabled", corev1.VolumeMount{Name: "v", ReadOnly: true, RecursiveReadOnly: mode(corev1.RecursiveReadOnlyDisabled)}, true, false, ""},
		{"enabled", corev1.VolumeMount{Name: "v", ReadOnly: true, RecursiveReadOnly: mode(corev1.RecursiveReadOnlyEnabled)}, true, true, ""},
		{"enabled, no kernel support", corev1.VolumeMount{Name: "v", ReadOnly: true, RecursiveReadOnly: mode(corev1.RecursiveReadOnlyEnabled)}, false, false,
			`volume "v" requested recursive read-only mode, but it is not supported by the runtime`},
		{"if possible", corev1.VolumeMount{Name: "v", ReadOnly: true, RecursiveReadOnly: mode(corev1.RecursiveReadOnlyIfPossible)}, true, true, ""},
		{"if possible, no kernel support", corev1.VolumeMount{Name: "v", ReadOnly: true, RecursiveReadOnly: mode(corev1.RecursiveReadOnlyIfPossible)}, false, false, ""},
		{"writable", corev1.VolumeMount{Name: "v", RecursiveReadOnly: mode(corev1.RecursiveReadOnlyIfPossible)}, true, false,
			`volume "v" requested recursive read-only mode, but it is not read-only`},
		{"propagating", corev1.VolumeMount{Name: "v", ReadOnly: true, MountPropagation: &hostToContainer, RecursiveReadOnly: mode(corev1.RecursiveReadOnlyEnabled)}, true, false,
			`volume "v" requested recursive read-only mode, but it is not compatible with propagation "HostToContainer"`},
	} {
		got, err := recursiveReadOnly(tc.vm, tc.supported)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("%s: %v, %v; want %v, %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestSetUserSupplementalGroupsPolicy(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"passwd": "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
		"group":  "root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:root,app\n",
	} {
		if err := os.WriteFile(filepath.Join(rootfs, "etc", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	i64 := func(v int64) *int64 { return &v }
	policy := func(p corev1.SupplementalGroupsPolicy) *corev1.SupplementalGroupsPolicy { return &p }
	for _, tc := range []struct {
		name   string
		psc    corev1.PodSecurityContext
		gid    uint32
		groups []uint32
	}{
		{"merge by default", corev1.PodSecurityContext{RunAsUser: i64(1000)}, 1000, []uint32{1000, 10, 29}},
		{"merge", corev1.PodSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{5}, FSGroup: i64(2000),
			SupplementalGroupsPolicy: policy(corev1.SupplementalGroupsPolicyMerge)}, 1000, []uint32{1000, 10, 29, 5, 2000}},
		{"strict", corev1.PodSecurityContext{RunAsUser: i64(1000), SupplementalGroups: []int64{5}, FSGroup: i64(2000),
			SupplementalGroupsPolicy: policy(corev1.SupplementalGroupsPolicyStrict)}, 1000, []uint32{1000, 5, 2000}},
		{"strict with runAsGroup", corev1.PodSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(3000),
			SupplementalGroupsPolicy: policy(corev1.SupplementalGroupsPolicyStrict)}, 3000, []uint32{3000}},
		{"strict, root", corev1.PodSecurityContext{SupplementalGroupsPolicy: policy(corev1.SupplementalGroupsPolicyStrict)}, 0, []uint32{0}},
		{"merge, root", corev1.PodSecurityContext{}, 0, []uint32{0, 29}},
	} {
		p := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &tc.psc}}
		s := &runtime.Spec{Rootfs: rootfs}
		if err := setUser(s, p, &corev1.Container{Name: "c"}, ""); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if s.GID != tc.gid || !slices.Equal(s.AdditionalGIDs, tc.groups) {
			t.Errorf("%s: gid %d, groups %v; want %d, %v", tc.name, s.GID, s.AdditionalGIDs, tc.gid, tc.groups)
		}
	}
}

// The kubelet's order: the container's field, then the deprecated
// annotation, then the pod's field.
func TestAppArmorResolution(t *testing.T) {
	prof := func(typ corev1.AppArmorProfileType, name string) *corev1.AppArmorProfile {
		p := &corev1.AppArmorProfile{Type: typ}
		if name != "" {
			p.LocalhostProfile = &name
		}
		return p
	}
	key := corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "c"
	for _, tc := range []struct {
		name       string
		pod, ctr   *corev1.AppArmorProfile
		annotation string
		typ, prof  string
	}{
		{name: "none"},
		{name: "pod", pod: prof(corev1.AppArmorProfileTypeRuntimeDefault, ""), typ: runtime.AppArmorRuntimeDefault},
		{name: "container over pod", pod: prof(corev1.AppArmorProfileTypeRuntimeDefault, ""),
			ctr: prof(corev1.AppArmorProfileTypeUnconfined, ""), typ: runtime.AppArmorUnconfined},
		{name: "container localhost", ctr: prof(corev1.AppArmorProfileTypeLocalhost, "mine"), typ: runtime.AppArmorLocalhost, prof: "mine"},
		{name: "annotation runtime/default", annotation: "runtime/default", typ: runtime.AppArmorRuntimeDefault},
		{name: "annotation localhost", annotation: "localhost/mine", typ: runtime.AppArmorLocalhost, prof: "mine"},
		{name: "annotation unconfined", annotation: "unconfined", typ: runtime.AppArmorUnconfined},
		{name: "annotation over pod", annotation: "localhost/mine", pod: prof(corev1.AppArmorProfileTypeRuntimeDefault, ""),
			typ: runtime.AppArmorLocalhost, prof: "mine"},
		{name: "container over annotation", annotation: "unconfined", ctr: prof(corev1.AppArmorProfileTypeRuntimeDefault, ""),
			typ: runtime.AppArmorRuntimeDefault},
		{name: "invalid annotation: the pod's", annotation: "bogus", pod: prof(corev1.AppArmorProfileTypeRuntimeDefault, ""),
			typ: runtime.AppArmorRuntimeDefault},
	} {
		p := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
		if tc.pod != nil {
			p.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: tc.pod}
		}
		if tc.ctr != nil {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AppArmorProfile: tc.ctr}
		}
		if tc.annotation != "" {
			p.Annotations = map[string]string{key: tc.annotation, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "other": "localhost/x"}
		}
		typ, name := appArmor(p, &p.Spec.Containers[0])
		if typ != tc.typ || name != tc.prof {
			t.Errorf("%s: %q %q, want %q %q", tc.name, typ, name, tc.typ, tc.prof)
		}
	}
}
