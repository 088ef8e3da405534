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
	mStop1Beyond     = "stop1.beyond"
	mStart1First     = "start1.first"
	mStop1DoneFirst  = "stop1.first.done"
	mSidecarsRunning = "sidecars.running"
	mSidecarsReady   = "sidecars.ready"
	mSidecarsExited  = "sidecars.exited"
	mSidecarsDone    = "sidecars.done"
	mSidecarsBeyond  = "sidecars.beyond"
	m100Start        = "pods100.start"
	m100Stop         = "pods100.stop"
	m100RSS          = "pods100.rss"
	m100Peak         = "pods100.peak"
	m100PSS          = "pods100.pss"

	mDStart1          = "daemon.start1"
	mDStop1Exited     = "daemon.stop1.exited"
	mDStop1Gone       = "daemon.stop1.gone"
	mDStop1Done       = "daemon.stop1.done"
	mDStop1Beyond     = "daemon.stop1.beyond"
	mDSidecarsRunning = "daemon.sidecars.running"
	mDSidecarsReady   = "daemon.sidecars.ready"
	mDSidecarsExited  = "daemon.sidecars.exited"
	mDSidecarsGone    = "daemon.sidecars.gone"
	mDSidecarsDone    = "daemon.sidecars.done"
	mDSidecarsBeyond  = "daemon.sidecars.beyond"
	mD100Start        = "daemon.pods100.start"
	mD100Ready        = "daemon.pods100.ready"
	mD100RSS          = "daemon.pods100.rss"
	mD100PSS          = "daemon.pods100.pss"
	mDDaemonRSS       = "daemon.pods100.daemon-rss"
	mDShimRSS         = "daemon.pods100.shim-rss"
	mDShimFile        = "daemon.pods100.shim-file"
	mDShimAnon        = "daemon.pods100.shim-anon"
	mDRestartAnswers  = "daemon.restart.answers"
	mDRestartListed   = "daemon.restart.listed"
	mD100Stop         = "daemon.pods100.stop"
	mDGrowthBase      = "daemon.growth.base"

	mProbeExec = "probe.exec"
	mProbeHTTP = "probe.http"
	mProbeCPU  = "probe.cpu"
	mImageLoad = "image.load"
	mImagePull = "image.pull"
)

// mDGrowthSteps are growth's steps of growthStep pods, in order.
var mDGrowthSteps = []string{"daemon.growth.25", "daemon.growth.50", "daemon.growth.75", "daemon.growth.100"}

// The sections of the results, in report order.
var sections = []struct{ id, title, intro string }{
	{"run", "`podrun run`: the pods in the foreground, in one process", ""},
	{"daemon", "`podrun daemon`: `podrun apply` / `podrun delete`, one shim process per pod",
		"The same pods, applied to a running daemon. \"In the API\" is what a watch of the daemon's API (api/client) " +
			"reported, stamped as each event arrived; READY and STATUS as `podrun get` shows them. " +
			"The 1-container and sidecar rows are measured beside a pod kept running meanwhile (the node's bridge and nftables " +
			"table up), as the `podrun run` rows are; what the node's first pod pays more is shown there."},
	{"probes", "Probes", ""},
	{"images", "Images", ""},
}

// metricInfo says what a measurement is; peer explains what podman ran
// instead, or why it has none; peerFrom names the measurement whose
// podman samples the row shows (podman has one way to run pods: `podman
// kube play` is compared with both podrun run and podrun apply).
var metricInfo = map[string]struct{ section, title, unit, peer, peerFrom string }{
	mStart1:          {"run", "1-container pod: command → container running", "ms", "", ""},
	mStop1Exited:     {"run", "1-container pod: delete → container exited", "ms", "podman 4.3 `kube down` SIGKILLs: no exit to observe", ""},
	mStop1Done:       {"run", "1-container pod: delete → command done (pod removed)", "ms", "`podman kube down`", ""},
	mStop1Beyond:     {"run", "1-container pod: the container's exit → command done (pod removed)", "ms", "", ""},
	mStart1First:     {"run", "1-container pod, the node's first (bridge and nftables table made for it): command → container running", "ms", "", ""},
	mStop1DoneFirst:  {"run", "… delete → command done (the bridge and table removed with it)", "ms", "", ""},
	mSidecarsRunning: {"run", "init + 2 sidecars + app: command → all running", "ms", "podman: init + 3 plain containers (podman 4.3 has no sidecars)", ""},
	mSidecarsReady:   {"run", "init + 2 sidecars + app: command → Ready (3/3)", "ms", "podman has no readiness without systemd", ""},
	mSidecarsExited:  {"run", "init + 2 sidecars + app: delete → all exited (app, then sidecars in reverse)", "ms", "podman 4.3 `kube down` SIGKILLs all at once, unordered", ""},
	mSidecarsDone:    {"run", "init + 2 sidecars + app: delete → command done (pod removed)", "ms", "podman: `kube down` of init + 3 plain containers", ""},
	mSidecarsBeyond:  {"run", "init + 2 sidecars + app: the last container's exit → command done (pod removed)", "ms", "", ""},
	m100Start:        {"run", "100 pods (sidecar + app) in one command → all 200 containers running", "ms", "podman: 100 pods of 2 plain containers", ""},
	m100Stop:         {"run", "100 pods: delete → command done", "ms", "`podman kube down`", ""},
	m100RSS:          {"run", "100 pods: resident memory (VmRSS) of podrun's processes per pod, while running", "MB", "podman: conmon + catatonit (infra) per pod", ""},
	m100Peak:         {"run", "100 pods: peak resident memory (VmHWM) of podrun's processes per pod", "MB", "podman: highest sum of conmon + catatonit VmRSS, per pod", ""},
	m100PSS:          {"run", "100 pods: proportional set size (PSS) of podrun's processes per pod, while running", "MB", "podman: conmon + catatonit PSS per pod", ""},

	mDStart1:          {"daemon", "1-container pod: `podrun apply` → container running", "ms", "", mStart1},
	mDStop1Exited:     {"daemon", "1-container pod: `podrun delete` → container exited", "ms", "", ""},
	mDStop1Gone:       {"daemon", "1-container pod: `podrun delete` → pod gone from the API", "ms", "", ""},
	mDStop1Done:       {"daemon", "1-container pod: `podrun delete` → command done", "ms", "", mStop1Done},
	mDStop1Beyond:     {"daemon", "1-container pod: the container's exit → pod gone from the API", "ms", "", ""},
	mDSidecarsRunning: {"daemon", "init + 2 sidecars + app: `podrun apply` → all running", "ms", "", mSidecarsRunning},
	mDSidecarsReady:   {"daemon", "init + 2 sidecars + app: `podrun apply` → Running, Ready 3/3 in the API", "ms", "", ""},
	mDSidecarsExited:  {"daemon", "init + 2 sidecars + app: `podrun delete` → all exited (app, then sidecars in reverse)", "ms", "", ""},
	mDSidecarsGone:    {"daemon", "init + 2 sidecars + app: `podrun delete` → pod gone from the API", "ms", "", ""},
	mDSidecarsDone:    {"daemon", "init + 2 sidecars + app: `podrun delete` → command done", "ms", "", mSidecarsDone},
	mDSidecarsBeyond:  {"daemon", "init + 2 sidecars + app: the last container's exit → pod gone from the API", "ms", "", ""},
	mD100Start:        {"daemon", "100 pods (sidecar + app) in one `podrun apply` → all 200 containers running", "ms", "", m100Start},
	mD100Ready:        {"daemon", "100 pods: `podrun apply` → all 100 Running, Ready 2/2 in the API", "ms", "", ""},
	mD100RSS:          {"daemon", "100 pods: VmRSS of the daemon + 100 shims, summed, per pod", "MB", "", m100RSS},
	mD100PSS:          {"daemon", "100 pods: PSS of the daemon + 100 shims, summed, per pod (shared pages split among their users)", "MB", "", m100PSS},
	mDDaemonRSS:       {"daemon", "100 pods: VmRSS of the daemon", "MB", "", ""},
	mDShimRSS:         {"daemon", "100 pods: VmRSS of one shim (median of the 100)", "MB", "", ""},
	mDShimFile:        {"daemon", "… of which file pages (RssFile: the podrun binary, shared by the daemon and every shim)", "MB", "", ""},
	mDShimAnon:        {"daemon", "… of which the shim's own memory (RssAnon)", "MB", "", ""},
	mDRestartAnswers:  {"daemon", "100 pods: `kill -9` of the daemon, a new daemon started → its API answers", "ms", "", ""},
	mDRestartListed:   {"daemon", "100 pods: … → it lists the 100 pods Running, Ready 2/2 again (no container restarted)", "ms", "", ""},
	mD100Stop:         {"daemon", "100 pods: `podrun delete -f` of their file → command done (all gone)", "ms", "", m100Stop},
	mDGrowthBase:      {"daemon", "the daemon's own memory (RssAnon), no pod (after a warm-up pod)", "MB", "", ""},
	mDGrowthSteps[0]:  {"daemon", "… what it grew per pod while 25 pods (sidecar + app) were added, from 0 to 25 pods", "kB", "", ""},
	mDGrowthSteps[1]:  {"daemon", "… per pod, 25 more: from 25 to 50", "kB", "", ""},
	mDGrowthSteps[2]:  {"daemon", "… per pod, 25 more: from 50 to 75", "kB", "", ""},
	mDGrowthSteps[3]:  {"daemon", "… per pod, 25 more: from 75 to 100", "kB", "", ""},

	mProbeExec: {"probes", "exec probe round trip (`/bin/true`)", "ms", "podman: `podman healthcheck run` (a CLI round trip; podman schedules probes only through systemd)", ""},
	mProbeHTTP: {"probes", "HTTP probe round trip (dial in the pod's netns → response read)", "ms", "podman runs httpGet probes as `curl` inside the container (absent from busybox)", ""},
	mProbeCPU:  {"probes", "CPU time per probe period of an idle pod (one exec + one HTTP probe; the probing process and its reaped children, the exec's runc init; after the warm-up)", "ms", "", ""},
	mImageLoad: {"images", "image load (busybox docker-save tarball) into an empty store", "ms", "`podman load` into an empty store", ""},
	mImagePull: {"images", "image pull + unpack (busybox, registry on loopback) into an empty store", "ms", "`podman pull` into an empty store", ""},
}

var metricOrder = []string{
	mStart1, mStop1Exited, mStop1Done, mStop1Beyond, mStart1First, mStop1DoneFirst,
	mSidecarsRunning, mSidecarsReady, mSidecarsExited, mSidecarsDone, mSidecarsBeyond,
	m100Start, m100Stop, m100RSS, m100Peak, m100PSS,
	mDStart1, mDStop1Exited, mDStop1Gone, mDStop1Done, mDStop1Beyond,
	mDSidecarsRunning, mDSidecarsReady, mDSidecarsExited, mDSidecarsGone, mDSidecarsDone, mDSidecarsBeyond,
	mD100Start, mD100Ready, mD100RSS, mD100PSS, mDDaemonRSS, mDShimRSS, mDShimFile, mDShimAnon,
	mDRestartAnswers, mDRestartListed, mD100Stop,
	mDGrowthBase, mDGrowthSteps[0], mDGrowthSteps[1], mDGrowthSteps[2], mDGrowthSteps[3],
	mProbeExec, mProbeHTTP, mProbeCPU, mImageLoad, mImagePull,
}

type results struct {
	mu       sync.Mutex
	Machine  machine
	Date     string
	Samples  map[string]map[string][]float64 // metric -> tool -> values
	PeerNote string                          // why there is no peer
	GoBench  []goBench                       // go test -bench results
	GoTest   string                          // the go test command line
	Commands string
	Notes    []string
	// Trace: scenario -> phase -> ms per run (podrun run --trace);
	// TraceStart: each phase's earliest start, for the table's order.
	Trace      map[string]map[string][]float64
	TraceStart map[string]map[string][]float64
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

// table is the results as markdown tables, one per section.
func (r *results) table() string {
	var b strings.Builder
	for _, sec := range sections {
		var rows []string
		for _, id := range metricOrder {
			if info := metricInfo[id]; info.section == sec.id {
				if row, ok := r.row(id); ok {
					rows = append(rows, row)
				}
			}
		}
		if len(rows) == 0 {
			continue
		}
		b.WriteString("### " + sec.title + "\n\n")
		if sec.intro != "" {
			b.WriteString(sec.intro + "\n\n")
		}
		b.WriteString("| measurement | unit | podrun median | podrun p10 – p90 | n | podman median | podman p10 – p90 | n | podman ÷ podrun |\n")
		b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
		b.WriteString(strings.Join(rows, ""))
		b.WriteString("\n")
	}
	return b.String()
}

// row is one measurement's table row; false when it was not measured.
func (r *results) row(id string) (string, bool) {
	m, ok := r.Samples[id]
	if !ok {
		return "", false
	}
	info := metricInfo[id]
	own, peer := summarize(m[podrunTool]), summarize(m[podmanTool])
	if info.peerFrom != "" {
		peer = summarize(r.Samples[info.peerFrom][podmanTool])
	}
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
	return "| " + strings.Join(cells, " | ") + " |\n", true
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
	flags := c.flags()
	fmt.Fprintf(&b, "make bench BENCHFLAGS='%s'\n", flags)
	b.WriteString("# which installs podman and runc when missing (hack/deps.sh bench), builds bin/podrun, bin/bench/agent (static),\n# bin/bench/probebench and bin/busybox.tar, then runs\n")
	fmt.Fprintf(&b, "go run ./bench/podbench -go go -lock '%s' %s\n", c.lock, flags)
	b.WriteString("```\n\n")
	b.WriteString("It runs as root, with its own state directories, bridges, subnets (10.249.0.0/24 for `podrun run`, 10.249.1.0/24\n")
	b.WriteString("for the daemon) and cgroup roots, and podman with its own storage root; it removes everything afterwards\n")
	b.WriteString("(`hack/leakcheck.sh` passes).")
	if c.lock != "" {
		b.WriteString(" Each group of measurements holds an flock on " + c.lock + ", which the project's\n")
		b.WriteString("root test suites take too, so that none of them runs on the machine meanwhile.")
	}
	b.WriteString("\n\n")
	b.WriteString("## Results\n\n")
	b.WriteString("Medians, 10th and 90th percentiles over n runs; ms unless noted. Bold: podrun.\n\n")
	b.WriteString(r.table())
	b.WriteString(r.traceTable())
	b.WriteString("![startup latency distributions](benchmarks-startup.png)\n\n")
	b.WriteString(r.goBenchTable())
	b.WriteString("## What the numbers measure\n\n")
	b.WriteString("* The workload is `bench/agent`, a static program bind-mounted (hostPath) into busybox containers, so\n")
	b.WriteString("  both tools run the very same process. It appends `<CLOCK_BOOTTIME ns> <pod/container> Started` when it\n")
	b.WriteString("  starts and `… Exiting` on SIGTERM, then exits 0 at once. An init container logs Started and exits 0.\n")
	b.WriteString("* A latency starts just before the command is executed (or Ctrl-C sent) and ends at the first observable\n")
	b.WriteString("  effect: the last container's own stamp (\"running\", \"exited\"), the status row `3/3 Running` arriving\n")
	b.WriteString("  on podrun's stderr (\"Ready\"), an event of the daemon's API watch arriving (\"in the API\", \"gone\"), or\n")
	b.WriteString("  the command's exit (\"done\"). The Ready row can arrive a little before the app's own first stamp: podrun\n")
	b.WriteString("  counts a container running once its process exists, and the agent needs a millisecond or two of Go\n")
	b.WriteString("  runtime start before it writes. Each `podrun run` is a new process that opens the image store and runs\n")
	b.WriteString("  the pod, with `--trace` (the per-phase tables). Meanwhile a keeper pod, in a `podrun run` of its own,\n")
	b.WriteString("  holds the node's bridge and nftables table up, as any other pod on the node would; the rows \"the node's\n")
	b.WriteString("  first\" run without it, so those runs make the bridge and table and remove them after the pod.\n")
	b.WriteString("* Delete is Ctrl-C on `podrun run`, and `podrun delete` for the daemon: the kubelet's termination (apps\n")
	b.WriteString("  first, then sidecars in reverse, each after the one before it exited; the benchmark checks the order of\n")
	b.WriteString("  the Exiting stamps), then the sandbox is removed, and the command exits. `podrun delete` waits for the pod\n")
	b.WriteString("  to be gone by asking the API every 100 ms, so \"command done\" is \"gone\" rounded up to that poll.\n")
	b.WriteString("* The daemon is started once per group and first runs one warm-up pod (not measured), which also proves\n")
	b.WriteString("  the benchmark's watch live; `podrun apply` and `podrun delete` are new client processes each run. The\n")
	b.WriteString("  100-pod runs then `kill -9` the daemon and start a new one (timed from its exec): it finds the shims\n")
	b.WriteString("  again by their sockets; the run fails if any container started twice or the API counts a restart.\n")
	b.WriteString("* Probe round trips are measured inside a real supervisor (bench/probebench wraps the node's container\n")
	b.WriteString("  and dialer): exec is the probe's `Exec` call in the container; HTTP is from the dial in the pod's\n")
	b.WriteString("  network namespace to the connection closed after the response. Probes run every second; the first 5\n")
	b.WriteString("  samples (warm-up) are dropped. The CPU time per probe period is getrusage (self + reaped children) of\n")
	b.WriteString("  bench/probebench from the warm-up's end to the last sample, divided by the exec probes in between: the\n")
	b.WriteString("  idle pod's whole cost per second with one exec and one HTTP probe a second.\n")
	b.WriteString("* Memory is read from /proc a second after all containers run: VmRSS (and VmHWM) from `status`, PSS from\n")
	b.WriteString("  `smaps_rollup`, summed over podrun's processes (`podrun run`: every process whose executable is the\n")
	b.WriteString("  podrun binary; the daemon: the daemon and its shims), divided by 100. VmRSS counts the binary's pages\n")
	b.WriteString("  once per process although the kernel holds them once; PSS divides each shared page among the processes\n")
	b.WriteString("  mapping it, so PSS sums to what the processes really use. The containers' own processes are not counted,\n")
	b.WriteString("  for either tool.\n")
	b.WriteString("* The daemon's growth: a new daemon each run (after its warm-up pod) gets 100 sidecar + app pods in four\n")
	b.WriteString("  `podrun apply` of 25, each once all its pods are Running and Ready in the API and a second has passed;\n")
	b.WriteString("  the daemon's RssAnon is read before the first and after each, and each step's growth is divided by its\n")
	b.WriteString("  25 pods. The Go heap grows by steps (a collection's target is twice the live heap), so one step may\n")
	b.WriteString("  carry another's growth; a cost per pod that rose with the number of pods would show in all of them.\n")
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
	b.WriteString("* podman has no daemon to set against `podrun daemon`: `podman kube play` starts the pods under conmon\n")
	b.WriteString("  processes and exits. So the daemon's rows with podman figures show the very same podman runs as the\n")
	b.WriteString("  matching `podrun run` rows.\n")
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
