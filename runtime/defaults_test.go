package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	cdseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// unitRuntime is a Runtime holding every capability, for configs built
// without root.
func unitRuntime() *Runtime {
	r := &Runtime{ownCaps: map[string]bool{}, sysResource: true, nofile: 1024}
	for _, c := range capNames {
		r.ownCaps[c] = true
	}
	return r
}

func unitSpec(t *testing.T) *Spec {
	return &Spec{
		ID: "c1", Rootfs: t.TempDir(), Args: []string{"true"}, CgroupPath: "/podrun/c1",
		Sandbox: &Sandbox{st: sandboxState{Spec: SandboxSpec{ID: "sb", HostNetwork: true}}},
	}
}

// The defaults a container gets are containerd's, field by field:
// capabilities, masked and read-only paths, devices (nodes and cgroup
// rules), no_new_privs, and the RuntimeDefault seccomp filter for each
// capability set that changes it.
func TestDefaultsMatchContainerd(t *testing.T) {
	// containerd's CRI spec for a container with an empty security
	// context (its base spec, WithoutDefaultSecuritySettings,
	// WithNewPrivileges), made into a libcontainer config as runc does.
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, oci.WithNewPrivileges)
	if err != nil {
		t.Fatal(err)
	}
	spec.Process.ApparmorProfile, spec.Linux.Seccomp, spec.Process.Rlimits = "", nil, nil
	spec.Root.Path = t.TempDir()
	spec.Linux.CgroupsPath = "/podrun/c1"
	cd, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: "c1", Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	r := unitRuntime()
	cfg, _, err := r.config(unitSpec(t))
	if err != nil {
		t.Fatal(err)
	}

	caps := cd.Capabilities
	for name, got := range map[string][]string{"bounding": cfg.Capabilities.Bounding, "effective": cfg.Capabilities.Effective, "permitted": cfg.Capabilities.Permitted} {
		want := map[string][]string{"bounding": caps.Bounding, "effective": caps.Effective, "permitted": caps.Permitted}[name]
		if !sameSet(got, want) {
			t.Errorf("%s capabilities %v, containerd %v", name, got, want)
		}
	}
	if len(cfg.Capabilities.Inheritable) != len(caps.Inheritable) || len(cfg.Capabilities.Ambient) != len(caps.Ambient) {
		t.Errorf("inheritable %v ambient %v, containerd %v %v", cfg.Capabilities.Inheritable, cfg.Capabilities.Ambient, caps.Inheritable, caps.Ambient)
	}
	if !sameSet(cfg.MaskPaths, cd.MaskPaths) {
		t.Errorf("masked paths %v, containerd %v", cfg.MaskPaths, cd.MaskPaths)
	}
	if !sameSet(cfg.ReadonlyPaths, cd.ReadonlyPaths) {
		t.Errorf("read-only paths %v, containerd %v", cfg.ReadonlyPaths, cd.ReadonlyPaths)
	}
	if cfg.NoNewPrivileges != cd.NoNewPrivileges {
		t.Errorf("no_new_privs %v, containerd %v", cfg.NoNewPrivileges, cd.NoNewPrivileges)
	}
	if cfg.Seccomp != nil {
		t.Errorf("seccomp without a profile: %+v, want none (Unconfined)", cfg.Seccomp)
	}
	// Devices: the cgroup rules in order (deny all, then the allowed
	// ones) and the nodes made in /dev.
	rule := func(d *devices.Rule) string {
		return fmt.Sprintf("%c %d:%d %s %v", d.Type, d.Major, d.Minor, d.Permissions, d.Allow)
	}
	var rules, wantRules []string
	for _, d := range cfg.Cgroups.Resources.Devices {
		rules = append(rules, rule(d))
	}
	for _, d := range cd.Cgroups.Resources.Devices {
		wantRules = append(wantRules, rule(d))
	}
	if !slices.Equal(rules, wantRules) {
		t.Errorf("device rules %v, containerd %v", rules, wantRules)
	}
	var nodes, wantNodes []string
	for _, d := range cfg.Devices {
		nodes = append(nodes, fmt.Sprintf("%s %s %v %d:%d", d.Path, rule(&d.Rule), d.FileMode, d.Uid, d.Gid))
	}
	for _, d := range cd.Devices {
		wantNodes = append(wantNodes, fmt.Sprintf("%s %s %v %d:%d", d.Path, rule(&d.Rule), d.FileMode, d.Uid, d.Gid))
	}
	if !sameSet(nodes, wantNodes) {
		t.Errorf("device nodes %v, containerd %v", nodes, wantNodes)
	}

	// RuntimeDefault, for the default set and for each capability that
	// adds rules, alone and with CAP_SYS_ADMIN (which also lifts the
	// clone flag mask).
	sets := [][]string{nil, {"ALL"}}
	for _, c := range capSyscalls {
		sets = append(sets, []string{c.cap}, []string{c.cap, "CAP_SYS_ADMIN"})
	}
	for _, add := range sets {
		s := unitSpec(t)
		s.CapAdd = add
		cfg, _, err := r.config(s)
		if err != nil {
			t.Fatal(err)
		}
		if s.Seccomp = SeccompRuntimeDefault; SeccompEnabled() {
			cfg, _, err = r.config(s)
		} else {
			// Without the build tag Start refuses the profile; the filter
			// it would apply is still compared.
			if _, _, err := r.config(s); err == nil || !strings.Contains(err.Error(), "without seccomp support") {
				t.Errorf("RuntimeDefault without seccomp support: %v", err)
			}
			cfg.Seccomp, err = specconv.SetupSeccomp(defaultSeccomp(cfg.Capabilities.Bounding))
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := specconv.SetupSeccomp(cdseccomp.DefaultProfile(&specs.Spec{Process: &specs.Process{
			Capabilities: &specs.LinuxCapabilities{Bounding: cfg.Capabilities.Bounding}}}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Seccomp == nil {
			t.Fatalf("caps %v: no seccomp filter under RuntimeDefault", add)
		}
		if got, want := seccompRules(cfg.Seccomp), seccompRules(want); !slices.Equal(got, want) {
			t.Errorf("caps %v: RuntimeDefault rules differ from containerd's:\nonly podrun: %v\nonly containerd: %v",
				add, minus(got, want), minus(want, got))
		}
		if cfg.Seccomp.DefaultAction != want.DefaultAction || !slices.Equal(cfg.Seccomp.Architectures, want.Architectures) ||
			!slices.Equal(cfg.Seccomp.Flags, want.Flags) || (cfg.Seccomp.DefaultErrnoRet == nil) != (want.DefaultErrnoRet == nil) {
			t.Errorf("caps %v: seccomp header %+v, containerd %+v", add, cfg.Seccomp, want)
		}
	}

	// Privileged: no masked or read-only paths and no seccomp, whatever
	// the profile says (containerd's CRI).
	s := unitSpec(t)
	s.Privileged, s.Seccomp = true, SeccompRuntimeDefault
	if cfg, _, err := r.config(s); err != nil || cfg.Seccomp != nil || len(cfg.MaskPaths) != 0 || len(cfg.ReadonlyPaths) != 0 {
		t.Errorf("privileged: %v seccomp %v masked %v readonly %v", err, cfg.Seccomp, cfg.MaskPaths, cfg.ReadonlyPaths)
	}
}

// seccompRules renders a filter's rules one per line, sorted.
func seccompRules(s *configs.Seccomp) []string {
	var out []string
	for _, c := range s.Syscalls {
		line := fmt.Sprintf("%s action=%d", c.Name, c.Action)
		if c.ErrnoRet != nil {
			line += fmt.Sprintf(" errno=%d", *c.ErrnoRet)
		}
		for _, a := range c.Args {
			line += fmt.Sprintf(" arg%d %d 0x%x 0x%x", a.Index, a.Op, a.Value, a.ValueTwo)
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// A Localhost profile that is missing or not JSON fails with containerd's
// messages and ErrSeccompProfile.
func TestSeccompLocalhostErrors(t *testing.T) {
	r := unitRuntime()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing.json"): `cannot load seccomp profile "` + filepath.Join(dir, "missing.json") + `": open`,
		bad:                                `decoding seccomp profile failed "` + bad + `"`,
		"relative.json":                    `cannot load seccomp profile "relative.json": not an absolute path`,
	} {
		s := unitSpec(t)
		s.Seccomp, s.SeccompProfile = SeccompLocalhost, path
		_, _, err := r.config(s)
		if err == nil || !errors.Is(err, ErrSeccompProfile) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q and ErrSeccompProfile", path, err, want)
		}
	}
	s := unitSpec(t)
	s.Seccomp = "Bogus"
	if _, _, err := r.config(s); err == nil || errors.Is(err, ErrSeccompProfile) {
		t.Errorf("unknown type: %v", err)
	}
}
