package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	"github.com/podrun/podrun/internal/podspec"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The kubelet's constants (pkg/kubelet/cm/helpers_linux.go).
const (
	minShares    = 2
	maxShares    = 262144
	sharesPerCPU = 1024
	quotaPeriod  = 100000 // µs; cpuCFSQuotaPeriod is only configurable behind an alpha gate
	minQuota     = 1000   // µs; the kernel's minimum
)

// milliCPUToShares is the kubelet's MilliCPUToShares: 1 CPU is 1024 shares,
// clamped to the kernel's [2, 262144]; no request is the minimum.
func milliCPUToShares(milliCPU int64) uint64 {
	shares := milliCPU * sharesPerCPU / 1000
	switch {
	case shares < minShares:
		return minShares
	case shares > maxShares:
		return maxShares
	}
	return uint64(shares)
}

// milliCPUToQuota is the kubelet's MilliCPUToQuota for the default 100 ms
// period: no limit is 0 (unlimited), anything else is at least 1 ms.
func milliCPUToQuota(milliCPU int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	return max(milliCPU*quotaPeriod/1000, minQuota)
}

// sharesToWeight is the kubelet's linear cpu.shares -> cpu.weight mapping
// for the cgroup v2 pod cgroups it writes itself (cpuSharesToCPUWeight).
func sharesToWeight(shares uint64) uint64 {
	return 1 + (shares-minShares)*9999/(maxShares-minShares)
}

// PodResources returns the values of the pod cgroup, following the kubelet's
// ResourceConfigForPod: cpu shares from the effective cpu request (2 for
// BestEffort); CFS quota and the memory limit from the effective limits, for
// Guaranteed pods and for Burstable pods bounded in that resource (see
// PodLimits); pids.max from t.PidsLimit; hugetlb limits from the hugepages
// requests when the hugetlb controller is mounted (every other page size
// limited to 0, as the kubelet does). On cgroup v2 the shares are also given
// as cpu.weight through the kubelet's linear mapping.
//
// SkipDevices is set: device rules belong on the container leaves.
func (t Tree) PodResources(pod *corev1.Pod) *cgroups.Resources {
	class := QOSClass(pod)
	r := &cgroups.Resources{SkipDevices: true, CpuShares: minShares}
	if class != corev1.PodQOSBestEffort {
		reqs := PodRequests(pod)
		lims := PodLimits(pod)
		r.CpuShares = milliCPUToShares(milliValue(reqs, corev1.ResourceCPU))
		if cpu := milliValue(lims, corev1.ResourceCPU); cpu > 0 {
			r.CpuQuota, r.CpuPeriod = milliCPUToQuota(cpu), quotaPeriod
		}
		if mem, ok := lims[corev1.ResourceMemory]; ok {
			r.Memory = mem.Value()
		}
		r.HugetlbLimit = t.hugetlbLimits(reqs)
	} else {
		r.HugetlbLimit = t.hugetlbLimits(nil)
	}
	if t.v2() {
		r.CpuWeight = sharesToWeight(r.CpuShares)
	}
	if t.PidsLimit > 0 {
		r.PidsLimit = &t.PidsLimit
	}
	return r
}

// ContainerResources returns the values for a container's leaf cgroup, as
// the kubelet hands them to the runtime (calculateLinuxResources) and runc
// then writes them: cpu shares from the cpu request, else from the cpu limit,
// else 2; CFS quota from the cpu limit with a 100 ms period; the memory limit,
// with swap held to none like the kubelet's default NoSwap behaviour (v1
// memsw = memory when swap accounting exists, v2 memory.swap.max 0); hugetlb
// limits from the container's hugepages limits when the controller is
// mounted. On cgroup v2 the shares become cpu.weight through runc's mapping
// (cgroups.ConvertCPUSharesToCgroupV2Value, under which 1024 shares is 100),
// and memory.oom.group is 1 so an OOM kill takes the whole container, as the
// kubelet asks on v2.
//
// With pod-level resources (PodLevelResources, on in 1.34) a container
// that sets no cpu or memory limit gets the pod's (getCPULimit,
// getMemoryLimit), and its cpu shares follow that cpu limit when it has no
// cpu request.
//
// The caller adds the device rules; no pids limit is set per container
// (under systemd pids.max is set to max explicitly, see below).
func (t Tree) ContainerResources(pod *corev1.Pod, c *corev1.Container) *cgroups.Resources {
	r := &cgroups.Resources{CpuPeriod: quotaPeriod}
	cpuLimit := milliValue(c.Resources.Limits, corev1.ResourceCPU)
	memLimit := c.Resources.Limits.Memory().Value()
	if podLevelResourcesSet(pod) {
		if cpuLimit == 0 {
			cpuLimit = milliValue(pod.Spec.Resources.Limits, corev1.ResourceCPU)
		}
		if memLimit == 0 {
			memLimit = pod.Spec.Resources.Limits.Memory().Value()
		}
	}
	if req, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		r.CpuShares = milliCPUToShares(req.MilliValue())
	} else {
		r.CpuShares = milliCPUToShares(cpuLimit)
	}
	r.CpuQuota = milliCPUToQuota(cpuLimit)
	r.Memory = memLimit
	r.HugetlbLimit = t.hugetlbLimits(c.Resources.Limits)
	if t.systemd() {
		// Unlimited, as under cgroupfs: systemd would otherwise give the
		// scope its DefaultTasksMax (15% of the kernel's pid_max).
		unlimited := int64(-1)
		r.PidsLimit = &unlimited
	}
	if !t.v2() {
		if r.Memory > 0 && t.exists("memory", "memory.memsw.limit_in_bytes") {
			r.MemorySwap = r.Memory
		}
		return r
	}
	r.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(r.CpuShares)
	r.Unified = map[string]string{"memory.oom.group": "1"}
	if t.exists("", t.qosPath(corev1.PodQOSGuaranteed), "memory.swap.max") {
		r.Unified["memory.swap.max"] = "0"
	}
	return r
}

// hugetlbLimits gives every page size the hugetlb controller knows a limit:
// the matching hugepages-<size> quantity, or 0. Nil when the controller is
// not mounted: the kubelet then skips hugepages entirely.
func (t Tree) hugetlbLimits(list corev1.ResourceList) []*cgroups.HugepageLimit {
	if !t.hasController("hugetlb") {
		return nil
	}
	var out []*cgroups.HugepageLimit
	for _, size := range cgroups.HugePageSizes() {
		var limit uint64
		for name, q := range list {
			if b, ok := hugePageBytes(name); ok && pageSizeName(b) == size {
				limit = uint64(q.Value())
			}
		}
		out = append(out, &cgroups.HugepageLimit{Pagesize: size, Limit: limit})
	}
	return out
}

// hugePageBytes parses a hugepages-<quantity> resource name.
func hugePageBytes(name corev1.ResourceName) (int64, bool) {
	s, ok := strings.CutPrefix(string(name), corev1.ResourceHugePagesPrefix)
	if !ok {
		return 0, false
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, false
	}
	return q.Value(), true
}

// pageSizeName spells a page size the way the hugetlb controller's files
// do ("2MB", "1GB"; binary units).
func pageSizeName(bytes int64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	i := 0
	for bytes >= 1024 && bytes%1024 == 0 && i < len(units)-1 {
		bytes /= 1024
		i++
	}
	return strconv.FormatInt(bytes, 10) + units[i]
}

func milliValue(list corev1.ResourceList, name corev1.ResourceName) int64 {
	q, ok := list[name]
	if !ok {
		return 0
	}
	return q.MilliValue()
}

// The kubelet's oom_score_adj values (pkg/kubelet/qos/policy.go).
const (
	guaranteedOOMScoreAdj = -997
	bestEffortOOMScoreAdj = 1000
)

// OOMScoreAdj returns the oom_score_adj the kubelet gives the container's
// processes (qos.GetContainerOOMScoreAdjust): -997 for Guaranteed pods and
// for system-node-critical ones, 1000 for BestEffort, and for Burstable
// 1000 - 1000*memoryRequest/memoryCapacity clamped to [3, 999]. A sidecar is
// capped at the value of the app container with the smallest memory request,
// so it is never a likelier victim than every app. With pod-level memory
// requests, the part no container requests is shared out evenly first.
// memoryCapacity is the node's memory in bytes (see MemoryCapacity).
func OOMScoreAdj(pod *corev1.Pod, c *corev1.Container, memoryCapacity int64) int {
	if pod.Spec.PriorityClassName == "system-node-critical" {
		return guaranteedOOMScoreAdj
	}
	switch QOSClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return bestEffortOOMScoreAdj
	}
	if memoryCapacity <= 0 {
		return bestEffortOOMScoreAdj - 1
	}
	var extra int64
	if podLevelRequestsSet(pod) {
		extra = unrequestedMemoryPerContainer(pod)
	}
	adj := 1000 - 1000*(memRequest(c)+extra)/memoryCapacity
	if podspec.IsSidecar(c) && isInitContainer(pod, c.Name) && len(pod.Spec.Containers) > 0 {
		least := memRequest(&pod.Spec.Containers[0])
		for i := range pod.Spec.Containers[1:] {
			least = min(least, memRequest(&pod.Spec.Containers[i+1]))
		}
		adj = min(adj, 1000-1000*(least+extra)/memoryCapacity)
	}
	switch {
	case adj < 1000+guaranteedOOMScoreAdj:
		return 1000 + guaranteedOOMScoreAdj
	case adj >= bestEffortOOMScoreAdj:
		return bestEffortOOMScoreAdj - 1
	}
	return int(adj)
}

func memRequest(c *corev1.Container) int64 {
	reqs := containerRequests(c)
	return reqs.Memory().Value()
}

// unrequestedMemoryPerContainer is the kubelet's remainingPodMemReqPerContainer.
func unrequestedMemoryPerContainer(pod *corev1.Pod) int64 {
	podReqs := podLevelRequests(pod)
	if podReqs.Memory().IsZero() {
		return 0
	}
	agg, _ := aggregate(pod, containerRequests)
	n := int64(len(pod.Spec.Containers) + len(pod.Spec.InitContainers))
	return (podReqs.Memory().Value() - agg.Memory().Value()) / n
}

func isInitContainer(pod *corev1.Pod, name string) bool {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return true
		}
	}
	return false
}

// MemoryCapacity returns the node's memory in bytes as the kubelet sees it
// (cAdvisor's MemTotal from /proc/meminfo).
func MemoryCapacity() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read node memory: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		rest, ok := strings.CutPrefix(s.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse MemTotal in /proc/meminfo: %w", err)
		}
		return kb * 1024, nil
	}
	if err := s.Err(); err != nil {
		return 0, fmt.Errorf("read /proc/meminfo: %w", err)
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}
