package cgroups

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/cgroups"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// fakeV1 is a tempdir shaped like this machine's hybrid cgroup v1 mount:
// one directory per hierarchy, cpu and cpuacct co-mounted behind aliases,
// swap accounting on, no hugetlb.
func fakeV1(t *testing.T) Tree {
	t.Helper()
	fs := t.TempDir()
	for _, h := range []string{"cpu,cpuacct", "memory", "pids", "cpuset", "systemd", "unified"} {
		if err := os.Mkdir(filepath.Join(fs, h), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, alias := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(fs, alias)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(fs, "memory", "memory.memsw.limit_in_bytes"), "9223372036854771712\n")
	return Tree{FS: fs, emulate: true}
}

// fakeV2 is a tempdir shaped like a cgroup v2 mount.
func fakeV2(t *testing.T, controllers string) Tree {
	t.Helper()
	fs := t.TempDir()
	writeFile(t, filepath.Join(fs, "cgroup.controllers"), controllers+"\n")
	return Tree{FS: fs, emulate: true}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConversions(t *testing.T) {
	for _, tc := range []struct {
		milli  int64
		shares uint64
		quota  int64
	}{
		{0, 2, 0},
		{1, 2, 1000},
		{5, 5, 1000},
		{10, 10, 1000},
		{100, 102, 10000},
		{250, 256, 25000},
		{1000, 1024, 100000},
		{1500, 1536, 150000},
		{300000, 262144, 30000000},
	} {
		if got := milliCPUToShares(tc.milli); got != tc.shares {
			t.Errorf("milliCPUToShares(%d) = %d, want %d", tc.milli, got, tc.shares)
		}
		if got := milliCPUToQuota(tc.milli); got != tc.quota {
			t.Errorf("milliCPUToQuota(%d) = %d, want %d", tc.milli, got, tc.quota)
		}
	}
	for shares, weight := range map[uint64]uint64{2: 1, 1024: 39, 2048: 79, 262144: 10000} {
		if got := sharesToWeight(shares); got != weight {
			t.Errorf("sharesToWeight(%d) = %d, want %d", shares, got, weight)
		}
	}
	for bytes, name := range map[int64]string{2 << 20: "2MB", 1 << 30: "1GB", 64 << 10: "64KB", 32 << 20: "32MB"} {
		if got := pageSizeName(bytes); got != name {
			t.Errorf("pageSizeName(%d) = %q, want %q", bytes, got, name)
		}
	}
}

func TestPodResources(t *testing.T) {
	g := "cpu=250m,memory=64Mi"
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		shares uint64
		quota  int64
		memory int64
	}{
		{"guaranteed", pod(inits(ctr("i", g, g)), ctr("a", g, g), ctr("b", g, g)), 512, 50000, 128 << 20},
		{"burstable, every limit declared", pod(nil, ctr("a", "cpu=100m,memory=32Mi", g)), 102, 25000, 64 << 20},
		{"burstable, one memory limit missing", pod(nil, ctr("a", "", g), ctr("b", "", "cpu=1")), 1280, 125000, 0},
		{"burstable, requests only", pod(nil, ctr("a", "cpu=1,memory=1Gi", "")), 1024, 0, 0},
		{"besteffort", pod(nil, ctr("a", "", "")), 2, 0, 0},
		{"sidecar before a bigger init", pod(inits(sidecar("s", "", "cpu=200m"), ctr("i", "", "cpu=900m")), ctr("a", "", "cpu=100m")), 1126, 110000, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := fakeV1(t)
			r := tree.PodResources(tc.pod)
			if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.Memory != tc.memory {
				t.Errorf("shares/quota/memory = %d/%d/%d, want %d/%d/%d", r.CpuShares, r.CpuQuota, r.Memory, tc.shares, tc.quota, tc.memory)
			}
			if wantPeriod := uint64(quotaPeriod); tc.quota != 0 && r.CpuPeriod != wantPeriod {
				t.Errorf("period = %d, want %d", r.CpuPeriod, wantPeriod)
			}
			if r.PidsLimit != nil || r.CpuWeight != 0 || r.HugetlbLimit != nil || !r.SkipDevices {
				t.Errorf("pids %v weight %d hugetlb %v skipDevices %v: want unset on v1 without hugetlb, SkipDevices set", r.PidsLimit, r.CpuWeight, r.HugetlbLimit, r.SkipDevices)
			}
			tree = fakeV2(t, "cpu memory pids")
			tree.PidsLimit = 64
			r = tree.PodResources(tc.pod)
			if want := sharesToWeight(tc.shares); r.CpuWeight != want {
				t.Errorf("v2 weight = %d, want %d", r.CpuWeight, want)
			}
			if r.PidsLimit == nil || *r.PidsLimit != 64 {
				t.Errorf("pids limit = %v, want 64", r.PidsLimit)
			}
		})
	}
}

func TestContainerResources(t *testing.T) {
	for _, tc := range []struct {
		name           string
		c              corev1.Container
		shares         uint64
		quota          int64
		memory, memsw  int64
		v2Weight       uint64
		v2SwapDisabled bool
	}{
		{"request and limit", ctr("a", "cpu=250m,memory=32Mi", "cpu=500m,memory=64Mi"), 256, 50000, 64 << 20, 64 << 20, 35, true},
		{"limit only", ctr("a", "", "cpu=1"), 1024, 100000, 0, 0, 100, true},
		{"request only", ctr("a", "cpu=2", ""), 2048, 0, 0, 0, 174, true},
		{"nothing", ctr("a", "", ""), 2, 0, 0, 0, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(nil, tc.c)
			tree := fakeV1(t)
			r := tree.ContainerResources(p, &p.Spec.Containers[0])
			if r.CpuShares != tc.shares || r.CpuQuota != tc.quota || r.CpuPeriod != quotaPeriod || r.Memory != tc.memory || r.MemorySwap != tc.memsw {
				t.Errorf("v1 shares/quota/period/memory/memsw = %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d",
					r.CpuShares, r.CpuQuota, r.CpuPeriod, r.Memory, r.MemorySwap, tc.shares, tc.quota, quotaPeriod, tc.memory, tc.memsw)
			}
			if r.Unified != nil {
				t.Errorf("v1 unified = %v, want none (an error on v1)", r.Unified)
			}

			tree = fakeV2(t, "cpu memory pids")
			if err := os.MkdirAll(filepath.Join(tree.FS, "podrun"), 0o755); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(tree.FS, "podrun", "memory.swap.max"), "max\n")
			r = tree.ContainerResources(p, &p.Spec.Containers[0])
			if r.CpuWeight != tc.v2Weight || r.CpuWeight != cgroups.ConvertCPUSharesToCgroupV2Value(tc.shares) {
				t.Errorf("v2 weight = %d, want %d", r.CpuWeight, tc.v2Weight)
			}
			if r.MemorySwap != 0 || r.Unified["memory.oom.group"] != "1" || r.Unified["memory.swap.max"] != "0" {
				t.Errorf("v2 memsw %d unified %v: want no memsw, oom group on, swap 0", r.MemorySwap, r.Unified)
			}
		})
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const capacity = 10 << 30
	g := "cpu=100m,memory=64Mi"
	burstable := pod(inits(sidecar("small", "memory=512Mi", ""), sidecar("big", "memory=5Gi", ""), ctr("init", "memory=2Gi", "")),
		ctr("a", "memory=1Gi", ""), ctr("b", "memory=2Gi", ""), ctr("none", "", ""), ctr("huge", "memory=20Gi", ""))
	critical := pod(nil, ctr("a", "memory=1Gi", ""))
	critical.Spec.PriorityClassName = "system-node-critical"
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		c    int
		init bool
		want int
	}{
		{"guaranteed", pod(nil, ctr("a", g, g)), 0, false, -997},
		{"besteffort", pod(nil, ctr("a", "", "")), 0, false, 1000},
		{"burstable app with 1Gi of 10Gi", burstable, 0, false, 900},
		{"burstable app with 2Gi", burstable, 1, false, 800},
		{"no memory request stays below besteffort", burstable, 2, false, 999},
		{"request above capacity is floored", burstable, 3, false, 3},
		// The smallest app request is 0 (container "none"), whose value is 999.
		{"small sidecar keeps its own value when below the cap", burstable, 0, true, 950},
		{"big sidecar keeps its own value", burstable, 1, true, 500},
		{"regular init container", burstable, 2, true, 800},
		{"node critical", critical, 0, false, -997},
	} {
		c := &tc.pod.Spec.Containers[tc.c]
		if tc.init {
			c = &tc.pod.Spec.InitContainers[tc.c]
		}
		if got := OOMScoreAdj(tc.pod, c, capacity); got != tc.want {
			t.Errorf("%s: OOMScoreAdj(%s) = %d, want %d", tc.name, c.Name, got, tc.want)
		}
	}

	// A sidecar is capped at the app with the smallest request.
	p := pod(inits(sidecar("s", "", "")), ctr("a", "memory=1Gi", ""), ctr("b", "memory=3Gi", ""))
	if got := OOMScoreAdj(p, &p.Spec.InitContainers[0], capacity); got != 900 {
		t.Errorf("sidecar without a request: OOMScoreAdj = %d, want 900 (capped at app a's)", got)
	}
}

func TestMemoryCapacity(t *testing.T) {
	got, err := MemoryCapacity()
	if err != nil {
		t.Fatal(err)
	}
	if got < 64<<20 {
		t.Errorf("MemoryCapacity = %d, want the node's memory", got)
	}
}

func uidPod(uid string, p *corev1.Pod) *corev1.Pod {
	p.UID = types.UID(uid)
	p.Name = "p-" + uid
	return p
}

// PodLevelResources: a container without a cpu or memory limit gets the
// pod's (kuberuntime_container_linux.go getCPULimit, getMemoryLimit) and
// its cpu shares follow that limit when it has no cpu request.
func TestContainerResourcesPodLevel(t *testing.T) {
	p := pod(nil, ctr("a", "", ""), ctr("b", "cpu=250m", "cpu=500m,memory=32Mi"))
	p.Spec.Resources = &corev1.ResourceRequirements{Limits: ctr("x", "", "cpu=1,memory=64Mi").Resources.Limits}
	tree := fakeV1(t)
	a := tree.ContainerResources(p, &p.Spec.Containers[0])
	if a.CpuShares != 1024 || a.CpuQuota != 100000 || a.Memory != 64<<20 {
		t.Errorf("a: shares/quota/memory = %d/%d/%d, want the pod's 1024/100000/%d", a.CpuShares, a.CpuQuota, a.Memory, 64<<20)
	}
	b := tree.ContainerResources(p, &p.Spec.Containers[1])
	if b.CpuShares != 256 || b.CpuQuota != 50000 || b.Memory != 32<<20 {
		t.Errorf("b: shares/quota/memory = %d/%d/%d, want its own 256/50000/%d", b.CpuShares, b.CpuQuota, b.Memory, 32<<20)
	}
}
