package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	for _, tc := range []struct {
		script string
		want   Exit
	}{
		{"exit 0", Exit{Code: 0}},
		{"exit 3", Exit{Code: 3}},
		{"echo hi", Exit{Code: 0}},
	} {
		t.Run(tc.script, func(t *testing.T) {
			exit, _ := e.run(e.spec(sb, "sh", "-c", tc.script))
			if exit.Code != tc.want.Code || exit.Signal != 0 || exit.OOMKilled || exit.Unknown || exit.FinishedAt.IsZero() {
				t.Errorf("exit = %+v, want code %d", exit, tc.want.Code)
			}
		})
	}
}

func TestSignalKill(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	if err := c.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exit := wait(t, c, 10*time.Second)
	if exit.Code != 137 || exit.Signal != unix.SIGKILL || exit.OOMKilled {
		t.Errorf("exit = %+v, want 137 by SIGKILL, not OOM", exit)
	}
	if err := c.Signal(unix.SIGTERM); err != nil {
		t.Errorf("Signal after exit: %v, want nil", err)
	}
}

func TestSignalTrap(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", `trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done`)
	ready := make(chan struct{})
	var once sync.Once
	s.Output = func(stream, line string) {
		if line == "ready" {
			once.Do(func() { close(ready) })
		}
	}
	c := e.start(s)
	<-ready // the trap is installed
	if err := c.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exit := wait(t, c, 10*time.Second)
	if exit.Code != 7 || exit.Signal != 0 {
		t.Errorf("exit = %+v, want 7 from the trap", exit)
	}
	log, _ := os.ReadFile(s.LogPath)
	if !strings.Contains(string(log), " stdout F got TERM\n") {
		t.Errorf("log lacks the trap's line:\n%s", log)
	}
}

// A PID 1 without a handler ignores SIGTERM: stopping needs SIGKILL.
func TestStopWithoutHandler(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sleep", "1000")
	c := e.start(s)
	if err := c.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
		log, _ := os.ReadFile(s.LogPath)
		t.Fatalf("PID 1 without a handler died of SIGTERM: %+v\n%s", c.Exit(), log)
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exit := wait(t, c, 10*time.Second); exit.Code != 137 {
		t.Errorf("exit = %+v, want 137", exit)
	}
}

func TestStartErrors(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	for name, mutate := range map[string]func(*Spec){
		"missing executable": func(s *Spec) { s.Args = []string{"/no/such/binary"} },
		"relative cgroup":    func(s *Spec) { s.CgroupPath = "podrun/x" },
		"no sandbox":         func(s *Spec) { s.Sandbox = nil },
		"bad capability":     func(s *Spec) { s.CapAdd = []string{"NOT_A_CAP"} },
		"bad id":             func(s *Spec) { s.ID = "a/b" },
		"missing mount":      func(s *Spec) { s.Mounts = []Mount{{Source: "/no/such", Destination: "/x"}} },
	} {
		t.Run(name, func(t *testing.T) {
			s := e.spec(sb, "true")
			mutate(s)
			c, err := e.rt.Start(context.Background(), s)
			if err == nil {
				c.Destroy()
				t.Fatal("Start succeeded")
			}
			t.Logf("error: %v", err)
			if _, err := os.Stat(s.LogPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("log file left behind: %v", err)
			}
			if ids, _ := e.rt.List(); len(ids) != 0 {
				t.Errorf("containers left behind: %v", ids)
			}
			if entries, _ := os.ReadDir(e.rt.root); len(entries) != 1 { // sandboxes/
				t.Errorf("state left behind: %v", entries)
			}
		})
	}
}

func TestUser(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", "id -u; id -g; id -G")
	uid, gid, groups, err := ResolveUser(s.Rootfs, "app")
	if err != nil {
		t.Fatal(err)
	}
	s.UID, s.GID, s.AdditionalGIDs = uid, gid, groups
	if _, log := e.run(s); strings.Join(texts(log), ",") != "1000,1000,1000 10 29" {
		t.Errorf("id as app: %q", texts(log))
	}
	s = e.spec(sb, "sh", "-c", "id -u; id -g")
	s.UID, s.GID = 1000, 1000
	if _, log := e.run(s); strings.Join(texts(log), ",") != "1000,1000" {
		t.Errorf("id as 1000: %q", texts(log))
	}
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	capEff := func(mutate func(*Spec)) string {
		s := e.spec(sb, "grep", "CapEff", "/proc/self/status")
		mutate(s)
		_, log := e.run(s)
		return strings.Join(strings.Fields(strings.Join(texts(log), "")), " ")
	}
	if got := capEff(func(s *Spec) { s.CapDrop = []string{"ALL"} }); got != "CapEff: 0000000000000000" {
		t.Errorf("drop ALL: %s", got)
	}
	// containerd's default set: chown dac_override fowner fsetid kill setgid
	// setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
	if got := capEff(func(*Spec) {}); got != "CapEff: 00000000a80425fb" {
		t.Errorf("default: %s", got)
	}
	if got := capEff(func(s *Spec) { s.CapDrop = []string{"ALL"}; s.CapAdd = []string{"NET_ADMIN"} }); got != "CapEff: 0000000000001000" {
		t.Errorf("drop ALL, add NET_ADMIN: %s", got)
	}
	// Privileged: everything this process has (it may lack CAP_SYS_RESOURCE).
	var own uint64
	for i, n := range capNames {
		if e.rt.ownCaps[n] {
			own |= 1 << i
		}
	}
	if got, want := capEff(func(s *Spec) { s.Privileged = true }), fmt.Sprintf("CapEff: %016x", own); got != want {
		t.Errorf("privileged: %s, want %s", got, want)
	}
}

func TestReadOnlyRootfs(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", "touch /x && echo wrote; touch /dev/shm/y && echo shm ok")
	s.ReadOnlyRootfs = true
	exit, log := e.run(s)
	got := strings.Join(texts(log), "|")
	if strings.Contains(got, "wrote") || !strings.Contains(got, "Read-only file system") || !strings.Contains(got, "shm ok") {
		t.Errorf("read-only rootfs: exit %+v, output %q", exit, got)
	}
	if _, err := os.Stat(filepath.Join(s.Rootfs, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file written into the read-only rootfs: %v", err)
	}
}

func TestMountsAndEnv(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ro := t.TempDir()
	s := e.spec(sb, "sh", "-c", `cat /data/in; echo out > /data/out; touch /ro/x || echo ro refused; echo "$FOO $HOSTNAME $PATH"; pwd`)
	s.Mounts = []Mount{{Source: vol, Destination: "/data"}, {Source: ro, Destination: "/ro", ReadOnly: true}}
	s.Env = []string{"FOO=bar"}
	s.Cwd = "/tmp"
	_, log := e.run(s)
	host, _ := os.Hostname()
	want := []string{"from host", "ro refused", "bar " + host + " " + strings.TrimPrefix(defaultPath, "PATH="), "/tmp"}
	var stdout, stderr []string
	for _, r := range parseLog(t, log) {
		if r.stream == "stdout" {
			stdout = append(stdout, r.text)
		} else {
			stderr = append(stderr, r.text)
		}
	}
	if !slices.Equal(stdout, want) || len(stderr) != 1 || !strings.Contains(stderr[0], "Read-only file system") {
		t.Errorf("stdout %q, want %q; stderr %q", stdout, want, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "out")); string(b) != "out\n" {
		t.Errorf("volume write: %q", b)
	}
}

func TestOOMKilled(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "tail", "/dev/zero")
	limit := int64(32 << 20)
	s.Resources = &cgroups.Resources{Memory: limit, MemorySwap: limit}
	exit, _ := e.run(s)
	if !exit.OOMKilled || exit.Code != 137 {
		t.Errorf("exit = %+v, want OOMKilled 137", exit)
	}
}

func TestDestroyIdempotent(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	for i := range 2 {
		if err := c.Destroy(); err != nil {
			t.Fatalf("Destroy #%d: %v", i+1, err)
		}
	}
	if exit := c.Exit(); exit.Code != 137 {
		t.Errorf("exit after Destroy = %+v, want 137", exit)
	}
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup/memory", e.cgParent, sb.ID(), c.ID())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container cgroup left: %v", err)
	}
	for i := range 2 {
		if err := sb.Destroy(); err != nil {
			t.Fatalf("sandbox Destroy #%d: %v", i+1, err)
		}
	}
}

func TestList(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	ids, err := e.rt.List()
	if err != nil || len(ids) != 1 || ids[0] != c.ID() {
		t.Errorf("List = %v, %v; want [%s]", ids, err, c.ID())
	}
}

// A new Runtime value (as after a restart of the process) re-attaches:
// Signal works and Done fires with the exit status unknown.
func TestLoad(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", `trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done`)
	ready := make(chan struct{})
	var once sync.Once
	s.Output = func(_, line string) { once.Do(func() { close(ready) }) }
	s.Env = []string{"MARK=loaded"}
	s.UID = 1000
	orig := e.start(s)
	<-ready

	rt2, err := New(e.rt.root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rt2.Load(orig.ID())
	if err != nil {
		t.Fatal(err)
	}
	// Load reads the init's own start time; Start noted the time it
	// returned, later by the whole start (over a second under qemu TCG).
	if early := orig.StartedAt().Sub(c.StartedAt()); c.Pid() != orig.Pid() || early < -20*time.Millisecond || early > 5*time.Second {
		t.Errorf("loaded pid %d started %v; original %d started %v", c.Pid(), c.StartedAt(), orig.Pid(), orig.StartedAt())
	}
	// Exec defaults survive in the container's state.
	if code, out := execOut(t, c, "sh", "-c", "echo $MARK $(id -u)"); code != 0 || out != "loaded 1000\n" {
		t.Errorf("exec in loaded container: %d %q", code, out)
	}
	if err := c.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exit := wait(t, c, 10*time.Second); !exit.Unknown {
		t.Errorf("loaded exit = %+v, want Unknown", exit)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if ids, _ := rt2.List(); len(ids) != 0 {
		t.Errorf("List after Destroy = %v", ids)
	}
}

// Containers started, exec'd into and killed from many goroutines at once.
func TestConcurrent(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{Hostname: "busy", SharePID: true})
	specs := make([]*Spec, 10)
	for i := range specs {
		specs[i] = e.spec(sb, "sleep", "1000")
	}
	var wg sync.WaitGroup
	for _, s := range specs {
		wg.Go(func() {
			c, err := e.rt.Start(context.Background(), s)
			if err != nil {
				t.Error(err)
				return
			}
			defer func() {
				if err := c.Destroy(); err != nil {
					t.Error(err)
				}
			}()
			var out strings.Builder
			if code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"hostname"}, Stdout: &out}); err != nil || code != 0 || out.String() != "busy\n" {
				t.Errorf("exec in %s: %d %v %q", c.ID(), code, err, out.String())
			}
			if err := c.Signal(unix.SIGKILL); err != nil {
				t.Error(err)
			}
			select { // not wait(): t.Fatal only on the test's goroutine
			case <-c.Done():
				if exit := c.Exit(); exit.Code != 137 {
					t.Errorf("%s exit %+v", c.ID(), exit)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s still running", c.ID())
			}
		})
	}
	wg.Wait()
}

func TestOOMScoreAdjAndRlimits(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	for _, tc := range []struct{ adj, want int }{{500, 500}, {-998, -998}} {
		if tc.adj < 0 && !e.rt.sysResource {
			tc.want = 0 // refused without CAP_SYS_RESOURCE: left at the default, with a warning
		}
		s := e.spec(sb, "sh", "-c", "cat /proc/self/oom_score_adj; ulimit -n")
		s.OOMScoreAdj = &tc.adj
		exit, log := e.run(s)
		if got, want := strings.Join(texts(log), " "), fmt.Sprintf("%d %d", tc.want, e.rt.nofile); exit.Code != 0 || got != want {
			t.Errorf("oom_score_adj %d: exit %d, output %q, want %q", tc.adj, exit.Code, got, want)
		}
	}
}

func TestPrivileged(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skip("host has no /dev/kmsg")
	}
	script := "test -c /dev/kmsg && echo kmsg; touch /sys/kernel/x 2>&1 | grep -q Read-only && echo sys-ro; grep -q CPU0 /proc/interrupts && echo interrupts"
	for _, tc := range []struct {
		priv bool
		want string
	}{{false, "sys-ro"}, {true, "kmsg interrupts"}} {
		s := e.spec(sb, "sh", "-c", script)
		s.Privileged = tc.priv
		if _, log := e.run(s); strings.Join(texts(log), " ") != tc.want {
			t.Errorf("privileged=%v: %q, want %q", tc.priv, texts(log), tc.want)
		}
	}
}

func TestRecursiveReadOnly(t *testing.T) {
	e := newEnv(t)
	if !RecursiveReadOnlySupported() {
		t.Skip("no mount_setattr")
	}
	vol := t.TempDir()
	sub := filepath.Join(vol, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(sub, unix.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sh", "-c", `touch /ro/sub/plain && echo plain sub writable; touch /rro/sub/rro && echo rro sub writable; touch /rro/top || echo rro top refused`)
	s.Mounts = []Mount{
		{Source: vol, Destination: "/ro", ReadOnly: true},
		{Source: vol, Destination: "/rro", ReadOnly: true, RecursiveReadOnly: true},
	}
	_, log := e.run(s)
	got := strings.Join(texts(log), "|")
	if !strings.Contains(got, "plain sub writable") || strings.Contains(got, "rro sub writable") ||
		!strings.Contains(got, "touch: /rro/sub/rro: Read-only file system") || !strings.Contains(got, "rro top refused") {
		t.Errorf("output %q", got)
	}
	// A recursive read-only mount that is writable or propagates is refused.
	for _, m := range []Mount{
		{Source: vol, Destination: "/rro", RecursiveReadOnly: true},
		{Source: vol, Destination: "/rro", ReadOnly: true, RecursiveReadOnly: true, Propagation: "rslave"},
	} {
		if _, _, err := containerMounts(&Spec{Mounts: []Mount{m}}, false); err == nil || !strings.Contains(err.Error(), "must be read-only and private") {
			t.Errorf("%+v: %v", m, err)
		}
	}
}

// Create leaves the process unstarted (a file it would write is absent)
// until Start; Discard leaves nothing; a Created left by a dead process
// is Unstarted once loaded, and Destroy removes it.
func TestCreateStartDiscard(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	var mark string // the file the latest spec's process writes
	spec := func() *Spec {
		dir := t.TempDir()
		mark = filepath.Join(dir, "mark")
		s := e.spec(sb, "sh", "-c", "touch /mnt/mark; exec sleep 1000")
		s.Mounts = []Mount{{Source: dir, Destination: "/mnt"}}
		return s
	}

	s := spec()
	cr, err := e.rt.Create(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the process ran before Start: %v", err)
	}
	c, err := cr.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	if code, _ := execOut(t, c, "test", "-e", "/mnt/mark"); code != 0 {
		t.Errorf("the process did not run after Start: exec test -e = %d", code)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}

	s = spec()
	if cr, err = e.rt.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	rt2, err := New(e.rt.root)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := rt2.Load(s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Unstarted() {
		t.Error("a created container loaded: Unstarted = false")
	}
	if err := cr.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.LogPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log file left behind: %v", err)
	}
	if ids, _ := e.rt.List(); len(ids) != 0 {
		t.Errorf("containers left behind: %v", ids)
	}
	for _, d := range cgroupDirs(s.CgroupPath, "memory", "pids") {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind: %v", d, err)
		}
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a discarded container's process ran: %v", err)
	}

	// A started one is not Unstarted.
	c = e.start(spec())
	if loaded, err := rt2.Load(c.ID()); err != nil || loaded.Unstarted() {
		t.Errorf("a started container loaded: Unstarted = %v, %v", loaded != nil && loaded.Unstarted(), err)
	}
}
