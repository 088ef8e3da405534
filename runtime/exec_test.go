package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		// Only the container's init is left in its cgroup, and the killed
		// exec's cgroup is removed, not kept for reuse (the execs before
		// this one left one idle, which this one took).
		for _, dir := range cgroupDirs(s.CgroupPath, "memory", "pids") {
			pids, err := cgroups.GetAllPids(dir)
			if err != nil || len(pids) != 1 || pids[0] != c.Pid() {
				t.Errorf("%s: processes after the timeout: %v, %v; want only init %d", dir, pids, err, c.Pid())
			}
			if left := subdirs(dir); len(left) != 0 {
				t.Errorf("%s: exec cgroups left after a timeout: %v, want none", dir, left)
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

// Execs that leave their cgroup empty hand it on; one that leaves a process
// running keeps it; concurrent ones never share; Destroy removes them all.
func TestExecCgroupReuse(t *testing.T) {
	e := newEnv(t)
	sb := e.sandbox(SandboxSpec{HostNetwork: true})
	c := e.start(e.spec(sb, "sleep", "1000"))
	paths := maps.Clone(c.cgm.GetPaths()) // Destroy clears c.cgm's

	first := execCgroupName(t, c, "")
	if again := execCgroupName(t, c, ""); again != first {
		t.Errorf("second exec ran in %s, want %s reused", again, first)
	}
	checkExecDirs(t, paths, first)

	// The daemon keeps first; the next exec needs another.
	if bg := execCgroupName(t, c, "sleep 1000 >/dev/null 2>&1 &"); bg != first {
		t.Errorf("exec ran in %s, want idle %s", bg, first)
	}
	next := execCgroupName(t, c, "")
	if next == first {
		t.Errorf("exec reused %s, which holds a process", first)
	}
	checkExecDirs(t, paths, first, next)

	// A process moved into an idle cgroup makes it as taken: here the
	// daemon, into next.
	pids, err := cgroups.GetAllPids(filepath.Join(c.cgm.Path("pids"), first))
	if err != nil || len(pids) != 1 {
		t.Fatalf("processes in %s: %v %v, want the daemon", first, pids, err)
	}
	for _, p := range paths {
		if err := cgroups.WriteCgroupProc(filepath.Join(p, next), pids[0]); err != nil {
			t.Fatal(err)
		}
	}
	if got := execCgroupName(t, c, ""); got == first || got == next {
		t.Errorf("exec ran in %s, want a new one, not %s (emptied but not idle) nor %s (taken)", got, first, next)
	}

	// Three at once: the idle one and two new, each alone in its own. Of
	// the three left empty, maxIdleExec stay.
	const n = 3
	seen := concurrentExecCgroups(t, c, n)
	if len(seen) != n || seen[first] || seen[next] {
		t.Errorf("concurrent execs ran in %v: want %d distinct, neither %s nor %s", slices.Collect(maps.Keys(seen)), n, first, next)
	}
	if t.Failed() {
		return
	}
	for ctrl, p := range paths {
		if got := subdirs(p); len(got) != 2+maxIdleExec || !slices.Contains(got, first) || !slices.Contains(got, next) {
			t.Errorf("cgroups below %s (%s): %v, want %s, %s and %d idle", p, ctrl, got, first, next, maxIdleExec)
		}
	}

	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	// An exec that comes too late (a probe racing the removal) fails and
	// makes no cgroup: on v1 it used to make the removed leaf again.
	if code, err := c.Exec(context.Background(), ExecSpec{Args: []string{"true"}}); err == nil {
		t.Errorf("Exec after Destroy = %d, nil; want an error", code)
	}
	for ctrl, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("container cgroup %s (%s) after Destroy: %v", p, ctrl, err)
		}
	}
}

// concurrentExecCgroups runs n execs at once, each printing its cgroup's
// name and then waiting until all have, and returns the names.
func concurrentExecCgroups(t *testing.T, c *Container, n int) map[string]bool {
	t.Helper()
	names := make(chan string, n)
	stdins := make([]*io.PipeWriter, n)
	errs := make(chan error, n)
	for i := range n {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		stdins[i] = inW
		go func() {
			_, err := c.Exec(context.Background(), ExecSpec{
				Args: []string{"sh", "-c", execCgroupScript + "; read x"}, Stdin: inR, Stdout: outW,
			})
			outW.Close()
			errs <- err
		}()
		go func() {
			line, _ := bufio.NewReader(outR).ReadString('\n')
			names <- strings.TrimSpace(line)
		}()
	}
	seen := map[string]bool{}
	for range n {
		seen[<-names] = true
	}
	for _, w := range stdins {
		w.Close()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	return seen
}

// execCgroupScript prints the name of the cgroup it runs in (its pids
// controller's on v1).
const execCgroupScript = `sed -n -e 's|.*:pids:.*/||p' -e 's|^0::.*/||p' /proc/self/cgroup | head -n 1`

// execCgroupName runs script in c and returns the name of the cgroup the
// exec ran in.
func execCgroupName(t *testing.T, c *Container, script string) string {
	t.Helper()
	code, out := execOut(t, c, "sh", "-c", script+"\n"+execCgroupScript)
	if code != 0 || out == "" {
		t.Fatalf("exec: %d %q", code, out)
	}
	return strings.TrimSpace(out)
}

// checkExecDirs fails t unless the cgroups below the container's leaf are
// exactly want, in each hierarchy it has.
func checkExecDirs(t *testing.T, leaves map[string]string, want ...string) {
	t.Helper()
	slices.Sort(want)
	for ctrl, p := range leaves {
		if got := subdirs(p); !slices.Equal(got, want) {
			t.Errorf("cgroups below %s (%s): %v, want %v", p, ctrl, got, want)
		}
	}
}

// subdirs lists the directories in dir, sorted.
func subdirs(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, en := range entries {
		if en.IsDir() {
			names = append(names, en.Name())
		}
	}
	return names
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
