package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
)

const (
	podrunTool = "podrun"
	podmanTool = "podman"
)

// The measurements, in report order.
const (
	mStart1          = "start1"
	mStop1Exited     = "stop1.exited"
	mStop1Done       = "stop1.done"
	mSidecarsRunning = "sidecars.running"
	mSidecarsReady   = "sidecars.ready"
	mSidecarsExited  = "sidecars.exited"
	mSidecarsDone    = "sidecars.done"
	mProbeExec       = "probe.exec"
	mProbeHTTP       = "probe.http"
	m100Start        = "pods100.start"
	m100Stop         = "pods100.stop"
	m100RSS          = "pods100.rss"
	m100Peak         = "pods100.peak"
	mImageLoad       = "image.load"
	mImagePull       = "image.pull"
)

// metricInfo says what a measurement is; peer explains what podman ran
// instead, or why it has none.
var metricInfo = map[string]struct{ title, unit, peer string }{
	mStart1:          {"1-container pod: command → container running", "ms", ""},
	mStop1Exited:     {"1-container pod: delete → container exited", "ms", "podman 4.3 `kube down` SIGKILLs: no exit to observe"},
	mStop1Done:       {"1-container pod: delete → command done (pod removed)", "ms", "`podman kube down`"},
	mSidecarsRunning: {"init + 2 sidecars + app: command → all running", "ms", "podman: init + 3 plain containers (podman 4.3 has no sidecars)"},
	mSidecarsReady:   {"init + 2 sidecars + app: command → Ready (3/3)", "ms", "podman has no readiness without systemd"},
	mSidecarsExited:  {"init + 2 sidecars + app: delete → all exited (app, then sidecars in reverse)", "ms", "podman 4.3 `kube down` SIGKILLs all at once, unordered"},
	mSidecarsDone:    {"init + 2 sidecars + app: delete → command done (pod removed)", "ms", "podman: `kube down` of init + 3 plain containers"},
	mProbeExec:       {"exec probe round trip (`/bin/true`)", "ms", "podman: `podman healthcheck run` (a CLI round trip; podman schedules probes only through systemd)"},
	mProbeHTTP:       {"HTTP probe round trip (dial in the pod's netns → response read)", "ms", "podman runs httpGet probes as `curl` inside the container (absent from busybox)"},
	m100Start:        {"100 pods (sidecar + app) in one command → all 200 containers running", "ms", "podman: 100 pods of 2 plain containers"},
	m100Stop:         {"100 pods: delete → command done", "ms", "`podman kube down`"},
	m100RSS:          {"100 pods: resident memory of podrun's processes per pod, while running", "MB", "podman: conmon + catatonit (infra) per pod"},
	m100Peak:         {"100 pods: peak resident memory (VmHWM) of podrun's processes per pod", "MB", "podman: highest sum of conmon + catatonit VmRSS, per pod"},
	mImageLoad:       {"image load (busybox docker-save tarball) into an empty store", "ms", "`podman load` into an empty store"},
	mImagePull:       {"image pull + unpack (busybox, registry on loopback) into an empty store", "ms", "`podman pull` into an empty store"},
}

var metricOrder = []string{mStart1, mStop1Exited, mStop1Done, mSidecarsRunning, mSidecarsReady, mSidecarsExited, mSidecarsDone,
	mProbeExec, mProbeHTTP, m100Start, m100Stop, m100RSS, m100Peak, mImageLoad, mImagePull}

type results struct {
	mu       sync.Mutex
	Machine  machine
	Date     string
	Samples  map[string]map[string][]float64 // metric -> tool -> values
	PeerNote string                          // why there is no peer
	Daemon   string
	Commands string
	Notes    []string
}

func (r *results) add(metric, tool string, v ...float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Samples == nil {
		r.Samples = map[string]map[string][]float64{}
	}
	if r.Samples[metric] == nil {
		r.Samples[metric] = map[string][]float64{}
	}
	r.Samples[metric][tool] = append(r.Samples[metric][tool], v...)
}

func (r *results) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.Notes, s) {
		r.Notes = append(r.Notes, s)
	}
}

type summary struct {
	n                          int
	median, p10, p90, min, max float64
}

func summarize(v []float64) summary {
	if len(v) == 0 {
		return summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return summary{n: len(s), median: quantile(s, 0.5), p10: quantile(s, 0.1), p90: quantile(s, 0.9), min: s[0], max: s[len(s)-1]}
}

// quantile interpolates linearly between the closest ranks of sorted s.
func quantile(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

func num(v float64, unit string) string {
	switch {
	case unit == "MB":
		return fmt.Sprintf("%.2f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// table is the results as a markdown table.
func (r *results) table() string {
	var b strings.Builder
	b.WriteString("| measurement | unit | podrun median | podrun p10 – p90 | n | podman median | podman p10 – p90 | n | podman ÷ podrun |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, id := range metricOrder {
		m, ok := r.Samples[id]
		if !ok {
			continue
		}
		info := metricInfo[id]
		own, peer := summarize(m[podrunTool]), summarize(m[podmanTool])
		cells := []string{info.title, info.unit}
		if own.n > 0 {
			cells = append(cells, "**"+num(own.median, info.unit)+"**", num(own.p10, info.unit)+" – "+num(own.p90, info.unit), fmt.Sprint(own.n))
		} else {
			cells = append(cells, "–", "–", "0")
		}
		switch {
		case peer.n > 0:
			ratio := "–"
			if own.n > 0 && own.median > 0 {
				ratio = fmt.Sprintf("%.1f×", peer.median/own.median)
			}
			cells = append(cells, num(peer.median, info.unit), num(peer.p10, info.unit)+" – "+num(peer.p90, info.unit), fmt.Sprint(peer.n), ratio)
		default:
			cells = append(cells, "n/a", "", "", "")
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	fmt.Fprintf(&b, "| daemon: `podrun apply` → running, `podrun delete` → gone | | %s | | | | | | |\n", r.Daemon)
	return b.String()
}

func (r *results) markdown(c config) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Generated by `make bench` (bench/podbench); every figure below is a measured sample summary from the run\n")
	b.WriteString("described here, and rerunning the commands reproduces them up to the machine's noise.\n\n")
	fmt.Fprintf(&b, "* **Date:** %s\n", r.Date)
	m := r.Machine
	fmt.Fprintf(&b, "* **Machine:** %s; %d CPUs (`nproc`); %s memory; kernel %s; cgroup %s\n", m.CPU, m.NumCPU, m.Memory, m.Kernel, m.Cgroup)
	fmt.Fprintf(&b, "* **podrun:** %s (%s)\n", m.Podrun, m.Go)
	if m.Podman != "" {
		fmt.Fprintf(&b, "* **podman:** %s with runc, cgroupfs, netavark and the file events logger, from a containers.conf the benchmark writes (nothing system-wide is changed)\n", m.Podman)
	} else {
		fmt.Fprintf(&b, "* **podman:** %s\n", r.PeerNote)
	}
	b.WriteString("\n## Commands\n\n```sh\n")
	flags := fmt.Sprintf("-runs %d -runs100 %d -peer-runs %d -peer-runs100 %d", c.runs, c.runs100, c.peerRuns, c.peerRuns100)
	fmt.Fprintf(&b, "make bench BENCHFLAGS='%s'\n", flags)
	b.WriteString("# which builds bin/podrun, bin/bench/agent (static), bin/bench/probebench and bin/busybox.tar, then runs\n")
	fmt.Fprintf(&b, "go run ./bench/podbench %s\n", flags)
	b.WriteString("```\n\n")
	b.WriteString("It runs as root, with its own state directories, bridge, subnet (10.249.0.0/24) and cgroup root,\n")
	b.WriteString("and podman with its own storage root; it removes everything afterwards (`hack/leakcheck.sh` passes).\n\n")
	b.WriteString("## Results\n\n")
	b.WriteString("Medians, 10th and 90th percentiles over n runs; ms unless noted. Bold: podrun.\n\n")
	b.WriteString(r.table())
	b.WriteString("\n![startup latency distributions](benchmarks-startup.png)\n\n")
	b.WriteString("## What the numbers measure\n\n")
	b.WriteString("* The workload is `bench/agent`, a static program bind-mounted (hostPath) into busybox containers, so\n")
	b.WriteString("  both tools run the very same process. It appends `<CLOCK_BOOTTIME ns> <pod/container> Started` when it\n")
	b.WriteString("  starts and `… Exiting` on SIGTERM, then exits 0 at once. An init container logs Started and exits 0.\n")
	b.WriteString("* A latency starts just before the command is executed (or Ctrl-C sent) and ends at the first observable\n")
	b.WriteString("  effect: the last container's own stamp (\"running\", \"exited\"), the status row `3/3 Running` arriving\n")
	b.WriteString("  on podrun's stderr (\"Ready\"), or the command's exit (\"done\"). The Ready row can arrive a little before\n")
	b.WriteString("  the app's own first stamp: podrun counts a container running once its process exists, and the agent\n")
	b.WriteString("  needs a millisecond or two of Go runtime start before it writes. `podrun run` is measured cold: each run\n")
	b.WriteString("  is a new process that opens the image store, sets up the node network and then runs the pod.\n")
	b.WriteString("* Delete is Ctrl-C on `podrun run`: the kubelet's termination (apps first, then sidecars in reverse,\n")
	b.WriteString("  each after the one before it exited), then the sandbox is removed and the command exits.\n")
	b.WriteString("* Probe round trips are measured inside a real supervisor (bench/probebench wraps the node's container\n")
	b.WriteString("  and dialer): exec is the probe's `Exec` call in the container; HTTP is from the dial in the pod's\n")
	b.WriteString("  network namespace to the connection closed after the response. Probes run every second; the first 5\n")
	b.WriteString("  samples (warm-up) are dropped.\n")
	b.WriteString("* Memory is VmRSS (and VmHWM) of every process whose executable is the podrun binary, summed, divided\n")
	b.WriteString("  by 100; the containers' own processes are not counted, for either tool.\n")
	b.WriteString("* Images: a fresh, empty store each run; the image is the busybox test image (hack/testimage).\n\n")
	b.WriteString("## podman, side by side\n\n")
	if r.Machine.Podman == "" {
		b.WriteString("podman was not measured: " + r.PeerNote + ". Where installed, it runs the same YAML where it can:\n\n")
	} else {
		b.WriteString("podman ran the same YAML where it can. Where it cannot, the row says what it ran instead:\n\n")
	}
	for _, id := range metricOrder {
		if _, ok := r.Samples[id]; !ok {
			continue
		}
		if p := metricInfo[id].peer; p != "" {
			fmt.Fprintf(&b, "* %s: %s.\n", metricInfo[id].title, p)
		}
	}
	b.WriteString("* Every pod is `restartPolicy: Never`: podman 4.3 restarts init containers under the default Always.\n")
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes from this run\n\n")
		for _, n := range r.Notes {
			b.WriteString("* " + n + "\n")
		}
	}
	return b.String()
}

type machine struct {
	CPU, Memory, Kernel, Cgroup string
	NumCPU                      int
	Podrun, Go, Podman          string
}

func describeMachine(podrun string) machine {
	m := machine{NumCPU: goruntime.NumCPU(), Go: goruntime.Version(), Cgroup: cgroupMode()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command(podrun, "--version").Output(); err == nil {
		m.Podrun = strings.TrimSpace(string(out))
	}
	return m
}

func cgroupMode() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "v2 (unified)"
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		return "v1 (hybrid)"
	}
	return "v1"
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

// limitedBuffer keeps the first 64 KiB written to it.
type limitedBuffer struct{ bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 64<<10 - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
