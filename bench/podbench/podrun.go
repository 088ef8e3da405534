package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/podrun/podrun/image/imagetest"
)

// podrunBench runs `podrun run` with state directories, bridge, subnet
// and cgroup root of its own, so it never touches a user's pods.
type podrunBench struct {
	ctx      context.Context
	c        config
	dir      string
	root     string
	runRoot  string
	nodeArgs []string
	n        int // pods made so far, for unique names
}

func newPodrunBench(ctx context.Context, c config, tmp string) (*podrunBench, error) {
	sfx := randSuffix()
	b := &podrunBench{ctx: ctx, c: c, dir: filepath.Join(tmp, "podrun"), runRoot: "/run/podrun-bench-" + sfx}
	b.root = filepath.Join(b.dir, "root")
	b.nodeArgs = []string{
		"--root", b.root,
		"--run-root", b.runRoot,
		"--log-dir", filepath.Join(b.dir, "logs"),
		"--bridge", "podrunb" + sfx,
		"--subnet", "10.249.0.0/24",
		"--cgroup-root", "podrunbench" + sfx,
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, err
	}
	if out, err := exec.Command(c.podrun, "image", "load", "-i", c.image, "--root", b.root).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("podrun image load: %w\n%s", err, out)
	}
	return b, nil
}

func (b *podrunBench) close() error { return os.RemoveAll(b.runRoot) }

// newRun makes a fresh event log directory and a pod file.
func (b *podrunBench) newRun(yaml func(name, logDir string) string) (file, events string, err error) {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("run-%d", b.n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, "pod.yaml")
	return file, filepath.Join(dir, "events"), os.WriteFile(file, []byte(yaml(fmt.Sprintf("bench-%d", b.n), dir)), 0o644)
}

func (b *podrunBench) start(file string) (*proc, error) {
	return startProc(b.c.podrun, append(append([]string{"run", "--trace", traceFile(file)}, b.nodeArgs...), file), nil)
}

func traceFile(podFile string) string { return filepath.Join(filepath.Dir(podFile), "trace.jsonl") }

// keeper runs a pod of its own in another `podrun run` for as long as the
// measured runs last, so that they find the node's bridge and nftables
// table up (the steady state); the first pod of a node is measured apart.
// It returns the keeper's stop.
func (b *podrunBench) keeper() (stop func() error, err error) {
	file, evs, err := b.newRun(func(name, dir string) string { return podYAML("keeper-"+name, dir, agentDir(b.c), onePod) })
	if err != nil {
		return nil, err
	}
	p, err := startProc(b.c.podrun, append(append([]string{"run", "-q"}, b.nodeArgs...), file), nil)
	if err != nil {
		return nil, err
	}
	if _, err := waitEvents(b.ctx, evs, "Started", 1, time.Minute, p.alive); err != nil {
		p.stop()
		return nil, fmt.Errorf("keeper pod: %w", err)
	}
	return func() error {
		defer p.stop()
		_, _, err := b.interrupt(p)
		return err
	}, nil
}

// interrupt deletes the pods the way Ctrl-C does and returns when the
// signal went and when podrun had exited (every pod torn down).
func (b *podrunBench) interrupt(p *proc) (sent, exited float64, err error) {
	sent, err = p.signal(syscall.SIGINT)
	if err != nil {
		return 0, 0, err
	}
	exited, err = p.wait(2*time.Minute, 0, 130)
	return sent, exited, err
}

func agentDir(c config) string { return filepath.Dir(c.agent) }

func ms(from, to float64) float64 { return (to - from) * 1000 }

// start1: a 1-container pod, from `podrun run` to the container running,
// then from Ctrl-C to the container exited and to podrun exited; first as
// the node's only pod (half the runs, at least 3), then beside a keeper.
func (b *podrunBench) start1(res *results) error {
	if err := b.start1Runs(res, max(b.c.runs/2, 3), true); err != nil {
		return err
	}
	stop, err := b.keeper()
	if err != nil {
		return err
	}
	return errors.Join(b.start1Runs(res, b.c.runs, false), stop())
}

func (b *podrunBench) start1Runs(res *results, runs int, first bool) error {
	for i := 0; i < runs; i++ {
		file, evs, err := b.newRun(func(name, dir string) string { return podYAML(name, dir, agentDir(b.c), onePod) })
		if err != nil {
			return err
		}
		p, err := b.start(file)
		if err != nil {
			return err
		}
		err = func() error {
			defer p.stop()
			started, err := waitEvents(b.ctx, evs, "Started", 1, time.Minute, p.alive)
			if err != nil {
				return err
			}
			sent, exited, err := b.interrupt(p)
			if err != nil {
				return err
			}
			stopped, err := exitOrder(mustRead(evs), []string{"app"})
			if err != nil {
				return err
			}
			if first {
				res.add(mStart1First, podrunTool, ms(p.start, started))
				res.add(mStop1DoneFirst, podrunTool, ms(sent, exited))
				return res.addTrace(traceFirstPod, traceFile(file), p.start)
			}
			res.add(mStart1, podrunTool, ms(p.start, started))
			res.add(mStop1Exited, podrunTool, ms(sent, stopped))
			res.add(mStop1Done, podrunTool, ms(sent, exited))
			res.add(mStop1Beyond, podrunTool, ms(stopped, exited))
			return res.addTrace(traceStart1, traceFile(file), p.start)
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

var readyRow = regexp.MustCompile(`^bench-\d+\s+3/3\s+Running\b`)

// sidecars: init-1 + sidecar-1 + sidecar-2 + app, from `podrun run` to
// all running and to Ready (the status row READY 3/3 Running), then from
// Ctrl-C to all exited (they exit at once on SIGTERM).
func (b *podrunBench) sidecars(res *results) (retErr error) {
	stop, err := b.keeper()
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, stop()) }()
	for i := 0; i < b.c.runs; i++ {
		file, evs, err := b.newRun(func(name, dir string) string { return podYAML(name, dir, agentDir(b.c), sidecarPod) })
		if err != nil {
			return err
		}
		p, err := b.start(file)
		if err != nil {
			return err
		}
		err = func() error {
			defer p.stop()
			// Started of init-1, sidecar-1, sidecar-2 and app.
			running, err := waitEvents(b.ctx, evs, "Started", 4, time.Minute, p.alive)
			if err != nil {
				return err
			}
			ready, err := p.waitLine(b.ctx, readyRow, time.Minute)
			if err != nil {
				return err
			}
			sent, exited, err := b.interrupt(p)
			if err != nil {
				return err
			}
			stopped, err := exitOrder(mustRead(evs), []string{"app", "sidecar-2", "sidecar-1"})
			if err != nil {
				return err
			}
			res.add(mSidecarsRunning, podrunTool, ms(p.start, running))
			res.add(mSidecarsReady, podrunTool, ms(p.start, ready))
			res.add(mSidecarsExited, podrunTool, ms(sent, stopped))
			res.add(mSidecarsDone, podrunTool, ms(sent, exited))
			res.add(mSidecarsBeyond, podrunTool, ms(stopped, exited))
			return res.addTrace(traceSidecars, traceFile(file), p.start)
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func mustRead(path string) []event {
	evs, err := readEvents(path)
	if err != nil {
		slog.Warn("reading events", "file", path, "err", err)
	}
	return evs
}

// probes runs bench/probebench: exec and HTTP probe round trips inside a
// real supervisor.
func (b *podrunBench) probes(res *results) error {
	if b.c.probebench == "" {
		return nil
	}
	dir := filepath.Join(b.dir, "probes")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	n := max(b.c.runs, 20) + 5
	args := append(append([]string{}, b.nodeArgs...), "-agent", b.c.agent, "-dir", dir, "-n", fmt.Sprint(n))
	cmd := exec.CommandContext(b.ctx, b.c.probebench, args...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("probebench: %w\n%s", err, stderr.String())
	}
	var r struct{ Exec, HTTP, CPUPerPeriod []float64 }
	if err := json.Unmarshal(out, &r); err != nil {
		return fmt.Errorf("probebench output: %w", err)
	}
	// The first few include the container's warm-up; keep the steady state.
	res.add(mProbeExec, podrunTool, trimFirst(r.Exec, 5)...)
	res.add(mProbeHTTP, podrunTool, trimFirst(r.HTTP, 5)...)
	res.add(mProbeCPU, podrunTool, r.CPUPerPeriod...)
	return nil
}

func trimFirst(v []float64, k int) []float64 {
	if len(v) > k {
		return v[k:]
	}
	return v
}

// pods100: 100 pods of a sidecar and an app in one `podrun run`, to all
// 200 containers running; the resident memory of podrun's processes while
// they run; then Ctrl-C to podrun exited.
func (b *podrunBench) pods100(res *results) error {
	const pods = 100
	for i := 0; i < b.c.runs100; i++ {
		file, evs, err := b.newRun(func(name, dir string) string { return manyPods(pods, name, dir, agentDir(b.c), pairPod) })
		if err != nil {
			return err
		}
		p, err := b.start(file)
		if err != nil {
			return err
		}
		err = func() error {
			defer p.stop()
			mem := sampleRSS(func(pid int, exe, comm string) bool { return exe == b.c.podrun })
			running, err := waitEvents(b.ctx, evs, "Started", 2*pods, 5*time.Minute, p.alive)
			if err != nil {
				mem.stop()
				return err
			}
			// Let every status settle, then read the steady resident set.
			time.Sleep(time.Second)
			ours := func(pid int, exe, comm string) bool { return exe == b.c.podrun }
			steady, _, procs := rss(ours)
			proportional := pss(ours)
			sent, exited, err := b.interrupt(p)
			peakRSS, peakHWM := mem.stop()
			if err != nil {
				return err
			}
			if n, _ := count(mustRead(evs), "Exiting"); n != 2*pods {
				return fmt.Errorf("%d containers logged Exiting, want %d", n, 2*pods)
			}
			res.add(m100Start, podrunTool, ms(p.start, running))
			res.add(m100Stop, podrunTool, ms(sent, exited))
			res.add(m100RSS, podrunTool, float64(steady)/1024/pods)
			res.add(m100Peak, podrunTool, float64(max(peakRSS, peakHWM))/1024/pods)
			res.add(m100PSS, podrunTool, float64(proportional)/1024/pods)
			res.note(fmt.Sprintf("100 pods: podrun ran as %d process(es) (every process whose executable is the podrun binary).", procs))
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// rssSampler polls the resident memory of some processes until stopped.
type rssSampler struct {
	quit chan struct{}
	done chan struct{}
	peak int64 // highest sum of VmRSS seen
	hwm  int64 // highest sum of VmHWM seen
}

func sampleRSS(match func(pid int, exe, comm string) bool) *rssSampler {
	s := &rssSampler{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			r, h, _ := rss(match)
			s.peak, s.hwm = max(s.peak, r), max(s.hwm, h)
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() (peakKB, hwmKB int64) {
	close(s.quit)
	<-s.done
	return s.peak, s.hwm
}

// images: `podrun image load` of the busybox tarball, and `podrun image
// pull` of the same image from a registry on loopback, each into an empty
// store.
func (b *podrunBench) images(res *results) error {
	reg, ref, err := serveImage()
	if err != nil {
		return err
	}
	defer reg.Close()
	for i := 0; i < b.c.runs; i++ {
		root := filepath.Join(b.dir, fmt.Sprintf("images-%d", i))
		d, err := runTimed(b.ctx, nil, b.c.podrun, "image", "load", "-i", b.c.image, "--root", root+"-load")
		if err != nil {
			return err
		}
		res.add(mImageLoad, podrunTool, d)
		d, err = runTimed(b.ctx, nil, b.c.podrun, "image", "pull", "--root", root+"-pull", ref)
		if err != nil {
			return err
		}
		res.add(mImagePull, podrunTool, d)
		for _, r := range []string{root + "-load", root + "-pull"} {
			if err := os.RemoveAll(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// serveImage serves the busybox test image from a registry on loopback.
func serveImage() (io.Closer, string, error) {
	img, err := imagetest.Busybox()
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{Handler: registry.New(registry.Logger(nopLogger())), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("test registry", "err", err)
		}
	}()
	ref := ln.Addr().String() + "/library/busybox:latest"
	if _, err := imagetest.PushE(ref, img, nil); err != nil {
		srv.Close()
		return nil, "", err
	}
	return srv, ref, nil
}
