package runtime

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// Two containers of one pod share hostname, UTS, IPC and network
// namespaces, and not the host's; each has its own PID namespace.
func TestSandboxShared(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{Hostname: "pod-a"})
	a := e.start(e.spec(sb, "sleep", "1000"))
	b := e.start(e.spec(sb, "sleep", "1000"))

	host, _ := os.Hostname()
	for _, c := range []*Container{a, b} {
		if code, out := execOut(t, c, "hostname"); code != 0 || out != "pod-a\n" {
			t.Errorf("hostname in %s: %d %q", c.ID(), code, out)
		}
		if code, out := execOut(t, c, "sh", "-c", "echo $HOSTNAME"); code != 0 || out != "pod-a\n" {
			t.Errorf("$HOSTNAME in %s: %d %q", c.ID(), code, out)
		}
	}
	if h, _ := os.Hostname(); h != host {
		t.Errorf("host's hostname changed to %q", h)
	}
	ns := func(pid int, kind string) string {
		l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", kind))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	self := os.Getpid()
	for _, kind := range []string{"uts", "ipc", "net"} {
		if ns(a.Pid(), kind) != ns(b.Pid(), kind) || ns(a.Pid(), kind) == ns(self, kind) {
			t.Errorf("%s: a %s, b %s, host %s", kind, ns(a.Pid(), kind), ns(b.Pid(), kind), ns(self, kind))
		}
	}
	if ns(a.Pid(), "pid") == ns(b.Pid(), "pid") {
		t.Errorf("containers share a PID namespace without SharePID")
	}
	var st unix.Stat_t
	if err := unix.Stat(sb.st.Spec.NetNS, &st); err != nil || "net:["+strconv.Itoa(int(st.Ino))+"]" != ns(a.Pid(), "net") {
		t.Errorf("net namespace %s is not the sandbox's %s (%v)", ns(a.Pid(), "net"), sb.st.Spec.NetNS, err)
	}
	// A System V shared memory segment made in the pod's IPC namespace is
	// visible in both containers.
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies in the pod's namespace
		f, err := os.Open(sb.nsPath("ipc"))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWIPC); err != nil {
			errc <- err
			return
		}
		_, err = unix.SysvShmGet(unix.IPC_PRIVATE, 4096, unix.IPC_CREAT|0o600)
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("shmget in the pod: %v", err)
	}
	for _, c := range []*Container{a, b} {
		if code, out := execOut(t, c, "cat", "/proc/sysvipc/shm"); code != 0 || strings.Count(out, "\n") != 2 {
			t.Errorf("shm segments in %s: %d %q", c.ID(), code, out)
		}
	}
}

// With SharePID the pod's containers see each other's processes and the
// pause process is their PID 1.
func TestSharePID(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true, SharePID: true})
	a := e.start(e.spec(sb, "sleep", "1000"))
	b := e.start(e.spec(sb, "sleep", "2000"))
	code, out := execOut(t, b, "ps", "-o", "pid,args")
	if code != 0 || !strings.Contains(out, "sleep 1000") || !strings.Contains(out, "sleep 2000") {
		t.Errorf("ps in b: %d\n%s", code, out)
	}
	if code, out := execOut(t, a, "cat", "/proc/1/cmdline"); code != 0 || !strings.HasPrefix(out, pauseArgv0+"\x00") {
		t.Errorf("PID 1 of the pod: %d %q", code, out)
	}
	// Not PID 1, the container's init dies of an unhandled SIGTERM: 143.
	if err := a.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exit := wait(t, a, 10*time.Second); exit.Code != 143 || exit.Signal != unix.SIGTERM {
		t.Errorf("exit = %+v, want 143 by SIGTERM", exit)
	}
	// The pause process is in the pod's cgroup leaf.
	cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(sb.st.PausePid), "cgroup"))
	want := "memory:" + sb.st.Spec.CgroupPath + "/pause\n"
	if cgroups.IsCgroup2UnifiedMode() {
		want = "0::" + sb.st.Spec.CgroupPath + "/pause\n"
	}
	if err != nil || !strings.Contains(string(cg), want) {
		t.Errorf("pause cgroups: %v\n%s", err, cg)
	}
}

// A sandbox's leftover processes die with it, and a re-loaded sandbox
// (after a restart) can be destroyed.
func TestLoadSandbox(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{Hostname: "pod-b", SharePID: true})
	loaded, err := e.rt.LoadSandbox(sb.ID())
	if err != nil {
		t.Fatal(err)
	}
	if loaded.st != sb.st {
		t.Errorf("loaded %+v, created %+v", loaded.st, sb.st)
	}
	c := e.start(e.spec(loaded, "hostname"))
	if exit := wait(t, c, 10*time.Second); exit.Code != 0 {
		t.Errorf("container in loaded sandbox: %+v", exit)
	}
	pause := sb.st.PausePid
	// Destroy through the loaded value, as a restarted process would: it
	// is not the pause's parent, so the original value reaps it after.
	if err := loaded.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := loaded.Destroy(); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if err := sb.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pause)); !os.IsNotExist(err) {
		t.Errorf("pause process %d still exists: %v", pause, err)
	}
	if _, err := os.Stat(sb.dir); !os.IsNotExist(err) {
		t.Errorf("sandbox dir left: %v", err)
	}
	if _, err := e.rt.LoadSandbox(sb.ID()); err == nil {
		t.Errorf("LoadSandbox after Destroy succeeded")
	}
}

func TestCreateSandboxErrors(t *testing.T) {
	e := newEnv(t)
	for name, s := range map[string]SandboxSpec{
		"bad id":          {ID: "../x", HostNetwork: true},
		"no netns":        {ID: "sb-" + randHex()},
		"missing netns":   {ID: "sb-" + randHex(), NetNS: "/no/such/netns"},
		"host and shared": {ID: "sb-" + randHex(), HostNetwork: true, HostPID: true, SharePID: true},
		"long hostname":   {ID: "sb-" + randHex(), HostNetwork: true, Hostname: strings.Repeat("h", 65)},
	} {
		if sb, err := e.rt.CreateSandbox(s); err == nil {
			sb.Destroy()
			t.Errorf("%s: CreateSandbox succeeded", name)
		}
	}
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	if _, err := e.rt.CreateSandbox(SandboxSpec{ID: sb.ID(), HostNetwork: true}); err == nil {
		t.Errorf("second sandbox with the same id succeeded")
	}
	if entries, _ := os.ReadDir(filepath.Join(e.rt.root, sandboxesDir)); len(entries) != 1 {
		t.Errorf("sandboxes left: %v", entries)
	}
}

func TestStartAfterPauseDied(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true, SharePID: true})
	if err := sb.pause.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	sb.pause.Wait()
	_, err := e.rt.Start(t.Context(), e.spec(sb, "true"))
	if err == nil || !strings.Contains(err.Error(), "pause process") {
		t.Errorf("Start in a sandbox whose pause died: %v", err)
	}
}

// The pause process ends on SIGTERM (a supervisor's plain kill), taking
// the pod's PID namespace with it; Destroy after that still cleans up.
func TestPauseEndsOnSIGTERM(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true, SharePID: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	if err := sb.pause.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exit := wait(t, c, 10*time.Second); exit.Code != 137 {
		t.Errorf("container after the pause ended: %+v, want 137", exit)
	}
}

// The pause process is a sandbox process like the pause container: in the
// pod's network, UTS and IPC namespaces, on an empty root, unprivileged.
// Through it (PID 1 of a shared PID namespace) a container sees neither the
// host's sockets, nor its mounts, nor its root, with or without
// CAP_SYS_PTRACE.
func TestPauseIsolated(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{Hostname: "pod-p", SharePID: true})
	pid := strconv.Itoa(sb.st.PausePid)

	ns := func(pid, kind string) string {
		l, err := os.Readlink(filepath.Join("/proc", pid, "ns", kind))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	var st unix.Stat_t
	if err := unix.Stat(sb.st.Spec.NetNS, &st); err != nil || ns(pid, "net") != "net:["+strconv.FormatUint(st.Ino, 10)+"]" {
		t.Errorf("pause net namespace %s, pod's %s (%v)", ns(pid, "net"), sb.st.Spec.NetNS, err)
	}
	self := strconv.Itoa(os.Getpid())
	for _, kind := range []string{"uts", "ipc", "mnt"} {
		if ns(pid, kind) == ns(self, kind) {
			t.Errorf("pause is in the host's %s namespace %s", kind, ns(pid, kind))
		}
	}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Uid:\t65535\t65535\t65535\t65535\n", "Gid:\t65535\t65535\t65535\t65535\n", "Groups:\t \n",
		"CapInh:\t0000000000000000\n", "CapPrm:\t0000000000000000\n", "CapEff:\t0000000000000000\n",
		"CapBnd:\t0000000000000000\n", "CapAmb:\t0000000000000000\n", "NoNewPrivs:\t1\n",
	} {
		if !strings.Contains(string(status), want) {
			t.Errorf("pause status lacks %q:\n%s", want, status)
		}
	}
	// As root the test reads what a container would try to reach.
	mi, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil || strings.Count(string(mi), "\n") != 1 || !strings.Contains(string(mi), " / / ro,") {
		t.Errorf("pause mounts (%v):\n%s", err, mi)
	}
	if entries, err := os.ReadDir("/proc/" + pid + "/root"); err != nil || len(entries) != 0 {
		t.Errorf("pause root: %v %v", entries, err)
	}

	// Host markers: a listening TCP port and an abstract unix socket.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := fmt.Sprintf(":%04X ", l.Addr().(*net.TCPAddr).Port)
	marker := "@podrun-host-marker-" + randHex()
	u, err := net.Listen("unix", marker)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()

	for _, caps := range [][]string{nil, {"SYS_PTRACE"}} {
		s := e.spec(sb, "sleep", "1000")
		s.CapAdd = caps
		c := e.start(s)
		_, out := execOut(t, c, "cat", "/proc/1/net/tcp", "/proc/1/net/unix")
		if strings.Contains(out, port) || strings.Contains(out, marker) {
			t.Errorf("caps %v: host sockets seen through /proc/1/net:\n%s", caps, out)
		}
		_, out = execOut(t, c, "cat", "/proc/1/mountinfo")
		if strings.Contains(out, testRoot) || strings.Count(out, "\n") > 1 {
			t.Errorf("caps %v: host mounts seen through /proc/1/mountinfo:\n%s", caps, out)
		}
		_, out = execOut(t, c, "ls", "-a", "/proc/1/root/")
		if strings.Contains(out, "bin") || strings.Contains(out, "etc") || strings.Contains(out, "run") {
			t.Errorf("caps %v: host root seen through /proc/1/root:\n%s", caps, out)
		}
		if code, out := execOut(t, c, "cat", "/proc/1/root/etc/hostname"); code == 0 {
			t.Errorf("caps %v: read the host's /etc/hostname through /proc/1/root: %q", caps, out)
		}
	}
}

// The pause process reaps the orphans of the shared PID namespace.
func TestPauseReaps(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true, SharePID: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	// The inner sh exits at once; its sleep, orphaned, goes to PID 1.
	code, out := execOut(t, c, "sh", "-c", `sh -c "sleep 0.2 &"; sleep 1; ps -o pid,ppid,stat,args`)
	if code != 0 || strings.Contains(out, " Z ") || strings.Contains(out, "<defunct>") {
		t.Errorf("zombies in the pod: %d\n%s", code, out)
	}
}
