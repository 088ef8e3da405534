package cgroups

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	corev1 "k8s.io/api/core/v1"
)

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func expectFiles(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	for file, val := range want {
		if got := readTrim(t, filepath.Join(dir, file)); got != val {
			t.Errorf("%s = %q, want %q", filepath.Join(dir, file), got, val)
		}
	}
}

func expectGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s still exists (err %v)", path, err)
	}
}

func TestPaths(t *testing.T) {
	g := "cpu=100m,memory=64Mi"
	tree := Tree{Root: "podrun-x"}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{uidPod("u1", pod(nil, ctr("a", g, g))), "/podrun-x/podu1"},
		{uidPod("u2", pod(nil, ctr("a", g, ""))), "/podrun-x/burstable/podu2"},
		{uidPod("u3", pod(nil, ctr("a", "", ""))), "/podrun-x/besteffort/podu3"},
	} {
		if got := tree.PodPath(tc.pod); got != tc.want {
			t.Errorf("PodPath = %q, want %q", got, tc.want)
		}
		if got := tree.ContainerPath(tc.pod, "web"); got != tc.want+"/web" {
			t.Errorf("ContainerPath = %q, want %q", got, tc.want+"/web")
		}
	}
	if got := (Tree{}).PodPath(uidPod("u", pod(nil, ctr("a", g, g)))); got != "/podrun/podu" {
		t.Errorf("default root: PodPath = %q", got)
	}
	if err := (Tree{FS: t.TempDir()}).CreatePod(pod(nil, ctr("a", "", ""))); err == nil || !strings.Contains(err.Error(), "UID") {
		t.Errorf("CreatePod without a UID: err = %v, want one naming the UID", err)
	}
	if err := (Tree{FS: t.TempDir(), Root: "a/b"}).CreatePod(uidPod("u", pod(nil, ctr("a", "", "")))); err == nil {
		t.Error("CreatePod with root a/b: want an error")
	}
}

func TestFakeV1(t *testing.T) {
	tree := fakeV1(t)
	tree.PidsLimit = 100
	g := uidPod("g1", pod(nil, ctr("a", "", "cpu=250m,memory=64Mi"), ctr("b", "", "cpu=250m,memory=64Mi")))
	b := uidPod("b1", pod(nil, ctr("a", "cpu=100m", "memory=32Mi")))
	e := uidPod("e1", pod(nil, ctr("a", "", "")))
	for _, p := range []*corev1.Pod{g, b, e} {
		if err := tree.CreatePod(p); err != nil {
			t.Fatalf("CreatePod %s: %v", p.Name, err)
		}
	}
	fs := tree.FS
	expectFiles(t, filepath.Join(fs, "cpu", "podrun", "podg1"), map[string]string{
		"cpu.shares": "512", "cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"})
	expectFiles(t, filepath.Join(fs, "memory", "podrun", "podg1"), map[string]string{"memory.limit_in_bytes": "134217728"})
	expectFiles(t, filepath.Join(fs, "pids", "podrun", "podg1"), map[string]string{"pids.max": "100"})
	expectFiles(t, filepath.Join(fs, "cpu", "podrun", "burstable", "podb1"), map[string]string{"cpu.shares": "102"})
	expectGone(t, filepath.Join(fs, "cpu", "podrun", "burstable", "podb1", "cpu.cfs_quota_us"))
	expectFiles(t, filepath.Join(fs, "memory", "podrun", "burstable", "podb1"), map[string]string{"memory.limit_in_bytes": "33554432"})
	expectFiles(t, filepath.Join(fs, "cpu", "podrun", "besteffort"), map[string]string{"cpu.shares": "2"})
	expectFiles(t, filepath.Join(fs, "cpu", "podrun", "besteffort", "pode1"), map[string]string{"cpu.shares": "2"})
	for _, h := range []string{"cpuset", "systemd", "unified", "cpu,cpuacct"} {
		if _, err := os.Stat(filepath.Join(fs, h, "podrun", "burstable", "podb1")); err != nil {
			t.Errorf("pod cgroup missing in hierarchy %s: %v", h, err)
		}
	}

	// Removing one pod keeps the parents the others use.
	if err := tree.RemovePod(b); err != nil {
		t.Fatal(err)
	}
	expectGone(t, filepath.Join(fs, "memory", "podrun", "burstable"))
	if _, err := os.Stat(filepath.Join(fs, "memory", "podrun", "besteffort", "pode1")); err != nil {
		t.Errorf("another pod's cgroup went: %v", err)
	}
	if err := tree.RemovePod(b); err != nil {
		t.Errorf("RemovePod twice: %v", err)
	}
	// GC removes what is not live, then the parents.
	if err := tree.GC(func(uid string) bool { return uid == "g1" }); err != nil {
		t.Fatal(err)
	}
	expectGone(t, filepath.Join(fs, "pids", "podrun", "besteffort"))
	if _, err := os.Stat(filepath.Join(fs, "pids", "podrun", "podg1")); err != nil {
		t.Errorf("GC removed a live pod: %v", err)
	}
	if err := tree.GC(func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"cpu,cpuacct", "memory", "pids", "cpuset", "systemd", "unified"} {
		expectGone(t, filepath.Join(fs, h, "podrun"))
	}
}

func TestFakeV2(t *testing.T) {
	tree := fakeV2(t, "cpuset cpu io memory hugetlb pids")
	tree.Root = "podrun-v2"
	tree.PidsLimit = 50
	hp := pod(nil, ctr("a", "cpu=500m,memory=64Mi,hugepages-2Mi=4Mi", "cpu=1,memory=128Mi,hugepages-2Mi=4Mi"))
	b := uidPod("b1", hp)
	g := uidPod("g1", pod(nil, ctr("a", "", "cpu=2,memory=1Gi")))
	e := uidPod("e1", pod(nil, ctr("a", "", "")))
	for _, p := range []*corev1.Pod{b, g, e} {
		if err := tree.CreatePod(p); err != nil {
			t.Fatalf("CreatePod %s: %v", p.Name, err)
		}
	}
	fs := tree.FS
	bdir := filepath.Join(fs, "podrun-v2", "burstable", "podb1")
	want := map[string]string{
		"cpu.weight": "20", // 512 shares, linearly
		"cpu.max":    "100000 100000",
		"memory.max": "134217728",
		"pids.max":   "50",
	}
	for _, s := range cgroups.HugePageSizes() {
		want["hugetlb."+s+".max"] = "0"
		if s == "2MB" {
			want["hugetlb.2MB.max"] = "4194304"
		}
	}
	expectFiles(t, bdir, want)
	expectFiles(t, filepath.Join(fs, "podrun-v2", "podg1"), map[string]string{"cpu.weight": "79", "cpu.max": "200000 100000", "memory.max": "1073741824"})
	expectFiles(t, filepath.Join(fs, "podrun-v2", "besteffort"), map[string]string{"cpu.weight": "1"})
	for _, dir := range []string{fs, filepath.Join(fs, "podrun-v2"), filepath.Join(fs, "podrun-v2", "burstable"), bdir} {
		expectFiles(t, dir, map[string]string{"cgroup.subtree_control": "+cpuset +cpu +io +memory +hugetlb +pids"})
	}

	// Readers, on files shaped like the kernel's.
	writeFile(t, filepath.Join(bdir, "cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
	writeFile(t, filepath.Join(bdir, "memory.current"), "10485760\n")
	writeFile(t, filepath.Join(bdir, "memory.stat"), "anon 4194304\nfile 6291456\nactive_file 2097152\ninactive_file 4194304\n")
	u, err := tree.Usage(tree.PodPath(b))
	if err != nil {
		t.Fatal(err)
	}
	if u != (Usage{CPUNanos: 1500000, MemoryBytes: 10 << 20, WorkingSetBytes: 6 << 20}) {
		t.Errorf("Usage = %+v", u)
	}

	if err := tree.RemovePod(b); err != nil {
		t.Fatal(err)
	}
	expectGone(t, filepath.Join(fs, "podrun-v2", "burstable"))
	if err := tree.GC(func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	expectGone(t, filepath.Join(fs, "podrun-v2"))
}

func TestFakeV1Readers(t *testing.T) {
	tree := fakeV1(t)
	p := uidPod("r1", pod(nil, ctr("a", "", "")))
	if err := tree.CreatePod(p); err != nil {
		t.Fatal(err)
	}
	path := tree.ContainerPath(p, "a")
	for _, h := range []string{"cpuacct", "memory"} {
		if err := os.MkdirAll(filepath.Join(tree.FS, h, path), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(tree.FS, "cpuacct", path, "cpuacct.usage"), "123456789\n")
	writeFile(t, filepath.Join(tree.FS, "memory", path, "memory.usage_in_bytes"), "1048576\n")
	writeFile(t, filepath.Join(tree.FS, "memory", path, "memory.stat"), "cache 8192\ninactive_file 4096\ntotal_cache 8192\ntotal_inactive_file 2097152\n")
	u, err := tree.Usage(path)
	if err != nil {
		t.Fatal(err)
	}
	// Inactive file cache above usage floors the working set at 0.
	if u != (Usage{CPUNanos: 123456789, MemoryBytes: 1 << 20}) {
		t.Errorf("Usage = %+v", u)
	}
	if err := tree.RemovePod(p); err != nil {
		t.Fatal(err)
	}
	expectGone(t, filepath.Join(tree.FS, "memory", "podrun"))
}

func TestSystemdNames(t *testing.T) {
	tree := Tree{Driver: DriverSystemd}
	uid := "0b5c-77e1"
	for _, tc := range []struct {
		pod                *corev1.Pod
		podPath, container string
	}{
		{uidPod(uid, pod(nil, ctr("app", "cpu=1,memory=1Gi", "cpu=1,memory=1Gi"))),
			"/podrun.slice/podrun-pod0b5c_77e1.slice",
			"/podrun.slice/podrun-pod0b5c_77e1.slice/podrun-pod0b5c_77e1-app.scope"},
		{uidPod(uid, pod(nil, ctr("app", "cpu=1", ""))),
			"/podrun.slice/podrun-burstable.slice/podrun-burstable-pod0b5c_77e1.slice",
			"/podrun.slice/podrun-burstable.slice/podrun-burstable-pod0b5c_77e1.slice/podrun-burstable-pod0b5c_77e1-app.scope"},
		{uidPod(uid, pod(nil, ctr("app", "", ""))),
			"/podrun.slice/podrun-besteffort.slice/podrun-besteffort-pod0b5c_77e1.slice",
			"/podrun.slice/podrun-besteffort.slice/podrun-besteffort-pod0b5c_77e1.slice/podrun-besteffort-pod0b5c_77e1-app.scope"},
	} {
		if got := tree.PodPath(tc.pod); got != tc.podPath {
			t.Errorf("PodPath = %s, want %s", got, tc.podPath)
		}
		if got := tree.ContainerPath(tc.pod, "app"); got != tc.container {
			t.Errorf("ContainerPath = %s, want %s", got, tc.container)
		}
		if got := unescapeUID(strings.TrimPrefix(strings.TrimSuffix(path.Base(tc.podPath), ".slice"), strings.TrimSuffix(tree.qosSlice(QOSClass(tc.pod)), ".slice")+"-pod")); got != uid {
			t.Errorf("UID read back from %s: %s", tc.podPath, got)
		}
	}
	if err := (Tree{Root: "pod-run", Driver: DriverSystemd}).check(uidPod(uid, pod(nil, ctr("a", "", "")))); err == nil || !strings.Contains(err.Error(), "pod-run") {
		t.Errorf("a root with '-' under systemd: %v", err)
	}
	if err := tree.check(uidPod("a_b", pod(nil, ctr("a", "", "")))); err == nil || !strings.Contains(err.Error(), "a_b") {
		t.Errorf("a UID with '_' under systemd: %v", err)
	}
	if err := CheckDriver("systemdd"); err == nil || !strings.Contains(err.Error(), "systemdd") {
		t.Errorf("CheckDriver(systemdd) = %v", err)
	}
}
