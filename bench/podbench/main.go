// Command podbench measures podrun (podrun run, and podrun daemon through
// apply/delete and an API watch) and podman, where installed, on the same
// pods; it also runs the packages' own `go test -bench` benchmarks. It
// writes the results as a markdown page and a PNG plot. It drives the
// binaries from outside, like a user would; the workload is bench/agent,
// which stamps events with CLOCK_BOOTTIME (nanoseconds, one clock for the
// host and every container). `make bench` runs it.
//
// Every latency is measured from the moment the operation is started (just
// before the command is executed, or the signal sent) to the first
// observable effect: an event the container stamped, a status row on
// podrun's stderr (stamped on arrival), or the command's exit.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	podrun, agent, probebench, image string
	runs, runs100, peerRuns          int
	peerRuns100                      int
	podman                           string
	out, plot, jsonOut               string
	only                             string
	commandLine                      string
	goCmd, benchtime                 string
	lock                             string
}

// flags are the measurement flags, as the report's command line shows them.
func (c config) flags() string {
	return fmt.Sprintf("-runs %d -runs100 %d -peer-runs %d -peer-runs100 %d -benchtime %s", c.runs, c.runs100, c.peerRuns, c.peerRuns100, c.benchtime)
}

func main() {
	var c config
	flag.StringVar(&c.podrun, "podrun", "bin/podrun", "the podrun binary")
	flag.StringVar(&c.agent, "agent", "bin/bench/agent", "the static bench/agent binary")
	flag.StringVar(&c.probebench, "probebench", "bin/bench/probebench", "the bench/probebench binary (empty: skip probes)")
	flag.StringVar(&c.image, "image", "bin/busybox.tar", "the busybox image (docker save tarball, from hack/testimage)")
	flag.IntVar(&c.runs, "runs", 20, "runs of each podrun measurement")
	flag.IntVar(&c.runs100, "runs100", 20, "runs of podrun's 100-pod measurement")
	flag.IntVar(&c.peerRuns, "peer-runs", 20, "runs of each podman measurement")
	flag.IntVar(&c.peerRuns100, "peer-runs100", 3, "runs of podman's 100-pod measurement (each takes minutes)")
	flag.StringVar(&c.podman, "podman", "auto", "auto (when installed) or off")
	flag.StringVar(&c.out, "out", "docs/benchmarks.md", "the markdown report")
	flag.StringVar(&c.plot, "plot", "docs/benchmarks-startup.png", "the startup latency plot")
	flag.StringVar(&c.jsonOut, "json", "bin/bench/results.json", "every sample, as JSON")
	flag.StringVar(&c.only, "only", "", "run only the groups named, comma-separated (start1,sidecars,probes,pods100,image,daemon,daemon100,daemongrowth,gobench)")
	flag.StringVar(&c.goCmd, "go", "go", "the go command that runs the packages' benchmarks (go test -bench)")
	flag.StringVar(&c.benchtime, "benchtime", "50x", "go test -benchtime of the packages' benchmarks (Nx: N iterations, the samples of their medians)")
	flag.StringVar(&c.lock, "lock", "/tmp/podrun-root.lock", "a file flocked during each group of measurements (root test suites take it too); empty: none")
	flag.Parse()
	c.commandLine = "podbench " + fmt.Sprint(os.Args[1:])
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "podbench:", err)
		os.Exit(1)
	}
}

func run(c config) (retErr error) {
	if err := c.check(); err != nil {
		return err
	}
	// Ctrl-C stops the benchmark; each measurement then cleans up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp, err := os.MkdirTemp("", "podrun-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	res := &results{Machine: describeMachine(c.podrun), Date: time.Now().UTC().Format("2006-01-02 15:04 MST")}
	pr, err := newPodrunBench(ctx, c, tmp)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, pr.close()) }()
	db, err := newDaemonBench(ctx, c, tmp, pr.root)
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, db.close()) }()

	var pm *podmanBench
	if c.podman != "off" {
		pm, err = newPodmanBench(ctx, c, tmp)
		switch {
		case errors.Is(err, errNoPodman):
			res.PeerNote = err.Error()
			slog.Info("skipping podman", "why", err)
			pm = nil
		case err != nil:
			return fmt.Errorf("podman: %w", err)
		default:
			res.Machine.Podman = pm.version
			defer func() { retErr = errors.Join(retErr, pm.close()) }()
		}
	} else {
		res.PeerNote = "off (-podman off)"
	}

	res.note("Load average (1, 5, 15 min) at the start: " + loadavg() + "; other work may have shared the 2 cores.")
	groups := []struct {
		name string
		fn   func() error
	}{
		{"start1", func() error {
			return both(res, pr.start1, pm, func(pm *podmanBench) func(*results) error { return pm.start1 })
		}},
		{"sidecars", func() error {
			return both(res, pr.sidecars, pm, func(pm *podmanBench) func(*results) error { return pm.plainFour })
		}},
		{"probes", func() error {
			return both(res, pr.probes, pm, func(pm *podmanBench) func(*results) error { return pm.probes })
		}},
		{"pods100", func() error {
			return both(res, pr.pods100, pm, func(pm *podmanBench) func(*results) error { return pm.pods100 })
		}},
		{"image", func() error {
			return both(res, pr.images, pm, func(pm *podmanBench) func(*results) error { return pm.images })
		}},
		// podman's figures of start1, sidecars and pods100 are shown
		// against the daemon's rows too: it has no other way of running.
		{"daemon", func() error { return db.pods(res) }},
		{"daemon100", func() error { return db.pods100(res) }},
		{"daemongrowth", func() error { return db.growth(res) }},
		{"gobench", func() error { return goBenchmarks(ctx, c, res) }},
	}
	for _, g := range groups {
		if !selected(c.only, g.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		unlock, err := flock(c.lock)
		if err != nil {
			return err
		}
		slog.Info("measuring", "group", g.name)
		err = g.fn()
		unlock()
		if err != nil {
			return fmt.Errorf("%s: %w", g.name, err)
		}
	}
	res.note("Load average at the end: " + loadavg() + ".")
	res.Commands = c.commandLine
	return write(c, res)
}

// check makes the config's paths absolute and checks that what make bench
// builds is there.
func (c *config) check() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it runs pods)")
	}
	for _, p := range []*string{&c.podrun, &c.agent, &c.image} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("%w (make bench builds it)", err)
		}
		*p = abs
	}
	if c.probebench != "" {
		abs, err := filepath.Abs(c.probebench)
		if err != nil {
			return err
		}
		c.probebench = abs
	}
	return nil
}

// write writes the results as JSON, the plot and the markdown report, and
// prints the table.
func write(c config, res *results) error {
	if err := os.MkdirAll(filepath.Dir(c.jsonOut), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.jsonOut, b, 0o644); err != nil {
		return err
	}
	if err := writePlot(res, c.plot); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := os.WriteFile(c.out, []byte(res.markdown(c)), 0o644); err != nil {
		return err
	}
	fmt.Print(res.table())
	fmt.Printf("\nwrote %s, %s and %s\n", c.out, c.plot, c.jsonOut)
	return nil
}

// both runs podrun's measurement, then the peer's when there is a peer.
func both(res *results, own func(*results) error, pm *podmanBench, peer func(*podmanBench) func(*results) error) error {
	if err := own(res); err != nil {
		return err
	}
	if pm == nil {
		return nil
	}
	// A peer that fails here is reported, not fatal: podrun's figures stand.
	if err := peer(pm)(res); err != nil {
		slog.Warn("podman measurement failed", "err", err)
		res.note(fmt.Sprintf("podman failed in this group, its rows are incomplete: %.300s", err))
	}
	return nil
}

func selected(only, name string) bool {
	if only == "" {
		return true
	}
	return slices.Contains(strings.Split(only, ","), name)
}

// flock takes an exclusive flock on path (none if path is empty) and
// returns its release.
func flock(path string) (unlock func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	slog.Info("waiting for the lock", "file", path)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func randSuffix() string { return strconv.Itoa(10000 + rand.IntN(90000)) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
