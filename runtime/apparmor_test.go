package runtime

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeAppArmor points the AppArmor files at dir: enabled ("Y\n", "N\n" or
// "" for no module), the loaded profiles, and the parser (a script that
// logs its arguments to dir/parser.log, or none).
func fakeAppArmor(t *testing.T, enabled, profiles string, parser bool) string {
	t.Helper()
	oldParam, oldProfiles, oldParser, oldDir := appArmorParam, appArmorProfiles, appArmorParser, appArmorDir
	t.Cleanup(func() {
		appArmorParam, appArmorProfiles, appArmorParser, appArmorDir = oldParam, oldProfiles, oldParser, oldDir
		defaultAppArmor.loaded = false
	})
	defaultAppArmor.loaded = false
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	appArmorParam = filepath.Join(dir, "enabled")
	if enabled != "" {
		write("enabled", enabled, 0o644)
	}
	appArmorProfiles = filepath.Join(dir, "profiles")
	write("profiles", profiles, 0o644)
	appArmorParser = filepath.Join(dir, "apparmor_parser")
	if parser {
		write("apparmor_parser", "#!/bin/sh\necho \"$@\" >>"+dir+"/parser.log\ncp \"$2\" "+dir+"/loaded\n", 0o755)
	}
	appArmorDir = filepath.Join(dir, "etc")
	return dir
}

func TestAppArmorRefusal(t *testing.T) {
	for content, want := range map[string]bool{
		"":     false, // no module
		"N\n":  false,
		"Y\n":  true,
		"Yes!": true,
	} {
		fakeAppArmor(t, content, "", false)
		if got := AppArmorEnabled(); got != want {
			t.Errorf("%q: AppArmorEnabled %v", content, got)
		}
	}
	if got, want := AppArmorRefusal(), "Cannot enforce AppArmor: AppArmor is not enabled on the host"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestAppArmorConfig(t *testing.T) {
	loaded := "cri-containerd.apparmor.d (enforce)\nmy profile (complain)\nlocal (enforce)\n"
	for _, tc := range []struct {
		name, enabled, typ, prof string
		privileged, parser       bool
		want, err                string // err: a part of the error, which is ErrAppArmorProfile
	}{
		{name: "none", enabled: "Y\n", typ: "", want: ""},
		{name: "unconfined", enabled: "Y\n", typ: AppArmorUnconfined, want: ""},
		{name: "unconfined without AppArmor", enabled: "N\n", typ: AppArmorUnconfined, want: ""},
		{name: "default", enabled: "Y\n", typ: AppArmorRuntimeDefault, parser: true, want: "podrun-default"},
		{name: "default privileged", enabled: "Y\n", typ: AppArmorRuntimeDefault, privileged: true, want: ""},
		{name: "default without parser", enabled: "Y\n", typ: AppArmorRuntimeDefault, err: "without apparmor_parser"},
		{name: "default without AppArmor", enabled: "N\n", typ: AppArmorRuntimeDefault, parser: true, err: "apparmor is not supported"},
		{name: "localhost", enabled: "Y\n", typ: AppArmorLocalhost, prof: "local", want: "local"},
		{name: "localhost with a space", enabled: "Y\n", typ: AppArmorLocalhost, prof: "my profile", want: "my profile"},
		{name: "localhost privileged", enabled: "Y\n", typ: AppArmorLocalhost, prof: "local", privileged: true, want: "local"},
		{name: "localhost missing", enabled: "Y\n", typ: AppArmorLocalhost, prof: "loc",
			err: "failed to generate apparmor spec opts: apparmor profile not found loc"},
		{name: "localhost without AppArmor", enabled: "", typ: AppArmorLocalhost, prof: "local", err: "apparmor is not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeAppArmor(t, tc.enabled, loaded, tc.parser)
			got, err := appArmorConfig(&Spec{AppArmor: tc.typ, AppArmorProfile: tc.prof, Privileged: tc.privileged})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrAppArmorProfile) {
					t.Fatalf("err %v, want one with %q that is ErrAppArmorProfile", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("%q, %v; want %q", got, err, tc.want)
			}
			if tc.want == AppArmorDefaultProfile {
				// Loaded once, with -Kr, from a file that is gone after.
				if _, err := appArmorConfig(&Spec{AppArmor: tc.typ}); err != nil {
					t.Fatal(err)
				}
				log, _ := os.ReadFile(filepath.Join(dir, "parser.log"))
				args := strings.Fields(string(log))
				if len(args) != 2 || args[0] != "-Kr" {
					t.Fatalf("apparmor_parser ran with %q, want once with -Kr FILE", log)
				}
				if _, err := os.Stat(args[1]); !os.IsNotExist(err) {
					t.Errorf("the profile file %s is left: %v", args[1], err)
				}
				text, _ := os.ReadFile(filepath.Join(dir, "loaded"))
				if !strings.Contains(string(text), "profile podrun-default flags=") {
					t.Errorf("loaded:\n%s", text)
				}
			}
		})
	}
}

func TestAppArmorUnknownType(t *testing.T) {
	fakeAppArmor(t, "Y\n", "", false)
	if _, err := appArmorConfig(&Spec{AppArmor: "Strict"}); err == nil {
		t.Fatal("no error")
	}
}

func TestDefaultAppArmorProfile(t *testing.T) {
	all := func(string) bool { return true }
	none := func(string) bool { return false }
	text := defaultAppArmorProfile("podrun-default", "unconfined", all)
	for _, want := range []string{
		"abi <abi/3.0>,\n",
		"#include <tunables/global>\n",
		"profile podrun-default flags=(attach_disconnected,mediate_deleted) {\n",
		"  #include <abstractions/base>\n",
		"  network,\n", "  capability,\n", "  file,\n", "  umount,\n",
		"  signal (receive) peer=unconfined,\n",
		"  signal (send,receive) peer=podrun-default,\n",
		"  deny @{PROC}/* w,\n",
		"  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,\n",
		"  deny @{PROC}/sys/[^k]** w,\n",
		"  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,\n",
		"  deny @{PROC}/sysrq-trigger rwklx,\n",
		"  deny @{PROC}/kcore rwklx,\n",
		"  deny mount,\n",
		"  deny /sys/[^f]*/** wklx,\n",
		"  deny /sys/f[^s]*/** wklx,\n",
		"  deny /sys/fs/[^c]*/** wklx,\n",
		"  deny /sys/fs/c[^g]*/** wklx,\n",
		"  deny /sys/fs/cg[^r]*/** wklx,\n",
		"  deny /sys/firmware/** rwklx,\n",
		"  deny /sys/kernel/security/** rwklx,\n",
		"  ptrace (trace,read,tracedby,readby) peer=podrun-default,\n}\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
	if strings.Contains(text, "@{PROC}=") || strings.Count(text, "peer=unconfined") != 1 {
		t.Errorf("with the host's tunables and an unconfined daemon:\n%s", text)
	}
	if strings.Count(text, "{") != strings.Count(text, "}") {
		t.Errorf("unbalanced braces:\n%s", text)
	}
	// A host without the includes; a confined daemon may signal too.
	text = defaultAppArmorProfile("podrun-default", "podrund", none)
	for _, bad := range []string{"abi <", "#include"} {
		if strings.Contains(text, bad) {
			t.Errorf("%q without the host's file:\n%s", bad, text)
		}
	}
	for _, want := range []string{"@{PROC}=/proc/\n", "  signal (receive) peer=podrund,\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}
}

var appArmorRequired = flag.Bool("test.apparmor", false, "fail, not skip, the AppArmor tests on a host without AppArmor (the vmtest suite sets it)")

func requiresAppArmor(t *testing.T) {
	t.Helper()
	if !AppArmorEnabled() {
		if *appArmorRequired {
			t.Fatal("AppArmor is not enabled on this host, and -test.apparmor requires it")
		}
		t.Skip("AppArmor is not enabled on this host")
	}
	if _, err := exec.LookPath(appArmorParser); err != nil {
		t.Fatalf("AppArmor host without apparmor_parser: %v", err)
	}
}

// RuntimeDefault confines the container's process and its execs in
// podrun-default: no mount even with CAP_SYS_ADMIN, no write to
// /proc/sysrq-trigger even privileged (under Localhost podrun-default,
// as RuntimeDefault gives a privileged container none); Unconfined and
// privileged RuntimeDefault are unconfined; a Localhost profile not
// loaded fails Start with ErrAppArmorProfile and leaves nothing.
func TestAppArmorInForce(t *testing.T) {
	e := newEnv(t)
	requiresAppArmor(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	attr := "cat /proc/self/attr/current; echo"
	mnt := "mount -t tmpfs none /tmp && umount /tmp"
	sysrq := "echo h > /proc/sysrq-trigger"

	// The container's own process, under RuntimeDefault.
	s := e.spec(sb, "sh", "-c", attr)
	s.AppArmor = AppArmorRuntimeDefault
	if exit, log := e.run(s); exit.Code != 0 || !slices.Contains(texts(log), AppArmorDefaultProfile+" (enforce)") {
		t.Errorf("RuntimeDefault: exit %+v, log %q", exit, log)
	}
	if ok, err := appArmorLoaded(AppArmorDefaultProfile); !ok {
		t.Fatalf("%s is not in %s: %v", AppArmorDefaultProfile, appArmorProfiles, err)
	}

	start := func(typ, prof string, privileged bool) *Container {
		s := e.spec(sb, "sleep", "1000")
		s.AppArmor, s.AppArmorProfile, s.Privileged = typ, prof, privileged
		s.CapAdd = []string{"SYS_ADMIN"}
		return e.start(s)
	}
	for _, tc := range []struct {
		name         string
		c            *Container
		current      string
		mount, sysrq bool // allowed
		sysrqDenied  string
	}{
		{"RuntimeDefault", start(AppArmorRuntimeDefault, "", false), "podrun-default (enforce)", false, false, ""},
		{"Unconfined", start(AppArmorUnconfined, "", false), "unconfined", true, false, ""},
		{"none", start("", "", false), "unconfined", true, false, ""},
		{"privileged RuntimeDefault", start(AppArmorRuntimeDefault, "", true), "unconfined", true, true, ""},
		{"privileged Localhost podrun-default", start(AppArmorLocalhost, AppArmorDefaultProfile, true), "podrun-default (enforce)", false, false, "Permission denied"},
	} {
		if code, out := execOut(t, tc.c, "sh", "-c", attr); code != 0 || strings.TrimSpace(out) != tc.current {
			t.Errorf("%s: /proc/self/attr/current %d %q, want %q", tc.name, code, out, tc.current)
		}
		if code, out := execOut(t, tc.c, "sh", "-c", mnt); (code == 0) != tc.mount {
			t.Errorf("%s: %s: %d %q, allowed want %v", tc.name, mnt, code, out, tc.mount)
		}
		code, out := execOut(t, tc.c, "sh", "-c", sysrq)
		if (code == 0) != tc.sysrq || !strings.Contains(out, tc.sysrqDenied) {
			t.Errorf("%s: %s: %d %q, allowed want %v", tc.name, sysrq, code, out, tc.sysrq)
		}
	}

	s = e.spec(sb, "true")
	s.AppArmor, s.AppArmorProfile = AppArmorLocalhost, "podrun-test-absent"
	if c, err := e.rt.Start(context.Background(), s); err == nil {
		c.Destroy()
		t.Fatal("Start with a Localhost profile not loaded succeeded")
	} else if !errors.Is(err, ErrAppArmorProfile) || !strings.Contains(err.Error(), "apparmor profile not found podrun-test-absent") {
		t.Errorf("Start with a Localhost profile not loaded: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.rt.root, s.ID)); !os.IsNotExist(err) {
		t.Errorf("state of the failed container left: %v", err)
	}
}
