package runtime

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/testutil"
)

func init() {
	// As in main: keep the main goroutine on the main thread, so no
	// namespace-switching goroutine ever wedges the thread-group leader.
	goruntime.LockOSThread()
}

// testRoot holds every test's state dirs, rootfs copies and namespaces;
// its name carries "podrun" so that leak checks see anything left.
var testRoot string

func TestMain(m *testing.M) {
	// The test binary is also libcontainer's init and the pause process.
	MaybeReexec()
	code := func() int {
		if testutil.RootEnabled() {
			dir, err := os.MkdirTemp("/run", "podrun-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			// A tmpfs of its own: the test rootfses are plain directories
			// that inherit their mount's flags, and Debian's initramfs
			// mounts /run noexec (every container would fail its exec).
			if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
				fmt.Fprintln(os.Stderr, "tmpfs for the test root:", err)
				return 1
			}
			defer unix.Unmount(dir, unix.MNT_DETACH)
			testRoot = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

// cgroupDirs returns where the cgroup path lives: one directory per
// controller on v1, the one directory on v2.
func cgroupDirs(path string, controllers ...string) []string {
	if cgroups.IsCgroup2UnifiedMode() {
		return []string{filepath.Join("/sys/fs/cgroup", path)}
	}
	var dirs []string
	for _, c := range controllers {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", c, path))
	}
	return dirs
}

func randHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var baseRootfs = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(testRoot, "base-rootfs")
	if err := writeBusyboxRootfs(dir); err != nil {
		return "", err
	}
	return dir, nil
})

// writeBusyboxRootfs builds a minimal root filesystem from /bin/busybox.
func writeBusyboxRootfs(dir string) error {
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return err
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(dir, "bin/busybox"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if app := sc.Text(); app != "busybox" {
			if err := os.Symlink("busybox", filepath.Join(dir, "bin", app)); err != nil {
				return err
			}
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			"app:x:1000:1000:app:/home/app:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group": "root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:root,app\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// newRootfs returns a private copy of the busybox rootfs (hard links to one
// copy of the binary; directories and /etc are the test's own).
func newRootfs(t testing.TB) string {
	t.Helper()
	base, err := baseRootfs()
	if err != nil {
		t.Fatalf("base rootfs: %v", err)
	}
	dir := filepath.Join(testRoot, "rootfs-"+randHex())
	err = filepath.WalkDir(base, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		to := filepath.Join(dir, rel)
		switch {
		case e.IsDir():
			fi, err := e.Info()
			if err != nil {
				return err
			}
			if err := os.Mkdir(to, 0o755); err != nil {
				return err
			}
			return os.Chmod(to, fi.Mode().Perm()|fi.Mode()&os.ModeSticky)
		case e.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case rel == "bin/busybox":
			return os.Link(p, to)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	if err != nil {
		t.Fatalf("rootfs: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// env is one test's world: a Runtime, a cgroup parent and leak checks that
// run after every other cleanup of the test.
type env struct {
	t        testing.TB
	rt       *Runtime
	cgParent string // absolute cgroup path under which the test's containers live
}

func newEnv(t testing.TB) *env {
	t.Helper()
	testutil.RequiresRoot(t)
	rt, err := New(filepath.Join(testRoot, "state"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, rt: rt, cgParent: "/podrun-test-" + randHex()}
	t.Cleanup(e.checkClean) // registered first: runs last
	return e
}

// checkClean fails the test if anything of it outlived its cleanups: a
// cgroup below its parent, a process in it, a mount or a pause process.
func (e *env) checkClean() {
	t := e.t
	m, err := manager.New(&cgroups.Cgroup{Path: e.cgParent, Resources: &cgroups.Resources{}})
	if err != nil {
		t.Errorf("cgroup manager: %v", err)
		return
	}
	// Below the parent are pod cgroups (which the cgroups package owns, not
	// this one); below those, nothing may be left: no container, exec or
	// pause cgroup, hence no process.
	for ctrl, p := range m.GetPaths() {
		pods, _ := os.ReadDir(p) // a hierarchy never used is fine
		for _, pod := range pods {
			if !pod.IsDir() {
				continue
			}
			leaves, _ := os.ReadDir(filepath.Join(p, pod.Name()))
			for _, l := range leaves {
				if l.IsDir() {
					t.Errorf("cgroup left behind: %s (%s)", filepath.Join(p, pod.Name(), l.Name()), ctrl)
				}
			}
		}
		if pids, _ := cgroups.GetAllPids(p); len(pids) > 0 {
			t.Errorf("processes left in %s: %v", p, pids)
		}
	}
	if err := m.Destroy(); err != nil {
		t.Errorf("remove test cgroup parent: %v", err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, testRoot+"/") { // below the test root's own tmpfs
			t.Errorf("mount left behind: %s", line)
		}
	}
	if pids := pausePids(); len(pids) > 0 {
		t.Errorf("pause processes left behind: %v", pids)
	}
}

func pausePids() []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if err == nil && strings.HasPrefix(string(b), pauseArgv0+"\x00") {
			pids = append(pids, en.Name())
		}
	}
	return pids
}

// sandbox creates a sandbox destroyed at cleanup.
func (e *env) sandbox(s SandboxSpec) *Sandbox {
	e.t.Helper()
	if s.ID == "" {
		s.ID = "sb-" + randHex()
	}
	if !s.HostNetwork && s.NetNS == "" {
		s.NetNS = e.netns()
	}
	if s.CgroupPath == "" {
		s.CgroupPath = e.cgParent + "/" + s.ID
	}
	sb, err := e.rt.CreateSandbox(s)
	if err != nil {
		e.t.Fatalf("CreateSandbox: %v", err)
	}
	e.t.Cleanup(func() {
		if err := sb.Destroy(); err != nil {
			e.t.Errorf("sandbox Destroy: %v", err)
		}
	})
	return sb
}

// netns pins a new network namespace (as the netns package will) and
// removes it at cleanup.
func (e *env) netns() string {
	t := e.t
	t.Helper()
	p := filepath.Join(testRoot, "netns-"+randHex())
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("/proc/thread-self/ns/net", p, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		os.Remove(p)
		t.Fatalf("netns: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount netns: %v", err)
		}
		os.Remove(p)
	})
	return p
}

// spec returns a container spec in sb running args, with a fresh rootfs
// and a log file in the test's temp dir.
func (e *env) spec(sb *Sandbox, args ...string) *Spec {
	id := "c-" + randHex()
	return &Spec{
		ID: id, Rootfs: newRootfs(e.t), Sandbox: sb, Args: args,
		CgroupPath: e.cgParent + "/" + sb.ID() + "/" + id,
		LogPath:    filepath.Join(e.t.TempDir(), "logs", id+".log"),
	}
}

// start starts s and destroys the container at cleanup.
func (e *env) start(s *Spec) *Container {
	e.t.Helper()
	c, err := e.rt.Start(context.Background(), s)
	if err != nil {
		e.t.Fatalf("Start %v: %v", s.Args, err)
	}
	e.t.Cleanup(func() {
		if err := c.Destroy(); err != nil {
			e.t.Errorf("Destroy: %v", err)
		}
		if _, err := os.Stat(filepath.Join(e.rt.root, c.ID())); !os.IsNotExist(err) {
			e.t.Errorf("state dir of %s left behind: %v", c.ID(), err)
		}
	})
	return c
}

// wait returns the container's exit, failing the test after d.
func wait(t testing.TB, c *Container, d time.Duration) Exit {
	t.Helper()
	select {
	case <-c.Done():
		return c.Exit()
	case <-time.After(d):
		t.Fatalf("container %s still running after %v", c.ID(), d)
		return Exit{}
	}
}

// run starts args in a new host-network sandbox and waits for the exit.
func (e *env) run(s *Spec) (Exit, string) {
	e.t.Helper()
	c := e.start(s)
	exit := wait(e.t, c, 20*time.Second)
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		e.t.Fatal(err)
	}
	return exit, string(b)
}

// texts returns the text of a CRI log's records.
func texts(log string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if f := strings.SplitN(line, " ", 4); len(f) == 4 {
			out = append(out, f[3])
		}
	}
	return out
}

// execOut runs args in c and returns the exit code and combined output.
func execOut(t testing.TB, c *Container, args ...string) (int, string) {
	t.Helper()
	var out strings.Builder
	code, err := c.Exec(context.Background(), ExecSpec{Args: args, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("Exec %v: %v", args, err)
	}
	return code, out.String()
}
