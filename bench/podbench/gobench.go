package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// The packages whose `go test -bench` benchmarks podbench runs and
// collects: those with root benchmarks get -test.root (podbench runs as
// root), which the others would refuse.
var (
	goBenchRootPkgs = []string{"./runtime/", "./netns/", "./image/", "./cgroups/", "./volumes/"}
	goBenchPkgs     = []string{"./probes/", "./manifest/"}
)

// goBench is one result line of `go test -bench`.
type goBench struct {
	Pkg, Name string
	N         int
	NsPerOp   float64
	Metrics   []goMetric // the benchmark's own (b.ReportMetric), in its order
}

type goMetric struct {
	Value float64
	Unit  string
}

// goBenchAbout says what each benchmark times, from its doc comment.
var goBenchAbout = map[string]string{
	"runtime/Start":               "create + start a container until its process runs",
	"runtime/ExecTrue":            "exec of `true` in a running container, started and waited (an exec probe's core)",
	"runtime/Kill":                "SIGKILL, exit seen, Destroy; each iteration also starts the container it kills (in ns/op, not in the medians)",
	"runtime/Sandbox/pinned":      "CreateSandbox + Destroy: the pod's netns joined, UTS and IPC namespaces pinned",
	"runtime/Sandbox/SharePID":    "the same with a shared PID namespace (adds the pause process)",
	"netns/PodNetwork/steady":     "pod network Setup and Teardown (veth, address, NAT) with the bridge and nftables table already up",
	"netns/PodNetwork/first-pod":  "the same for a node's only pod: the bridge and table are made for it and removed after it",
	"image/PullBusybox":           "pull + unpack of busybox from a registry on 127.0.0.1 into an empty store",
	"image/LookupPresent":         "finding an image already in the store (IfNotPresent when present)",
	"image/Mount/mount":           "overlay mount of a container root filesystem",
	"image/Mount/unmount":         "its unmount",
	"probes/HTTPProbe":            "httpGet probe against a server on 127.0.0.1 (host network)",
	"probes/TCPProbe":             "tcpSocket probe against a listener on 127.0.0.1",
	"probes/GRPCProbe":            "grpc health probe against a server on 127.0.0.1",
	"cgroups/RealCreateRemovePod": "a pod cgroup created with its limits, then removed with its parents",
	"volumes/SetupTeardown":       "a pod's volumes set up and torn down: emptyDir on disk and in memory (tmpfs), a configMap, a secret",
	"manifest/LoadExamples":       "decode, default and validate the three example manifests",
	"manifest/InvalidCorpusFile":  "an invalid manifest to its field-accurate errors",
}

// goTestArgs is a go test command line: every iteration count fixed
// (benchtime Nx), one package at a time.
func goTestArgs(benchtime string, pkgs []string, root bool) []string {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchtime", benchtime, "-count", "1", "-p", "1"}, pkgs...)
	if root {
		args = append(args, "-args", "-test.root")
	}
	return args
}

// goBenchmarks runs the packages' benchmarks and collects their results.
func goBenchmarks(ctx context.Context, c config, res *results) error {
	var out bytes.Buffer
	var cmds []string
	for _, args := range [][]string{goTestArgs(c.benchtime, goBenchRootPkgs, true), goTestArgs(c.benchtime, goBenchPkgs, false)} {
		cmd := exec.CommandContext(ctx, c.goCmd, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w\n%s", c.goCmd, strings.Join(args, " "), err, out.String())
		}
		cmds = append(cmds, "go "+shellJoin(args))
	}
	benches, err := parseGoBench(out.Bytes())
	if err != nil {
		return err
	}
	if len(benches) == 0 {
		return fmt.Errorf("go test -bench reported no benchmark:\n%s", out.String())
	}
	res.GoBench = benches
	res.GoTest = strings.Join(cmds, "; ")
	return nil
}

// parseGoBench reads go test's benchmark lines ("BenchmarkX-2  N  V ns/op
// V unit ..."), each under the "pkg:" line of its package; a skipped or
// failed benchmark is an error.
func parseGoBench(out []byte) ([]goBench, error) {
	var benches []goBench
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "pkg: "):
			pkg = strings.TrimPrefix(line, "pkg: ")
			pkg = pkg[strings.LastIndex(pkg, "/")+1:]
		case strings.HasPrefix(line, "--- SKIP"), strings.HasPrefix(line, "--- FAIL"):
			return nil, fmt.Errorf("go test -bench, package %s: %s\n%s", pkg, line, out)
		case strings.HasPrefix(line, "Benchmark"):
			f := strings.Fields(line)
			if len(f) < 4 || len(f)%2 != 0 {
				continue // a benchmark's name alone, before its sub-benchmarks
			}
			name := strings.TrimPrefix(f[0], "Benchmark")
			if i := strings.LastIndex(name, "-"); i > 0 {
				if _, err := strconv.Atoi(name[i+1:]); err == nil {
					name = name[:i] // the GOMAXPROCS suffix
				}
			}
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return nil, fmt.Errorf("go test -bench line %q: %w", line, err)
			}
			gb := goBench{Pkg: pkg, Name: name, N: n}
			for i := 2; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return nil, fmt.Errorf("go test -bench line %q: %w", line, err)
				}
				switch f[i+1] {
				case "ns/op":
					gb.NsPerOp = v
				case "B/op", "allocs/op":
				default:
					gb.Metrics = append(gb.Metrics, goMetric{v, f[i+1]})
				}
			}
			benches = append(benches, gb)
		}
	}
	return benches, sc.Err()
}

// goBenchTable renders the go test benchmarks as markdown.
func (r *results) goBenchTable() string {
	if len(r.GoBench) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Package micro-benchmarks\n\n")
	b.WriteString("The packages' own `go test` benchmarks, run by `make bench` as root in this run (from the module's root):\n\n")
	b.WriteString("```sh\n" + r.GoTest + "\n```\n\n")
	b.WriteString("Each calls the package's API in one test process, n times in a row: no CLI, no process start, warm\n")
	b.WriteString("caches. The mean is go test's ns/op, over a whole loop iteration (set-up included where the benchmark\n")
	b.WriteString("does not stop its timer); the other figures are the benchmark's own, of the timed operation alone.\n\n")
	b.WriteString("| package | benchmark | what it times | n | mean | the benchmark's medians and p90 |\n")
	b.WriteString("|---|---|---|--:|--:|---|\n")
	for _, gb := range r.GoBench {
		var ms []string
		for _, m := range gb.Metrics {
			ms = append(ms, sig3(m.Value)+" "+m.Unit)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s |\n", gb.Pkg, gb.Name, goBenchAbout[gb.Pkg+"/"+gb.Name], gb.N, duration(gb.NsPerOp), strings.Join(ms, ", "))
	}
	b.WriteString("\n")
	return b.String()
}

// duration formats nanoseconds with 3 significant digits.
func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return sig3(ns/1e6) + " ms"
	case ns >= 1e3:
		return sig3(ns/1e3) + " µs"
	}
	return sig3(ns) + " ns"
}

// sig3 is v with 3 significant digits, or all its integer digits.
func sig3(v float64) string {
	if v >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// shellJoin quotes the arguments a shell would split or expand.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "^$*? '\"\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
