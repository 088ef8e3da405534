package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/podrun/podrun/internal/testutil"
)

// cgroupRoot is the suite's --cgroup-root.
func cgroupRoot() string {
	for i, a := range nodeArg {
		if a == "--cgroup-root" {
			return nodeArg[i+1]
		}
	}
	return "podrun"
}

// podCgroup finds the only pod cgroup under the suite's root, in ctrl's v1
// hierarchy or the v2 one (the suite runs one pod at a time), under either
// cgroup driver: <root>/[qos/]pod<uid>, or systemd's
// <root>.slice/[<root>-qos.slice/]<root>-[qos-]pod<uid>.slice.
func podCgroup(t *testing.T, ctrl string) string {
	t.Helper()
	fs := filepath.Join("/sys/fs/cgroup", ctrl)
	if cgroupV2() {
		fs = "/sys/fs/cgroup" // v2: one hierarchy
	}
	r := cgroupRoot()
	for _, pattern := range []string{r + "/pod*", r + "/*/pod*", r + ".slice/" + r + "-pod*.slice", r + ".slice/*/" + r + "-*-pod*.slice"} {
		if m, _ := filepath.Glob(filepath.Join(fs, pattern)); len(m) == 1 {
			return m[0]
		}
	}
	t.Fatalf("no single pod cgroup under %s", filepath.Join(fs, r+"*"))
	return ""
}

func cgroupV2() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// ctrCgroup is the cgroup of the container name in the pod cgroup pod:
// <pod>/<name>, or under systemd the scope <pod>/<pod slice>-<name>.scope.
func ctrCgroup(pod, name string) string {
	if slice, ok := strings.CutSuffix(filepath.Base(pod), ".slice"); ok {
		return filepath.Join(pod, slice+"-"+name+".scope")
	}
	return filepath.Join(pod, name)
}

// podCgroupsLeft are the cgroups of the pod uid still there, in any
// hierarchy, under either driver.
func podCgroupsLeft(uid string) []string {
	r, esc := cgroupRoot(), strings.ReplaceAll(uid, "-", "_")
	var left []string
	for _, fs := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/*"} {
		for _, pattern := range []string{r + "/pod" + uid, r + "/*/pod" + uid, r + ".slice/" + r + "-pod" + esc + ".slice", r + ".slice/*/" + r + "-*-pod" + esc + ".slice"} {
			m, _ := filepath.Glob(filepath.Join(fs, pattern))
			left = append(left, m...)
		}
	}
	return left
}

// cgroupPodUID reads the pod UID back from a pod cgroup's name.
func cgroupPodUID(pod string) string {
	base := filepath.Base(pod)
	if slice, ok := strings.CutSuffix(base, ".slice"); ok {
		return strings.ReplaceAll(slice[strings.LastIndex(slice, "-pod")+len("-pod"):], "_", "-")
	}
	return strings.TrimPrefix(base, "pod")
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

func limits(cpu, mem string) corev1.ResourceRequirements {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return corev1.ResourceRequirements{Limits: l}
}

func needV1(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		t.Skip("these checks read cgroup v1 files; this host is cgroup v2 (covered by the cgroups package's fake-tree tests)")
	}
}

// A sidecar and an app with limits: every value the kubelet writes, read
// back from the pod's and the containers' cgroups, on cgroup v1 or v2 and
// under either driver; under systemd, `systemctl daemon-reload` (which has
// systemd write every unit's cgroup attributes again) changes none.
func TestCgroupLimits(t *testing.T) {
	testutil.RequiresRoot(t)
	app := container("app", serve)
	app.Resources = limits("500m", "64Mi")
	side := container("sidecar", serve)
	side.Resources = limits("250m", "32Mi")
	s := newScenario(t, "limits", corev1.RestartPolicyAlways).sidecar(side).app(app)
	bg := s.start()
	bg.waitEvent("app", "Started")

	// Guaranteed: requests = limits; the pod cgroup holds the sum.
	cpuPod, memPod := podCgroup(t, "cpu"), podCgroup(t, "memory")
	if dir := filepath.Base(filepath.Dir(cpuPod)); dir != cgroupRoot() && dir != cgroupRoot()+".slice" {
		t.Errorf("pod cgroup %s: a Guaranteed pod belongs right under the root", cpuPod)
	}
	checks := cgroupLimitChecks(cpuPod, memPod)
	checkFiles(t, checks)
	if _, err := os.Stat("/run/systemd/system"); err == nil && strings.HasSuffix(cpuPod, ".slice") {
		if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
			t.Fatalf("systemctl daemon-reload: %v\n%s", err, out)
		}
		t.Log("after systemctl daemon-reload:")
		waitOOMGroups(t, checks)
		checkFiles(t, checks)
	}
	r := bg.interrupt()
	if q := r.pod(t).Status.QOSClass; q != corev1.PodQOSGuaranteed {
		t.Errorf("qosClass %s, want Guaranteed", q)
	}
	if _, err := os.Stat(cpuPod); err == nil {
		t.Errorf("%s left behind", cpuPod)
	}
}

// cgroupLimitChecks are the values of TestCgroupLimits's pod (app 500m and
// 64Mi, sidecar 250m and 32Mi) as the kubelet and runc write them.
func cgroupLimitChecks(cpuPod, memPod string) map[string]string {
	app, side := ctrCgroup(cpuPod, "app"), ctrCgroup(cpuPod, "sidecar")
	if cgroupV2() {
		c := map[string]string{
			// The pod: 768 shares through the kubelet's linear mapping.
			cpuPod + "/cpu.weight": "30", cpuPod + "/cpu.max": "75000 100000",
			cpuPod + "/memory.max": strconv.Itoa(96 << 20), cpuPod + "/pids.max": "max",
			// The containers: runc's mapping (512 shares -> 59, 256 -> 35).
			app + "/cpu.weight": "59", app + "/cpu.max": "50000 100000", app + "/memory.max": strconv.Itoa(64 << 20),
			app + "/memory.oom.group": "1", app + "/pids.max": "max",
			side + "/cpu.weight": "35", side + "/cpu.max": "25000 100000", side + "/memory.max": strconv.Itoa(32 << 20),
			side + "/memory.oom.group": "1",
		}
		if _, err := os.Stat(app + "/memory.swap.max"); err == nil {
			c[app+"/memory.swap.max"], c[side+"/memory.swap.max"] = "0", "0"
		}
		return c
	}
	mapp, mside := ctrCgroup(memPod, "app"), ctrCgroup(memPod, "sidecar")
	return map[string]string{
		cpuPod + "/cpu.shares": "768", cpuPod + "/cpu.cfs_quota_us": "75000", cpuPod + "/cpu.cfs_period_us": "100000",
		memPod + "/memory.limit_in_bytes": strconv.Itoa(96 << 20),
		app + "/cpu.shares":               "512", app + "/cpu.cfs_quota_us": "50000",
		mapp + "/memory.limit_in_bytes": strconv.Itoa(64 << 20),
		side + "/cpu.shares":            "256", side + "/cpu.cfs_quota_us": "25000",
		mside + "/memory.limit_in_bytes": strconv.Itoa(32 << 20),
	}
}

// waitOOMGroups waits until the memory.oom.group files of checks read 1
// again: systemd before 253 writes 0 into every scope on a daemon-reload,
// and podrun writes 1 back once systemd signals the reload's end.
func waitOOMGroups(t *testing.T, checks map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for path := range checks {
		if filepath.Base(path) != "memory.oom.group" {
			continue
		}
		for {
			b, err := os.ReadFile(path)
			if err == nil && strings.TrimSpace(string(b)) == "1" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s not 1 again 10 s after the reload: %q, %v", path, b, err)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func checkFiles(t *testing.T, want map[string]string) {
	t.Helper()
	for path, v := range want {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Error(err)
		} else if got := strings.TrimSpace(string(b)); got != v {
			t.Errorf("%s = %s, want %s", path, got, v)
		}
	}
}

func TestOOMKilled(t *testing.T) {
	testutil.RequiresRoot(t)
	// tail keeps an endless line in memory: past 32 MiB the kernel kills it.
	app := container("app", `log Starting; exec tail /dev/zero`)
	app.Resources = limits("", "32Mi")
	s := newScenario(t, "oom", corev1.RestartPolicyOnFailure).app(app)
	bg := s.start()
	bg.waitEventN("app", "Starting", 2) // restarted per policy
	bg.waitStderr("OOMKilling")
	r := bg.interrupt()
	st := status(r.pod(t), "app")
	last := st.LastTerminationState.Terminated
	if last == nil || last.Reason != "OOMKilled" || last.ExitCode != 137 {
		t.Errorf("lastState %+v, want terminated OOMKilled 137", st.LastTerminationState)
	}
	if st.RestartCount < 1 {
		t.Errorf("restartCount %d", st.RestartCount)
	}
}

// A shell whose child the OOM killer took exits 0, and is still OOMKilled,
// as containerd's CRI reports any OOM kill in the container's cgroup (on
// cgroup v1 the kernel kills the biggest process only; on v2, with
// memory.oom.group, the whole container goes and the exit is 137).
func TestOOMKilledWhateverTheExitCode(t *testing.T) {
	testutil.RequiresRoot(t)
	app := container("app", `log Starting; tail /dev/zero; log Survived; exit 0`)
	app.Resources = limits("", "32Mi")
	s := newScenario(t, "oom-survivor", corev1.RestartPolicyNever).app(app)
	r := s.run()
	term := status(r.pod(t), "app").State.Terminated
	if term == nil || term.Reason != "OOMKilled" {
		t.Fatalf("app state %+v, want terminated OOMKilled", status(r.pod(t), "app").State)
	}
	if survived := len(r.ev.all("app", "Survived")) > 0; survived != (term.ExitCode == 0) {
		t.Errorf("exit code %d, shell survived the kill: %v", term.ExitCode, survived)
	}
	// The kubelet's getPhase counts an app by its exit code alone.
	want := corev1.PodFailed
	if term.ExitCode == 0 {
		want = corev1.PodSucceeded
	}
	if p := r.pod(t); p.Status.Phase != want {
		t.Errorf("phase %s with exit code %d, want %s", p.Status.Phase, term.ExitCode, want)
	}
}

func TestOOMKilledInitFailsPodUnderNever(t *testing.T) {
	testutil.RequiresRoot(t)
	init := container("init", `log Starting; exec tail /dev/zero`)
	init.Resources = limits("", "32Mi")
	s := newScenario(t, "oom-init", corev1.RestartPolicyNever).
		init(init).
		app(container("app", runExit("0", 0)))
	r := s.run()
	p := r.pod(t)
	if p.Status.Phase != corev1.PodFailed {
		t.Errorf("phase %s, want Failed", p.Status.Phase)
	}
	if term := status(p, "init").State.Terminated; term == nil || term.Reason != "OOMKilled" {
		t.Errorf("init state %+v, want OOMKilled", status(p, "init").State)
	}
	if len(r.ev.all("app", "Starting")) != 0 {
		t.Error("the app started")
	}
}

func TestCPUThrottled(t *testing.T) {
	testutil.RequiresRoot(t)
	needV1(t)
	app := container("app", `log Started; while :; do :; done`)
	app.Resources = limits("100m", "")
	s := newScenario(t, "throttled", corev1.RestartPolicyAlways).app(app)
	one := int64(1)
	s.pod.Spec.TerminationGracePeriodSeconds = &one
	bg := s.start("--top", "1s")
	bg.waitEvent("app", "Started")
	stat := filepath.Join(ctrCgroup(podCgroup(t, "cpu"), "app"), "cpu.stat")
	bg.until("throttling", func() bool {
		b, err := os.ReadFile(stat)
		if err != nil {
			return false
		}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[0] == "nr_throttled" && f[1] != "0" {
				return true
			}
		}
		return false
	})
	if q := readInt(t, filepath.Join(filepath.Dir(stat), "cpu.cfs_quota_us")); q != 10000 {
		t.Errorf("quota %d, want 10000", q)
	}
	// --top shows the busy loop held at about 100m.
	bg.until("a top row with the throttled CPU", func() bool {
		for _, l := range strings.Split(bg.stderr.String(), "\n") {
			f := strings.Fields(l)
			if len(f) == 4 && f[0] == "throttled" && f[1] == "app" && strings.HasSuffix(f[2], "m") {
				m, err := strconv.Atoi(strings.TrimSuffix(f[2], "m"))
				if err == nil && m >= 60 && m <= 140 {
					return true
				}
			}
		}
		return false
	})
	bg.interrupt()
}

// Pod-level resources (PodLevelResources, on in 1.34): a container that
// sets no cpu or memory limit gets the pod's in its own cgroup, and its
// cpu shares follow (the kubelet's getCPULimit and getMemoryLimit).
func TestPodLevelResourcesReachContainers(t *testing.T) {
	testutil.RequiresRoot(t)
	needV1(t)
	app := container("app", serve)
	own := container("own", serve)
	own.Resources = limits("100m", "32Mi")
	s := newScenario(t, "pod-level", corev1.RestartPolicyAlways).app(app).app(own)
	pl := limits("500m", "64Mi")
	s.pod.Spec.Resources = &pl
	bg := s.start()
	bg.waitEvent("app", "Started")
	bg.waitEvent("own", "Started")
	cpuPod, memPod := podCgroup(t, "cpu"), podCgroup(t, "memory")
	for path, want := range map[string]int64{
		filepath.Join(memPod, "memory.limit_in_bytes"):                   64 << 20,
		filepath.Join(ctrCgroup(memPod, "app"), "memory.limit_in_bytes"): 64 << 20, // the pod's
		filepath.Join(ctrCgroup(cpuPod, "app"), "cpu.cfs_quota_us"):      50000,
		filepath.Join(ctrCgroup(memPod, "own"), "memory.limit_in_bytes"): 32 << 20, // its own
		filepath.Join(ctrCgroup(cpuPod, "own"), "cpu.cfs_quota_us"):      10000,
	} {
		if got := readInt(t, path); got != want {
			t.Errorf("%s = %d, want %d", path, got, want)
		}
	}
	bg.interrupt()
}
