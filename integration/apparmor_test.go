package integration

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// appArmorEnabled is runtime.AppArmorEnabled: the module's parameter is "Y".
func appArmorEnabled() bool {
	b, _ := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return bytes.HasPrefix(b, []byte("Y"))
}

var appArmorRequired = flag.Bool("test.apparmor", false, "fail, not skip, the AppArmor tests on a host without AppArmor (the vmtest suite sets it)")

// AppArmor profiles through the binary, on a host with AppArmor: the pod's
// RuntimeDefault confines a container in podrun-default (no mount even
// with CAP_SYS_ADMIN), a container's Unconfined overrides it, the
// deprecated annotation runtime/default works as the field, and a
// Localhost profile that is not loaded is a CreateContainerError.
func TestAppArmorProfiles(t *testing.T) {
	if !appArmorEnabled() {
		if *appArmorRequired {
			t.Fatal("AppArmor is not enabled on this host, and -test.apparmor requires it")
		}
		t.Skip("AppArmor is not enabled on this host")
	}
	try := `log attr $(cat /proc/self/attr/current)
if mount -t tmpfs none /tmp 2>/dev/null; then log MOUNTED; else log NOMOUNT; fi`
	sysAdmin := func(c corev1.Container, prof *corev1.AppArmorProfile) corev1.Container {
		c.SecurityContext = &corev1.SecurityContext{AppArmorProfile: prof,
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
		return c
	}
	s := newScenario(t, "apparmor", corev1.RestartPolicyNever).
		app(sysAdmin(container("inherits", try), nil)).
		app(sysAdmin(container("unconf", try), &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}))
	s.pod.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}
	r := s.run()
	for _, want := range [][2]string{
		{"inherits", "attr podrun-default (enforce)"}, {"inherits", "NOMOUNT"},
		{"unconf", "attr unconfined"}, {"unconf", "MOUNTED"},
	} {
		if len(r.ev.all(want[0], want[1])) != 1 {
			t.Errorf("no %q from %s (events %v; stderr:\n%s)", want[1], want[0], r.ev.lines, r.stderr)
		}
	}

	s = newScenario(t, "apparmor-annotation", corev1.RestartPolicyNever).app(sysAdmin(container("ann", try), nil))
	s.pod.Annotations = map[string]string{corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "ann": "runtime/default"}
	r = s.run()
	for _, want := range []string{"attr podrun-default (enforce)", "NOMOUNT"} {
		if len(r.ev.all("ann", want)) != 1 {
			t.Errorf("annotation runtime/default: no %q (events %v; stderr:\n%s)", want, r.ev.lines, r.stderr)
		}
	}

	missing := container("app", runExit("0", 0))
	absent := "podrun-test-absent"
	missing.SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{
		Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: &absent}}
	s = newScenario(t, "apparmor-missing", corev1.RestartPolicyNever).app(missing)
	r = s.run("--timeout", "3s")
	if r.code != 124 {
		t.Errorf("podrun run exit %d, want 124 (the container can never start)", r.code)
	}
	if !strings.Contains(r.stderr, "CreateContainerError") || !strings.Contains(r.stderr, "apparmor profile not found "+absent) {
		t.Errorf("no CreateContainerError naming the profile in:\n%s", r.stderr)
	}
}
