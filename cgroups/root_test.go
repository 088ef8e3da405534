package cgroups

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/testutil"
)

// hogEnv makes the test binary a memory hog: it waits for a line on stdin,
// touches that many MiB, says "allocated" and waits for stdin to close.
const hogEnv = "PODRUN_CGROUPS_TEST_HOG_MIB"

func TestMain(m *testing.M) {
	if n := os.Getenv(hogEnv); n != "" {
		mib, _ := strconv.Atoi(n)
		in := bufio.NewReader(os.Stdin)
		if _, err := in.ReadString('\n'); err != nil {
			os.Exit(2)
		}
		b := make([]byte, mib<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Println("allocated")
		_, _ = io.Copy(io.Discard, in)
		runtime.KeepAlive(b)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func randomName(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// realTree is a Tree on the machine's cgroupfs under a root of its own,
// with the host's default driver (systemd units where systemd runs),
// checked to be gone from every hierarchy (and systemd) afterwards.
func realTree(t *testing.T) Tree {
	t.Helper()
	testutil.RequiresRoot(t)
	tree := Tree{Root: "podruntest" + randomName(t), Driver: DefaultDriver()}
	t.Logf("cgroup driver %s, v2 %v", tree.DriverName(), tree.v2())
	t.Cleanup(func() {
		if err := tree.GC(func(string) bool { return false }); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		expectNoTree(t, tree)
	})
	return tree
}

// expectNoTree checks that nothing of tree is left: no root cgroup in any
// hierarchy, no systemd unit of its name.
func expectNoTree(t *testing.T, tree Tree) {
	t.Helper()
	hs, err := tree.hierarchies()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h, tree.qosPath(corev1.PodQOSGuaranteed))); err == nil {
			t.Errorf("left behind: %s", filepath.Join(h, tree.qosPath(corev1.PodQOSGuaranteed)))
		}
	}
	if tree.systemd() {
		out, err := exec.Command("systemctl", "list-units", "--plain", "--no-legend", tree.Root+"*").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("systemd units left: %s (%v)", out, err)
		}
	}
}

func TestRealCreateRemove(t *testing.T) {
	tree := realTree(t)
	tree.PidsLimit = 100
	g := uidPod(randomName(t), pod(inits(ctr("init", "", "cpu=100m,memory=32Mi")),
		ctr("a", "", "cpu=250m,memory=64Mi"), ctr("b", "", "cpu=250m,memory=64Mi")))
	b := uidPod(randomName(t), pod(nil, ctr("a", "cpu=100m", "cpu=1,memory=64Mi"), ctr("b", "memory=16Mi", "")))
	for _, p := range []*corev1.Pod{g, b} {
		if err := tree.CreatePod(p); err != nil {
			t.Fatal(err)
		}
	}
	gp, bp := tree.PodPath(g), tree.PodPath(b)
	if tree.v2() {
		// The kubelet's linear shares -> weight mapping: 512 -> 20, 102 -> 4.
		expectFiles(t, tree.dir("", gp), map[string]string{"cpu.weight": "20", "cpu.max": "50000 100000", "memory.max": "134217728", "pids.max": "100"})
		expectFiles(t, tree.dir("", bp), map[string]string{"cpu.weight": "4", "cpu.max": "max 100000", "memory.max": "max"})
	} else {
		expectFiles(t, tree.dir("cpu", gp), map[string]string{"cpu.shares": "512", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"})
		expectFiles(t, tree.dir("memory", gp), map[string]string{"memory.limit_in_bytes": "134217728"})
		expectFiles(t, tree.dir("pids", gp), map[string]string{"pids.max": "100"})
		// Burstable, with b declaring no limits: shares only.
		expectFiles(t, tree.dir("cpu", bp), map[string]string{"cpu.shares": "102", "cpu.cfs_quota_us": "-1"})
		expectFiles(t, tree.dir("memory", bp), map[string]string{"memory.limit_in_bytes": "9223372036854771712"})
		hs := []string{"cpuset", "freezer", "devices", "blkio", "systemd", "unified"}
		if tree.systemd() {
			hs = slices.DeleteFunc(hs, func(h string) bool { return h == "devices" }) // SkipDevices: libcontainer's systemd driver makes none
		}
		for _, h := range hs {
			if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, bp)); err != nil {
				t.Errorf("pod cgroup missing in hierarchy %s: %v", h, err)
			}
		}
	}
	if err := tree.CreatePod(g); err != nil {
		t.Errorf("CreatePod again: %v", err)
	}

	if err := tree.RemovePod(b); err != nil {
		t.Fatal(err)
	}
	expectGone(t, tree.dir("memory", tree.qosPath(corev1.PodQOSBurstable)))
	if _, err := os.Stat(tree.dir("memory", gp)); err != nil {
		t.Errorf("removing one pod removed another: %v", err)
	}
	if err := tree.RemovePod(g); err != nil {
		t.Fatal(err)
	}
	expectNoTree(t, tree)
}

// enter creates the leaf at path in every hierarchy, limits its memory to
// limit bytes (0: no limit, no swap either way) and moves pid in.
func enter(t *testing.T, tree Tree, path string, pid int, limit int) {
	t.Helper()
	hs := []string{tree.fs()}
	if !tree.v2() {
		hs = nil
		for _, c := range []string{"memory", "pids", "cpu", "cpuacct", "freezer"} {
			hs = append(hs, filepath.Join(tree.fs(), c))
		}
	}
	var files [][2]string // in this order: memsw may not go below the limit
	switch {
	case limit > 0 && tree.v2():
		files = [][2]string{{"memory.max", strconv.Itoa(limit)}, {"memory.swap.max", "0"}}
	case limit > 0:
		files = [][2]string{{"memory.limit_in_bytes", strconv.Itoa(limit)}, {"memory.memsw.limit_in_bytes", strconv.Itoa(limit)}}
	}
	if tree.v2() {
		// systemd enables in a slice only the controllers its child units
		// ask for; this leaf is no unit.
		if err := os.WriteFile(filepath.Join(tree.fs(), filepath.Dir(path), "cgroup.subtree_control"), []byte("+cpu +memory +pids"), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hs {
		dir := filepath.Join(h, path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, fv := range files {
			f, v := fv[0], fv[1]
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				continue // another hierarchy's file, or no swap accounting
			}
			if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			t.Fatalf("move %d into %s: %v", pid, dir, err)
		}
	}
}

func TestRealRemoveKillsStragglers(t *testing.T) {
	tree := realTree(t)
	p := uidPod(randomName(t), pod(nil, ctr("app", "", "memory=64Mi")))
	if err := tree.CreatePod(p); err != nil {
		t.Fatal(err)
	}
	// A shell that forks two sleepers once it is inside the leaf.
	cmd := exec.Command("/bin/sh", "-c", "read x; sleep 600 & sleep 600 & echo ready; wait")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	enter(t, tree, tree.ContainerPath(p, "app"), cmd.Process.Pid, 0)
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("shell said %q, %v", line, err)
	}
	pids, err := procs(tree.dir("pids", tree.PodPath(p)))
	if err != nil || len(pids) != 3 {
		t.Fatalf("processes in the pod cgroup: %v, %v; want 3", pids, err)
	}

	if err := tree.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	err = <-done
	done <- err
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("shell ended with %v, want SIGKILL", err)
	}
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(b), ") Z ") {
			t.Errorf("process %d survived: %s", pid, b)
		}
	}
	expectNoTree(t, tree)
}

// startHog starts the memory hog in the container leaf ctr of p, with the
// leaf limited to limitMiB, and makes it touch mib MiB.
func startHog(t *testing.T, tree Tree, p *corev1.Pod, ctrName string, mib, limitMiB int) (out *bufio.Reader, done chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), hogEnv+"="+strconv.Itoa(mib))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		<-done
	})
	enter(t, tree, tree.ContainerPath(p, ctrName), cmd.Process.Pid, limitMiB<<20)
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(stdout), done
}

// The container's OOM kill itself is detected by runtime (libcontainer's
// counter, read around the container's life); here the limit must kill.
func TestRealUsageAndMemoryLimit(t *testing.T) {
	tree := realTree(t)
	p := uidPod(randomName(t), pod(nil, ctr("small", "memory=16Mi", ""), ctr("big", "memory=16Mi", "")))
	if err := tree.CreatePod(p); err != nil {
		t.Fatal(err)
	}

	out, _ := startHog(t, tree, p, "small", 16, 64)
	if line, err := out.ReadString('\n'); err != nil || line != "allocated\n" {
		t.Fatalf("hog said %q, %v", line, err)
	}
	u, err := tree.Usage(tree.ContainerPath(p, "small"))
	if err != nil {
		t.Fatal(err)
	}
	if u.MemoryBytes < 16<<20 || u.WorkingSetBytes < 16<<20 || u.WorkingSetBytes > u.MemoryBytes || u.CPUNanos == 0 {
		t.Errorf("Usage of a process holding 16 MiB = %+v", u)
	}
	t.Logf("usage of a 16 MiB hog: %+v", u)

	_, done := startHog(t, tree, p, "big", 128, 32)
	err = <-done
	done <- err
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("hog over its limit ended with %v, want SIGKILL", err)
	}
	if err := tree.RemovePod(p); err != nil {
		t.Fatal(err)
	}
}

// Pods come and go concurrently under one root: creation must survive a
// parent being removed under it, removal must leave a parent in use.
func TestRealConcurrentPods(t *testing.T) {
	tree := realTree(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				p := uidPod(fmt.Sprintf("w%d-%d", w, i), pod(nil, ctr("a", "cpu=10m", "")))
				if err := tree.CreatePod(p); err != nil {
					errs <- err
					return
				}
				if _, err := os.Stat(tree.dir("cpu", tree.PodPath(p)) + "/" + map[bool]string{true: "cpu.weight", false: "cpu.shares"}[tree.v2()]); err != nil {
					errs <- fmt.Errorf("after CreatePod: %w", err)
					return
				}
				if err := tree.RemovePod(p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	expectNoTree(t, tree)
}

// BenchmarkRealCreateRemovePod times a pod cgroup's life without containers:
// create and limit, then remove with its parents.
func BenchmarkRealCreateRemovePod(b *testing.B) {
	testutil.RequiresRoot(b)
	tree := Tree{Root: "podrunbench" + strconv.Itoa(os.Getpid()), PidsLimit: 1024, Driver: DefaultDriver()}
	p := uidPod("bench", pod(nil, ctr("a", "cpu=100m,memory=64Mi", "cpu=1,memory=128Mi")))
	for b.Loop() {
		if err := tree.CreatePod(p); err != nil {
			b.Fatal(err)
		}
		if err := tree.RemovePod(p); err != nil {
			b.Fatal(err)
		}
	}
}
