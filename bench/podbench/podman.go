package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

var errNoPodman = errors.New("unavailable (apt-get install podman runc to compare with it)")

// podmanBench runs `podman kube play` with a storage root and a
// containers.conf of its own: runc, the cgroupfs manager and the file
// events logger (this machine has no systemd), and rlimits root may set
// without CAP_SYS_RESOURCE.
type podmanBench struct {
	ctx     context.Context
	c       config
	dir     string
	runBase string // runroots live here
	version string
	env     []string
	global  []string
	n       int
}

func newPodmanBench(ctx context.Context, c config, tmp string) (*podmanBench, error) {
	path, err := exec.LookPath("podman")
	if err != nil {
		return nil, errNoPodman
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%w: podman --version: %v", errNoPodman, err)
	}
	// The comparison is podman with runc, podrun's runtime (Debian's podman
	// does not depend on it).
	if _, err := exec.LookPath("runc"); err != nil {
		return nil, fmt.Errorf("%w: podman is installed but runc is not (apt-get install runc)", errNoPodman)
	}
	b := &podmanBench{ctx: ctx, c: c, dir: filepath.Join(tmp, "podman"), runBase: "/run/podbench-" + randSuffix(), version: strings.TrimSpace(string(out))}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, err
	}
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		return nil, err
	}
	// podman's defaults (1048576) exceed the hard limits, which root cannot
	// raise here; NPROC is not enforced for root anyway.
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=%d:%d", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%s"
runtime = "runc"
`, nofile.Cur, nofile.Max, filepath.Join(b.dir, "events.log"))
	confPath := filepath.Join(b.dir, "containers.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	b.env = []string{"CONTAINERS_CONF=" + confPath}
	b.global = b.storage("main")
	if _, err := b.podman(nil, "load", "-i", c.image); err != nil {
		// The store is mounted already: nothing of it may stay.
		_, _ = b.podman(nil, "system", "reset", "-f")
		return nil, errors.Join(err, unmountUnder(b.dir, b.runBase), os.RemoveAll(b.runBase))
	}
	return b, nil
}

// storage is a podman store of its own: root and tmpdir under the
// benchmark's directory, the runroot under /run (podman wants it short).
func (b *podmanBench) storage(name string) []string {
	return []string{"--root", filepath.Join(b.dir, name, "root"), "--runroot", filepath.Join(b.runBase, name), "--tmpdir", filepath.Join(b.dir, name, "tmp")}
}

func (b *podmanBench) podman(global []string, args ...string) (float64, error) {
	if global == nil {
		global = b.global
	}
	return runTimed(b.ctx, b.env, "podman", append(append([]string{}, global...), args...)...)
}

// close removes every pod and the storage. `system reset` leaves the
// overlay driver's own mount of its storage directory (podman 4.3): every
// mount under the benchmark's directories goes too.
func (b *podmanBench) close() error {
	_, err1 := b.podman(nil, "pod", "rm", "-fa")
	_, err2 := b.podman(nil, "system", "reset", "-f")
	err3 := unmountUnder(b.dir, b.runBase)
	return errors.Join(err1, err2, err3, os.RemoveAll(b.runBase))
}

// unmountUnder detaches every mount at or below the directories, deepest
// first.
func unmountUnder(dirs ...string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		for _, d := range dirs {
			if f[4] == d || strings.HasPrefix(f[4], d+"/") {
				points = append(points, f[4])
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	var errs []error
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

func (b *podmanBench) newRun(yaml func(name, logDir string) string) (file, events string, err error) {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("run-%d", b.n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, "pod.yaml")
	return file, filepath.Join(dir, "events"), os.WriteFile(file, []byte(yaml(fmt.Sprintf("bench-%d", b.n), dir)), 0o644)
}

// play runs `podman kube play` and waits for want Started events: it
// returns ms from the command to the last of them.
func (b *podmanBench) play(file, events string, want int, timeout time.Duration) (float64, error) {
	p, err := startProc("podman", append(append([]string{}, b.global...), "kube", "play", file), b.env)
	if err != nil {
		return 0, err
	}
	// kube play exits once it started the pod; a failed play is an error.
	alive := func() error {
		select {
		case <-p.done:
			if p.err != nil {
				return fmt.Errorf("podman kube play: %v\n%s", p.err, p.stderr())
			}
		default:
		}
		return nil
	}
	running, err := waitEvents(b.ctx, events, "Started", want, timeout, alive)
	if _, werr := p.wait(timeout); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		_, _ = b.podman(nil, "kube", "down", file)
		return 0, err
	}
	return ms(p.start, running), nil
}

func (b *podmanBench) start1(res *results) error {
	return b.playDown(res, onePod, 1, mStart1, mStop1Done)
}

func (b *podmanBench) plainFour(res *results) error {
	return b.playDown(res, plainFourPod, 4, mSidecarsRunning, mSidecarsDone)
}

func (b *podmanBench) playDown(res *results, ctrs []ctr, started int, mStart, mDown string) error {
	for i := 0; i < b.c.peerRuns; i++ {
		file, evs, err := b.newRun(func(name, dir string) string { return podYAML(name, dir, agentDir(b.c), ctrs) })
		if err != nil {
			return err
		}
		d, err := b.play(file, evs, started, time.Minute)
		if err != nil {
			return err
		}
		down, err := b.podman(nil, "kube", "down", file)
		if err != nil {
			return err
		}
		res.add(mStart, podmanTool, d)
		res.add(mDown, podmanTool, down)
	}
	return nil
}

// probes times `podman healthcheck run` of an exec liveness probe: with
// no systemd, podman schedules no probes, so a CLI round trip is all
// there is to compare.
func (b *podmanBench) probes(res *results) error {
	probe := "      livenessProbe:\n        exec: {command: [/bin/true]}\n        periodSeconds: 1\n"
	file, evs, err := b.newRun(func(name, dir string) string {
		return podYAML(name, dir, agentDir(b.c), []ctr{{name: "app", extra: probe}})
	})
	if err != nil {
		return err
	}
	if _, err := b.play(file, evs, 1, time.Minute); err != nil {
		return err
	}
	defer func() { _, _ = b.podman(nil, "kube", "down", file) }()
	name := fmt.Sprintf("bench-%d-app", b.n)
	for i := 0; i < max(b.c.peerRuns, 20)+5; i++ {
		d, err := b.podman(nil, "healthcheck", "run", name)
		if err != nil {
			return err
		}
		if i >= 5 {
			res.add(mProbeExec, podmanTool, d)
		}
	}
	return nil
}

func (b *podmanBench) pods100(res *results) error {
	const pods = 100
	conmon := func(pid int, exe, comm string) bool { return comm == "conmon" || comm == "catatonit" }
	for i := 0; i < b.c.peerRuns100; i++ {
		file, evs, err := b.newRun(func(name, dir string) string { return manyPods(pods, name, dir, agentDir(b.c), plainPairPod) })
		if err != nil {
			return err
		}
		mem := sampleRSS(conmon)
		d, err := b.play(file, evs, 2*pods, 15*time.Minute)
		if err != nil {
			mem.stop()
			return err
		}
		time.Sleep(time.Second)
		steady, _, _ := rss(conmon)
		proportional := pss(conmon)
		peak, _ := mem.stop()
		down, err := b.podman(nil, "kube", "down", file)
		if err != nil {
			return err
		}
		res.add(m100Start, podmanTool, d)
		res.add(m100Stop, podmanTool, down)
		res.add(m100RSS, podmanTool, float64(steady)/1024/pods)
		res.add(m100Peak, podmanTool, float64(peak)/1024/pods)
		res.add(m100PSS, podmanTool, float64(proportional)/1024/pods)
	}
	return nil
}

func (b *podmanBench) images(res *results) error {
	reg, ref, err := serveImage()
	if err != nil {
		return err
	}
	defer reg.Close()
	for i := 0; i < b.c.peerRuns; i++ {
		for _, op := range []struct {
			metric string
			args   []string
		}{
			{mImageLoad, []string{"load", "-i", b.c.image}},
			{mImagePull, []string{"pull", "--tls-verify=false", ref}},
		} {
			global := b.storage(fmt.Sprintf("%s%d", op.args[0], i))
			d, err := b.podman(global, op.args...)
			if err != nil {
				return err
			}
			res.add(op.metric, podmanTool, d)
			if _, err := b.podman(global, "system", "reset", "-f"); err != nil {
				return err
			}
			if err := unmountUnder(filepath.Join(b.dir, fmt.Sprintf("%s%d", op.args[0], i))); err != nil {
				return err
			}
		}
	}
	return nil
}
