package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func requiresSeccomp(t *testing.T) {
	t.Helper()
	if !SeccompEnabled() {
		t.Skip("built without seccomp support: GOFLAGS=-tags=seccomp (make root-test sets it)")
	}
}

// RuntimeDefault refuses what containerd's default profile refuses (a
// user namespace, a mount) with EPERM, while the same succeeds Unconfined
// with CAP_SYS_ADMIN; CAP_SYS_ADMIN opens mount under RuntimeDefault too.
func TestSeccompRuntimeDefault(t *testing.T) {
	e := newEnv(t)
	requiresSeccomp(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	run := func(seccomp string, caps []string) *Container {
		s := e.spec(sb, "sleep", "1000")
		s.Seccomp, s.CapAdd = seccomp, caps
		return e.start(s)
	}
	tests := []struct {
		c            *Container
		unshare, mnt bool // allowed
	}{
		{run(SeccompRuntimeDefault, nil), false, false},
		{run(SeccompRuntimeDefault, []string{"SYS_ADMIN"}), true, true},
		{run(SeccompUnconfined, []string{"SYS_ADMIN"}), true, true},
		{run("", []string{"SYS_ADMIN"}), true, true},
	}
	for i, tc := range tests {
		for _, cmd := range []struct {
			args    []string
			allowed bool
		}{
			{[]string{"unshare", "-U", "true"}, tc.unshare},
			{[]string{"sh", "-c", "mount -t tmpfs none /tmp && umount /tmp"}, tc.mnt},
		} {
			code, out := execOut(t, tc.c, cmd.args...)
			if cmd.allowed && code != 0 {
				t.Errorf("case %d: %v refused: %d %q", i, cmd.args, code, out)
			}
			// busybox mount says EPERM as "permission denied (are you root?)"
			eperm := strings.Contains(out, "Operation not permitted") || strings.Contains(out, "permission denied")
			if !cmd.allowed && (code == 0 || !eperm) {
				t.Errorf("case %d: %v = %d %q, want EPERM", i, cmd.args, code, out)
			}
		}
		if code, out := execOut(t, tc.c, "grep", "Seccomp:", "/proc/self/status"); code != 0 ||
			strings.Contains(out, "\t2") != (i < 2) {
			t.Errorf("case %d: %q", i, out)
		}
	}
}

// A Localhost profile is applied; a missing one fails Start with
// ErrSeccompProfile and leaves nothing behind.
func TestSeccompLocalhost(t *testing.T) {
	e := newEnv(t)
	requiresSeccomp(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	dir := t.TempDir()
	prof := filepath.Join(dir, "no-mkdir.json")
	err := os.WriteFile(prof, []byte(`{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
		{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s := e.spec(sb, "sleep", "1000")
	s.Seccomp, s.SeccompProfile = SeccompLocalhost, prof
	c := e.start(s)
	if code, out := execOut(t, c, "mkdir", "/tmp/d"); code == 0 || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mkdir under the profile: %d %q", code, out)
	}
	if code, out := execOut(t, c, "touch", "/tmp/f"); code != 0 {
		t.Errorf("touch under the profile: %d %q", code, out)
	}

	s = e.spec(sb, "true")
	s.Seccomp, s.SeccompProfile = SeccompLocalhost, filepath.Join(dir, "missing.json")
	if c, err := e.rt.Start(context.Background(), s); err == nil {
		c.Destroy()
		t.Fatal("Start with a missing Localhost profile succeeded")
	} else if !errors.Is(err, ErrSeccompProfile) || !strings.Contains(err.Error(), "cannot load seccomp profile") {
		t.Errorf("Start with a missing profile: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.rt.root, s.ID)); !os.IsNotExist(err) {
		t.Errorf("state of the failed container left: %v", err)
	}
}
