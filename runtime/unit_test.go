package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(`# comment
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
svc:x:1001:50::/:/bin/false
broken:x:2
`), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte(`root:x:0:
app:x:1000:
staff:x:50:
wheel:x:10:app,svc
audio:x:29:root,app
`), 0o644)
	for _, tc := range []struct {
		user     string
		uid, gid uint32
		groups   []uint32
		err      bool
	}{
		{user: "", uid: 0, gid: 0, groups: []uint32{0, 29}},
		{user: "root", uid: 0, gid: 0, groups: []uint32{0, 29}},
		{user: "app", uid: 1000, gid: 1000, groups: []uint32{1000, 10, 29}},
		{user: "1000", uid: 1000, gid: 1000, groups: []uint32{1000, 10, 29}},
		{user: "svc", uid: 1001, gid: 50, groups: []uint32{50, 10}},
		{user: "4242", uid: 4242, gid: 0, groups: []uint32{0}},
		{user: "4242:7", uid: 4242, gid: 7, groups: []uint32{7}},
		{user: "app:staff", uid: 1000, gid: 50, groups: []uint32{50, 10, 29}},
		{user: "1000:0", uid: 1000, gid: 0, groups: []uint32{0, 10, 29}},
		{user: "nobody", err: true},
		{user: "app:nogroup", err: true},
		{user: "broken", err: true},
	} {
		uid, gid, groups, err := ResolveUser(root, tc.user)
		if tc.err {
			if err == nil {
				t.Errorf("%q: want an error, got %d:%d %v", tc.user, uid, gid, groups)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid || !slices.Equal(groups, tc.groups) {
			t.Errorf("%q = %d:%d %v, %v; want %d:%d %v", tc.user, uid, gid, groups, err, tc.uid, tc.gid, tc.groups)
		}
	}
	// A scratch image has no /etc/passwd: numbers still work, names do not.
	empty := t.TempDir()
	if uid, gid, _, err := ResolveUser(empty, "65534:65534"); err != nil || uid != 65534 || gid != 65534 {
		t.Errorf("numeric user in an empty rootfs: %d:%d %v", uid, gid, err)
	}
	if _, _, _, err := ResolveUser(empty, "app"); err == nil {
		t.Errorf("named user in an empty rootfs: no error")
	}
	// /etc/passwd is read inside the rootfs, even through an absolute symlink.
	os.MkdirAll(filepath.Join(empty, "etc"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(empty, "etc/passwd"))
	if _, _, _, err := ResolveUser(empty, "root"); err == nil {
		t.Errorf("resolved a user through a symlink to the host's /etc/passwd")
	}
}

func TestCapabilitySet(t *testing.T) {
	own := map[string]bool{}
	for _, c := range capNames {
		own[c] = c != "CAP_SYS_RESOURCE"
	}
	r := &Runtime{ownCaps: own}
	for _, tc := range []struct {
		priv      bool
		add, drop []string
		want      []string
		err       bool
	}{
		{want: defaultCaps},
		{drop: []string{"ALL"}, want: nil},
		{drop: []string{"all"}, add: []string{"net_admin"}, want: []string{"CAP_NET_ADMIN"}},
		{add: []string{"CAP_SYS_ADMIN"}, drop: []string{"KILL", "CHOWN"}, want: append(slices.DeleteFunc(slices.Clone(defaultCaps), func(c string) bool { return c == "CAP_KILL" || c == "CAP_CHOWN" }), "CAP_SYS_ADMIN")},
		{add: []string{"SYS_RESOURCE"}, want: defaultCaps}, // not held: left out with a warning
		{add: []string{"ALL"}, drop: []string{"NET_RAW"}, want: slices.DeleteFunc(slices.Clone(capNames), func(c string) bool { return c == "CAP_SYS_RESOURCE" || c == "CAP_NET_RAW" })},
		{priv: true, drop: []string{"ALL"}, want: slices.DeleteFunc(slices.Clone(capNames), func(c string) bool { return c == "CAP_SYS_RESOURCE" })},
		{add: []string{"NOPE"}, err: true},
	} {
		got, err := r.capabilities("c", tc.priv, tc.add, tc.drop)
		name := fmt.Sprintf("priv=%v add=%v drop=%v", tc.priv, tc.add, tc.drop)
		if tc.err != (err != nil) {
			t.Errorf("%s: error %v", name, err)
			continue
		}
		slices.Sort(got)
		want := slices.Sorted(slices.Values(tc.want))
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
}

func TestContainerMounts(t *testing.T) {
	src := t.TempDir()
	s := &Spec{Mounts: []Mount{
		{Source: src, Destination: "/a"},
		{Source: src, Destination: "/b", ReadOnly: true, Propagation: "rslave"},
	}}
	mounts, rootProp, err := containerMounts(s, false)
	if err != nil {
		t.Fatal(err)
	}
	a, b := mounts[len(mounts)-2], mounts[len(mounts)-1]
	if a.Flags != unix.MS_BIND|unix.MS_REC || a.PropagationFlags[0] != unix.MS_PRIVATE|unix.MS_REC {
		t.Errorf("/a: %+v", a)
	}
	if b.Flags != unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY || b.PropagationFlags[0] != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("/b: %+v", b)
	}
	if rootProp != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("root propagation %#x", rootProp)
	}
	s.Mounts = append(s.Mounts, Mount{Source: src, Destination: "/c", Propagation: "rshared"})
	if _, rootProp, _ = containerMounts(s, false); rootProp != unix.MS_SHARED|unix.MS_REC {
		t.Errorf("root propagation with a shared mount %#x", rootProp)
	}
	for _, m := range []Mount{
		{Source: "rel", Destination: "/x"},
		{Source: src, Destination: "x"},
		{Source: src, Destination: "/x", Propagation: "sideways"},
	} {
		if _, _, err := containerMounts(&Spec{Mounts: []Mount{m}}, false); err == nil {
			t.Errorf("%+v: no error", m)
		}
	}
	// The default mounts: containerd's, with sysfs and cgroup read-only.
	mounts, _, _ = containerMounts(&Spec{}, false)
	var dests []string
	for _, m := range mounts {
		dests = append(dests, m.Destination)
		if (m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup") && m.Flags&unix.MS_RDONLY == 0 {
			t.Errorf("%s is writable", m.Destination)
		}
	}
	if want := []string{"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"}; !slices.Equal(dests, want) {
		t.Errorf("default mounts %v, want %v", dests, want)
	}
}

func TestSystemdCgroupConfig(t *testing.T) {
	p := "/podrun.slice/podrun-burstable.slice/podrun-burstable-pod1_2.slice/podrun-burstable-pod1_2-app.scope"
	if !systemdScopePath(p) {
		t.Fatalf("%s not taken for a scope path", p)
	}
	c := cgroupConfig(p, true, nil)
	if !c.Systemd || c.Path != "" || c.Parent != "podrun-burstable-pod1_2.slice" || c.ScopePrefix+"-"+c.Name+".scope" != path.Base(p) {
		t.Errorf("cgroupConfig(%s) = %+v", p, c)
	}
	if back := cgroupPathOf(c); back != p {
		t.Errorf("cgroupPathOf(cgroupConfig(%s)) = %s", p, back)
	}
	if back := cgroupPathOf(cgroupConfig("/podrun/pod1/app", false, nil)); back != "/podrun/pod1/app" {
		t.Errorf("cgroupfs: cgroupPathOf = %s", back)
	}
	for _, bad := range []string{"/podrun/burstable/pod1/app", "/podrun.slice/app.scope", "/podrun/x-app.scope"} {
		if systemdScopePath(bad) {
			t.Errorf("%s taken for a scope path", bad)
		}
	}
}

// zombie starts bin under the name name and waits until it is a zombie
// child of this process.
func zombie(t *testing.T, name string) *exec.Cmd {
	t.Helper()
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink("/bin/true", link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(stat); err == nil && strings.Contains(string(b), ") Z ") {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become a zombie", name)
		}
	}
}

func TestReapStraysReapsOnlyRuncStages(t *testing.T) {
	stray := zombie(t, "runc:[2:INIT]")
	other := zombie(t, "true")
	if n := reapStrays(); n != 1 {
		t.Errorf("reaped %d, want 1 (the runc stage only)", n)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", stray.Process.Pid)); !os.IsNotExist(err) {
		t.Errorf("the runc stage is still there: %v", err)
	}
	if err := other.Wait(); err != nil {
		t.Errorf("another child was reaped by reapStrays: %v", err)
	}
}
