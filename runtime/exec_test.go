package runtime

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
)

func TestExec(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	s := e.spec(sb, "sleep", "1000")
	s.Env = []string{"A=container"}
	c := e.start(s)

	t.Run("output and exit code", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code, err := c.Exec(context.Background(), ExecSpec{
			Args:   []string{"sh", "-c", "echo out $A $B; echo err >&2; exit 3"},
			Env:    []string{"B=exec"},
			Stdout: &out, Stderr: &errOut,
		})
		if err != nil || code != 3 || out.String() != "out container exec\n" || errOut.String() != "err\n" {
			t.Errorf("Exec = %d, %v; stdout %q stderr %q", code, err, out.String(), errOut.String())
		}
	})
	t.Run("stdin, user and cwd", func(t *testing.T) {
		var out bytes.Buffer
		uid := uint32(65534)
		code, err := c.Exec(context.Background(), ExecSpec{
			Args:  []string{"sh", "-c", "cat; id -u; pwd"},
			Stdin: strings.NewReader("from stdin\n"), Stdout: &out,
			UID: &uid, GID: &uid, Cwd: "/tmp",
		})
		if err != nil || code != 0 || out.String() != "from stdin\n65534\n/tmp\n" {
			t.Errorf("Exec = %d, %v; stdout %q", code, err, out.String())
		}
	})
	t.Run("missing executable", func(t *testing.T) {
		code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"no-such-binary"}})
		if err == nil {
			t.Fatalf("Exec of a missing binary = %d, nil; want an error", code)
		}
		t.Logf("error: %v", err)
	})
	t.Run("signalled", func(t *testing.T) {
		code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"sh", "-c", "kill -KILL $$"}})
		if err != nil || code != 137 {
			t.Errorf("Exec = %d, %v; want 137", code, err)
		}
	})
	t.Run("timeout kills the whole tree", func(t *testing.T) {
		// Long enough for sh to start and echo on a slow machine: under
		// qemu TCG on a loaded host one exec takes over a second.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var out bytes.Buffer
		start := time.Now()
		code, err := c.Exec(ctx, ExecSpec{
			Args:   []string{"sh", "-c", "sleep 100 & sleep 100 & echo started; sleep 100"},
			Stdout: &out,
		})
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Exec = %d, %v; want DeadlineExceeded", code, err)
		}
		if took > 6*time.Second {
			t.Errorf("Exec returned after %v", took)
		}
		if out.String() != "started\n" {
			t.Errorf("output before the timeout: %q", out.String())
		}
		// Only the container's init is left in its cgroup, and no exec
		// cgroup remains.
		for _, dir := range cgroupDirs(s.CgroupPath, "memory", "pids") {
			pids, err := cgroups.GetAllPids(dir)
			if err != nil || len(pids) != 1 || pids[0] != c.Pid() {
				t.Errorf("%s: processes after the timeout: %v, %v; want only init %d", dir, pids, err, c.Pid())
			}
			entries, _ := os.ReadDir(dir)
			for _, en := range entries {
				if en.IsDir() {
					t.Errorf("exec cgroup left: %s", filepath.Join(dir, en.Name()))
				}
			}
		}
		if left := pidsInNamespaceOf(c.Pid()); len(left) != 1 {
			t.Errorf("processes in the container's PID namespace: %v, want only init %d", left, c.Pid())
		}
	})
	t.Run("background child keeps output open", func(t *testing.T) {
		// The exec'd shell exits at once; its child holds stdout. Exec
		// returns the code after the bounded drain, not after 100 s.
		start := time.Now()
		code, out := execOut(t, c, "sh", "-c", "sleep 100 & echo bye")
		if code != 0 || out != "bye\n" || time.Since(start) > 5*time.Second {
			t.Errorf("Exec = %d %q after %v", code, out, time.Since(start))
		}
		// The child keeps running, as with CRI; Destroy ends it.
		if left := pidsInNamespaceOf(c.Pid()); len(left) != 2 {
			t.Errorf("processes in the container: %v, want init and the background sleep", left)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		var out bytes.Buffer
		resize := make(chan [2]uint16, 1)
		resize <- [2]uint16{100, 40}
		code, err := c.Exec(context.Background(), ExecSpec{
			Args: []string{"sh", "-c", "sleep 0.2; stty size; tty"}, TTY: true, Stdout: &out, Resize: resize,
		})
		got := strings.ReplaceAll(out.String(), "\r", "")
		if err != nil || code != 0 || !strings.HasPrefix(got, "40 100\n/dev/pts/") {
			t.Errorf("Exec = %d, %v; output %q", code, err, got)
		}
	})
	t.Run("terminal of a size from the start", func(t *testing.T) {
		var out bytes.Buffer
		code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"stty", "size"}, TTY: true, Stdout: &out, Size: [2]uint16{111, 37}})
		if got := strings.ReplaceAll(out.String(), "\r", ""); err != nil || code != 0 || got != "37 111\n" {
			t.Errorf("Exec = %d, %v; output %q", code, err, got)
		}
	})
}

// pidsInNamespaceOf lists the live (not zombie) processes in pid's PID
// namespace.
func pidsInNamespaceOf(pid int) []int {
	ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
	if err != nil {
		return nil
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		if l, err := os.Readlink("/proc/" + en.Name() + "/ns/pid"); err != nil || l != ns {
			continue
		}
		if b, err := os.ReadFile("/proc/" + en.Name() + "/stat"); err == nil && !bytes.Contains(b, []byte(") Z ")) {
			pids = append(pids, p)
		}
	}
	return pids
}

func TestExecAfterExit(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	c := e.start(e.spec(sb, "true"))
	wait(t, c, 10*time.Second)
	if code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"true"}}); err == nil {
		t.Errorf("Exec in an exited container = %d, nil; want an error", code)
	}
}

// On plain cgroup v1 (no unified hierarchy, so no cgroup.kill) killCgroup
// freezes the cgroup and kills its processes one by one.
func TestKillCgroupByFreezing(t *testing.T) {
	e := newEnv(t)
	if cgroups.IsCgroup2UnifiedMode() {
		t.Skip("cgroup v1 only")
	}
	cg := &cgroups.Cgroup{Path: e.cgParent + "/pod/victims", Resources: &cgroups.Resources{}}
	m, err := manager.New(cg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(-1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Error(err)
		}
	})
	paths := maps.Clone(m.GetPaths()) // GetPaths returns m's own map
	delete(paths, "")                 // no unified hierarchy: no cgroup.kill
	v1, err := manager.NewWithPaths(cg, paths)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/busybox", "sh", "-c", "read x; sleep 100 & sleep 100 & wait")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	stdin.Write([]byte("go\n")) // fork inside the cgroup
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if pids, _ := m.GetAllPids(); len(pids) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell's children never appeared")
		}
	}
	if err := killCgroup(v1); err != nil {
		t.Fatal(err)
	}
	if pids, err := m.GetAllPids(); err != nil || len(pids) != 0 {
		t.Errorf("left in the cgroup: %v %v", pids, err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("shell: %v, want killed", err)
	}
	if st, _ := v1.GetFreezerState(); st != cgroups.Thawed {
		t.Errorf("freezer left %v", st)
	}
}
