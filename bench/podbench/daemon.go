package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
	"github.com/podrun/podrun/internal/kubectl"
)

// daemonBench drives `podrun daemon` the way a user does, through the
// client verbs (apply, delete), and reads what the API reports through a
// watch (api/client). The daemon has state directories, bridge, subnet
// and cgroup root of its own; it shares the image store of podrunBench.
type daemonBench struct {
	ctx      context.Context
	c        config
	dir      string
	sock     string
	runRoot  string
	nodeArgs []string
	cl       *client.Client
	d        *proc // the daemon, while one runs
	watch    *podWatch
	orphans  []int // shims a killed daemon left to this process
	n        int
}

func newDaemonBench(ctx context.Context, c config, tmp, root string) (*daemonBench, error) {
	sfx := randSuffix()
	b := &daemonBench{ctx: ctx, c: c, dir: filepath.Join(tmp, "daemon"), runRoot: "/run/podrun-benchd-" + sfx}
	b.sock = filepath.Join(b.dir, "podrun.sock")
	b.nodeArgs = []string{
		"--root", root,
		"--run-root", b.runRoot,
		"--log-dir", filepath.Join(b.dir, "logs"),
		"--bridge", "podrund" + sfx,
		"--subnet", "10.249.1.0/24",
		"--cgroup-root", "podrunbenchd" + sfx,
	}
	b.cl = client.New(b.sock)
	return b, os.MkdirAll(b.dir, 0o755)
}

// start starts a daemon and returns when its API first answered.
func (b *daemonBench) start() (answered float64, err error) {
	// Its own process group: a Ctrl-C at the terminal stops the benchmark,
	// which then deletes the pods through this daemon.
	p, err := startProcAttr(b.c.podrun, append([]string{"daemon", "--socket", b.sock}, b.nodeArgs...), nil, &syscall.SysProcAttr{Setpgid: true})
	if err != nil {
		return 0, err
	}
	b.d = p
	deadline := time.Now().Add(time.Minute)
	for {
		var list corev1.PodList
		err := b.cl.List(b.ctx, api.Pods, "", client.Selector{}, &list)
		if err == nil {
			return now(), nil
		}
		if err := p.alive(); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the daemon does not answer after a minute: %w\n%s", err, p.stderr())
		}
		select {
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// up starts a daemon with a watch of its pods, and proves the watch live
// with a warm-up pod (applied, Running, deleted; not measured).
func (b *daemonBench) up() error {
	if _, err := b.start(); err != nil {
		return err
	}
	b.watch = b.watchPods()
	file, _, err := b.newRun(func(name, dir string) string { return podYAML(name, dir, agentDir(b.c), onePod) })
	if err != nil {
		return err
	}
	name := fmt.Sprintf("bench-%d", b.n)
	running := b.watch.expect(podsReady([]string{name}))
	if err := b.verb("apply", "-f", file); err != nil {
		return err
	}
	if _, err := running.wait(time.Minute); err != nil {
		return fmt.Errorf("warm-up pod: %w", err)
	}
	gone := b.watch.expect(podsGone([]string{name}))
	if err := b.verb("delete", "pod", name); err != nil {
		return err
	}
	_, err = gone.wait(time.Minute)
	return err
}

// down deletes whatever pods are left, stops the daemon (SIGTERM), and
// reaps the shims of a killed daemon.
func (b *daemonBench) down() error {
	if b.d == nil {
		return nil
	}
	var errs []error
	if b.d.alive() == nil {
		// Also after Ctrl-C (b.ctx done): nothing may be left running.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var list corev1.PodList
		if err := b.cl.List(ctx, api.Pods, "", client.Selector{}, &list); err != nil {
			errs = append(errs, err)
		}
		for _, p := range list.Items {
			errs = append(errs, b.verb("delete", "pod", p.Name, "--grace-period", "2"))
		}
	}
	if b.watch != nil {
		b.watch.stop()
		b.watch = nil
	}
	if b.d.alive() == nil {
		if _, err := b.d.signal(syscall.SIGTERM); err != nil {
			errs = append(errs, err)
		}
		_, err := b.d.wait(30*time.Second, 0)
		errs = append(errs, err)
	}
	b.d.stop()
	b.d = nil
	errs = append(errs, b.reapOrphans(30*time.Second))
	return errors.Join(errs...)
}

func (b *daemonBench) close() error {
	err := b.down()
	return errors.Join(err, os.RemoveAll(b.runRoot))
}

// verb runs a client verb against the daemon and waits for it.
func (b *daemonBench) verb(args ...string) error {
	_, err := b.timedVerb(args...)
	return err
}

// timedVerb runs a client verb and returns when it was started and when
// it was done.
func (b *daemonBench) timedVerb(args ...string) (*proc, error) {
	p, err := startProc(b.c.podrun, append([]string{args[0], "--socket", b.sock}, args[1:]...), nil)
	if err != nil {
		return nil, err
	}
	if _, err := p.wait(5*time.Minute, 0); err != nil {
		return nil, fmt.Errorf("podrun %v: %w", args, err)
	}
	return p, nil
}

func (b *daemonBench) newRun(yaml func(name, logDir string) string) (file, events string, err error) {
	b.n++
	dir := filepath.Join(b.dir, fmt.Sprintf("run-%d", b.n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, "pod.yaml")
	return file, filepath.Join(dir, "events"), os.WriteFile(file, []byte(yaml(fmt.Sprintf("bench-%d", b.n), dir)), 0o644)
}

// pods: the 1-container pod and the init + 2 sidecars + app pod, each
// `podrun apply` → containers running (the agents' stamps) → Ready as
// the API reports it; then `podrun delete` → all exited (in the kubelet's
// order) → the pod gone from the API (watch) → the command done.
func (b *daemonBench) pods(res *results) (retErr error) {
	if err := b.up(); err != nil {
		return err
	}
	stop, err := b.keeper()
	if err != nil {
		return errors.Join(err, b.down())
	}
	defer func() { retErr = errors.Join(retErr, stop(), b.down()) }()
	for _, m := range []struct {
		ctrs                                       []ctr
		running, ready, exited, gone, done, beyond string
		exiting                                    []string // Exiting, in the kubelet's order
	}{
		{onePod, mDStart1, "", mDStop1Exited, mDStop1Gone, mDStop1Done, mDStop1Beyond, []string{"app"}},
		{sidecarPod, mDSidecarsRunning, mDSidecarsReady, mDSidecarsExited, mDSidecarsGone, mDSidecarsDone, mDSidecarsBeyond, []string{"app", "sidecar-2", "sidecar-1"}},
	} {
		for i := 0; i < b.c.runs; i++ {
			file, evs, err := b.newRun(func(name, dir string) string { return podYAML(name, dir, agentDir(b.c), m.ctrs) })
			if err != nil {
				return err
			}
			names := []string{fmt.Sprintf("bench-%d", b.n)}
			ready := b.watch.expect(podsReady(names))
			apply, err := b.timedVerb("apply", "-f", file)
			if err != nil {
				return err
			}
			running, err := waitEvents(b.ctx, evs, "Started", len(m.ctrs), time.Minute, b.d.alive)
			if err != nil {
				return err
			}
			readyAt, err := ready.wait(time.Minute)
			if err != nil {
				return err
			}
			gone := b.watch.expect(podsGone(names))
			del, err := b.timedVerb("delete", "pod", names[0])
			if err != nil {
				return err
			}
			goneAt, err := gone.wait(time.Minute)
			if err != nil {
				return err
			}
			stopped, err := exitOrder(mustRead(evs), m.exiting)
			if err != nil {
				return fmt.Errorf("pod %s: %w", names[0], err)
			}
			res.add(m.running, podrunTool, ms(apply.start, running))
			if m.ready != "" {
				res.add(m.ready, podrunTool, ms(apply.start, readyAt))
			}
			res.add(m.exited, podrunTool, ms(del.start, stopped))
			res.add(m.gone, podrunTool, ms(del.start, goneAt))
			res.add(m.done, podrunTool, ms(del.start, del.exitAt))
			res.add(m.beyond, podrunTool, ms(stopped, goneAt))
		}
	}
	return nil
}

// keeper applies a pod that stays for as long as the measured runs last,
// so that they find the node's bridge and nftables table up (the steady
// state, as podrunBench.keeper does for podrun run). It returns its
// deletion.
func (b *daemonBench) keeper() (stop func() error, err error) {
	file, _, err := b.newRun(func(name, dir string) string { return podYAML("keeper-"+name, dir, agentDir(b.c), onePod) })
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("keeper-bench-%d", b.n)
	running := b.watch.expect(podsReady([]string{name}))
	if err := b.verb("apply", "-f", file); err != nil {
		return nil, err
	}
	if _, err := running.wait(time.Minute); err != nil {
		return nil, fmt.Errorf("keeper pod: %w", err)
	}
	return func() error {
		gone := b.watch.expect(podsGone([]string{name}))
		if err := b.verb("delete", "pod", name); err != nil {
			return err
		}
		_, err := gone.wait(time.Minute)
		return err
	}, nil
}

// exitOrder checks that the containers logged Exiting in order (each
// once) and returns the time of the last.
func exitOrder(evs []event, order []string) (float64, error) {
	// The file is in write order; the stamps order the writers exactly.
	evs = slices.Clone(evs)
	slices.SortStableFunc(evs, func(x, y event) int { return cmp.Compare(x.at, y.at) })
	var got []string
	last := 0.0
	for _, e := range evs {
		if e.what == "Exiting" {
			got = append(got, filepath.Base(e.name))
			last = e.at
		}
	}
	if !slices.Equal(got, order) {
		return 0, fmt.Errorf("containers exited in the order %v, want %v", got, order)
	}
	return last, nil
}

// pods100: 100 pods (sidecar + app) in one `podrun apply` → all 200
// containers running → all Running and Ready in the API; the resident
// memory of the daemon and the 100 shims; kill -9 of the daemon → a new
// daemon answers → it lists the 100 pods Running and Ready again (no
// container restarted); then `podrun delete -f` of the file → done.
func (b *daemonBench) pods100(res *results) error {
	const pods = 100
	if err := b.up(); err != nil {
		return err
	}
	for i := 0; i < b.c.runs100; i++ {
		file, evs, err := b.newRun(func(name, dir string) string { return manyPods(pods, name, dir, agentDir(b.c), pairPod) })
		if err != nil {
			return err
		}
		names := make([]string, pods)
		for j := range names {
			names[j] = fmt.Sprintf("bench-%d-%03d", b.n, j)
		}
		ready := b.watch.expect(podsReady(names))
		apply, err := b.timedVerb("apply", "-f", file)
		if err != nil {
			return err
		}
		running, err := waitEvents(b.ctx, evs, "Started", 2*pods, 5*time.Minute, b.d.alive)
		if err != nil {
			return err
		}
		readyAt, err := ready.wait(5 * time.Minute)
		if err != nil {
			return err
		}
		res.add(mD100Start, podrunTool, ms(apply.start, running))
		res.add(mD100Ready, podrunTool, ms(apply.start, readyAt))

		// Let every status settle, then read the steady resident sets.
		time.Sleep(time.Second)
		if err := b.memory(res, pods); err != nil {
			return err
		}

		if err := b.kill9(); err != nil {
			return err
		}
		restart := now()
		answered, err := b.start()
		if err != nil {
			return err
		}
		b.watch = b.watchPods()
		listed, err := b.watch.expect(podsReady(names)).wait(5 * time.Minute)
		if err != nil {
			return fmt.Errorf("after the daemon's restart: %w", err)
		}
		if err := b.unchanged(evs, names, 2*pods); err != nil {
			return err
		}
		res.add(mDRestartAnswers, podrunTool, ms(restart, answered))
		res.add(mDRestartListed, podrunTool, ms(restart, listed))

		gone := b.watch.expect(podsGone(names))
		del, err := b.timedVerb("delete", "-f", file)
		if err != nil {
			return err
		}
		if _, err := gone.wait(5 * time.Minute); err != nil {
			return err
		}
		if n, _ := count(mustRead(evs), "Exiting"); n != 2*pods {
			return fmt.Errorf("%d containers logged Exiting, want %d", n, 2*pods)
		}
		res.add(mD100Stop, podrunTool, ms(del.start, del.exitAt))
		if err := b.reapOrphans(30 * time.Second); err != nil {
			return err
		}
	}
	return b.down()
}

// growth: the daemon's own memory (RssAnon) as pods are added, growthStep
// (sidecar + app) at a time up to 100, each step applied, Running and Ready
// in the API, then a second to settle: with no pod, and what each step
// added per pod. A per-pod cost that grew with the number of pods would
// show as rising rows. The pods are then deleted, file by file.
func (b *daemonBench) growth(res *results) error {
	for i := 0; i < b.c.runs100; i++ {
		if err := b.growthRun(res); err != nil {
			return errors.Join(err, b.down())
		}
	}
	return nil
}

// growthRun is one run of growth, in a new daemon: Go seldom gives a heap
// back, so a daemon that once ran 100 pods starts the next run with their
// memory and would show less growth.
func (b *daemonBench) growthRun(res *results) error {
	if err := b.up(); err != nil {
		return err
	}
	time.Sleep(time.Second)
	prev, err := readMem(b.d.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("the daemon's memory: %w", err)
	}
	res.add(mDGrowthBase, podrunTool, mb(prev.anon))
	var files, all []string
	for _, metric := range mDGrowthSteps {
		file, _, err := b.newRun(func(name, dir string) string {
			return manyPods(growthStep, name, dir, agentDir(b.c), pairPod)
		})
		if err != nil {
			return err
		}
		names := make([]string, growthStep)
		for j := range names {
			names[j] = fmt.Sprintf("bench-%d-%03d", b.n, j)
		}
		files, all = append(files, file), append(all, names...)
		ready := b.watch.expect(podsReady(names))
		if err := b.verb("apply", "-f", file); err != nil {
			return err
		}
		if _, err := ready.wait(5 * time.Minute); err != nil {
			return err
		}
		time.Sleep(time.Second)
		m, err := readMem(b.d.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("the daemon's memory: %w", err)
		}
		res.add(metric, podrunTool, float64(m.anon-prev.anon)/growthStep)
		prev = m
	}
	gone := b.watch.expect(podsGone(all))
	for _, f := range files {
		if err := b.verb("delete", "-f", f); err != nil {
			return err
		}
	}
	if _, err := gone.wait(5 * time.Minute); err != nil {
		return err
	}
	return b.down()
}

// growthStep is how many pods each step of growth adds.
const growthStep = 25

// memory reads the resident memory of the daemon and of every shim.
func (b *daemonBench) memory(res *results, pods int) error {
	daemon, err := readMem(b.d.cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("the daemon's memory: %w", err)
	}
	shims := b.shims()
	if len(shims) != pods {
		return fmt.Errorf("%d shims for %d pods", len(shims), pods)
	}
	total := daemon
	var rss, file, anon []float64
	for _, pid := range shims {
		m, err := readMem(pid)
		if err != nil {
			return fmt.Errorf("shim %d's memory: %w", pid, err)
		}
		total = total.plus(m)
		rss, file, anon = append(rss, mb(m.rss)), append(file, mb(m.file)), append(anon, mb(m.anon))
	}
	res.add(mD100RSS, podrunTool, mb(total.rss)/float64(pods))
	res.add(mD100PSS, podrunTool, mb(total.pss)/float64(pods))
	res.add(mDDaemonRSS, podrunTool, mb(daemon.rss))
	res.add(mDShimRSS, podrunTool, summarize(rss).median)
	res.add(mDShimFile, podrunTool, summarize(file).median)
	res.add(mDShimAnon, podrunTool, summarize(anon).median)
	return nil
}

func mb(kb int64) float64 { return float64(kb) / 1024 }

// kill9 kills the daemon with SIGKILL. Its shims are reparented to this
// process (a child subreaper meanwhile), which reaps them once their pods
// are deleted: this machine's PID 1 reaps orphans late, and a zombie
// named podrun fails the leak check.
func (b *daemonBench) kill9() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("becoming a child subreaper: %w", err)
	}
	// Only the daemon's death needs it: orphaned later, podman's conmon
	// would otherwise be left to this process too.
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
	b.watch.stop()
	b.watch = nil
	b.orphans = append(b.orphans, b.shims()...)
	if _, err := b.d.signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, err := b.d.wait(time.Minute, -1) // killed: exit code -1
	return err
}

// unchanged checks that no container of the pods started again: as many
// Started stamps as containers, and no restart in the API.
func (b *daemonBench) unchanged(evs string, names []string, containers int) error {
	if n, _ := count(mustRead(evs), "Started"); n != containers {
		return fmt.Errorf("%d Started stamps after the daemon's restart, want %d: containers started again", n, containers)
	}
	b.watch.mu.Lock()
	defer b.watch.mu.Unlock()
	for _, name := range names {
		if r := kubectl.Row(b.watch.pods[name], time.Now()); r.Restarts != "0" {
			return fmt.Errorf("pod %s: %s restarts after the daemon's restart", name, r.Restarts)
		}
	}
	return nil
}

// reapOrphans waits for the shims of a killed daemon to end (they end
// with their pods) and reaps them.
func (b *daemonBench) reapOrphans(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var left []int
	for _, pid := range b.orphans {
		for {
			var ws unix.WaitStatus
			n, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			if n == pid || err != nil { // reaped, or not this process' child
				break
			}
			if time.Now().After(deadline) {
				left = append(left, pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.orphans = left
	if len(left) > 0 {
		return fmt.Errorf("shims %v of a killed daemon still run after %v", left, timeout)
	}
	return nil
}

// shims are the pids of the shims of this daemon's run root.
func (b *daemonBench) shims() []int {
	want := []byte("shim\x00--dir\x00" + filepath.Join(b.runRoot, "pods") + "/")
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline"); err == nil && bytes.Contains(cmd, want) {
			out = append(out, pid)
		}
	}
	return out
}

// mem is a process' memory, kB: VmRSS split into its anonymous pages
// (its own) and its file pages (mostly the podrun binary, shared by every
// podrun process), and its proportional set size (shared pages divided
// among the processes sharing them).
type mem struct{ rss, anon, file, pss int64 }

func (m mem) plus(o mem) mem {
	return mem{m.rss + o.rss, m.anon + o.anon, m.file + o.file, m.pss + o.pss}
}

func readMem(pid int) (mem, error) {
	var m mem
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return m, err
	}
	rollup, err := os.ReadFile(dir + "/smaps_rollup")
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file, "Pss:": &m.pss}
	for _, l := range bytes.Split(append(status, rollup...), []byte("\n")) {
		f := bytes.Fields(l)
		if len(f) >= 2 && fields[string(f[0])] != nil {
			*fields[string(f[0])], _ = strconv.ParseInt(string(f[1]), 10, 64)
		}
	}
	return m, nil
}

// pss sums the proportional set sizes (kB) of the processes match selects.
func pss(match func(pid int, exe, comm string) bool) int64 {
	var total int64
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		exe, _ := os.Readlink(dir + "/exe")
		comm, _ := os.ReadFile(dir + "/comm")
		if !match(pid, strings.TrimSuffix(exe, " (deleted)"), string(bytes.TrimSpace(comm))) {
			continue
		}
		if m, err := readMem(pid); err == nil {
			total += m.pss
		}
	}
	return total
}

// podWatch follows the daemon's pods through one watch, and stamps the
// moment each awaited condition first held: conditions are checked in the
// watch's own goroutine, on every event, as it arrives.
type podWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards what follows
	pods    map[string]*corev1.Pod
	waiters []*waiter
	err     error // why the watch ended
}

type waiter struct {
	w    *podWatch
	cond func(map[string]*corev1.Pod) bool
	at   chan float64 // gets the stamp once cond held
}

func (b *daemonBench) watchPods() *podWatch {
	ctx, cancel := context.WithCancel(b.ctx)
	w := &podWatch{cancel: cancel, done: make(chan struct{}), pods: map[string]*corev1.Pod{}}
	go func() {
		defer close(w.done)
		err := b.cl.Watch(ctx, api.Pods, "", client.Selector{}, func(ev api.WatchEvent) error {
			at := now()
			var p corev1.Pod
			if err := json.Unmarshal(ev.Object, &p); err != nil {
				return fmt.Errorf("a %s event: %w", ev.Type, err)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			switch ev.Type {
			case "ADDED", "MODIFIED":
				w.pods[p.Name] = &p
			case "DELETED":
				delete(w.pods, p.Name)
			default:
				return fmt.Errorf("watch event %s: %s", ev.Type, ev.Object)
			}
			w.check(at)
			return nil
		})
		if err == nil || ctx.Err() != nil {
			err = errors.New("the watch was stopped")
		}
		w.mu.Lock()
		w.err = fmt.Errorf("watching the daemon's pods: %w", err)
		w.mu.Unlock()
	}()
	return w
}

// check fires the waiters whose condition holds now (w.mu held).
func (w *podWatch) check(at float64) {
	w.waiters = slices.DeleteFunc(w.waiters, func(x *waiter) bool {
		if !x.cond(w.pods) {
			return false
		}
		x.at <- at
		return true
	})
}

// expect registers cond before the action it awaits: the stamp is that of
// the event after which cond first held (now, if it holds already).
func (w *podWatch) expect(cond func(map[string]*corev1.Pod) bool) *waiter {
	x := &waiter{w: w, cond: cond, at: make(chan float64, 1)}
	w.mu.Lock()
	w.waiters = append(w.waiters, x)
	w.check(now())
	w.mu.Unlock()
	return x
}

func (x *waiter) wait(timeout time.Duration) (float64, error) {
	select {
	case at := <-x.at:
		return at, nil
	case <-x.w.done:
		x.w.mu.Lock()
		defer x.w.mu.Unlock()
		return 0, x.w.err
	case <-time.After(timeout):
		return 0, fmt.Errorf("the condition awaited in the API did not hold after %v", timeout)
	}
}

func (w *podWatch) stop() {
	w.cancel()
	<-w.done
}

// podsReady holds once every named pod is Running with all its
// containers ready, as `podrun get` shows it (READY n/n, STATUS Running).
func podsReady(names []string) func(map[string]*corev1.Pod) bool {
	return func(pods map[string]*corev1.Pod) bool {
		for _, n := range names {
			p := pods[n]
			if p == nil {
				return false
			}
			r := kubectl.Row(p, time.Now())
			total := strconv.Itoa(len(p.Spec.Containers) + sidecars(p))
			if r.Status != "Running" || r.Ready != total+"/"+total {
				return false
			}
		}
		return true
	}
}

func sidecars(p *corev1.Pod) int {
	n := 0
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			n++
		}
	}
	return n
}

// podsGone holds once none of the named pods exists.
func podsGone(names []string) func(map[string]*corev1.Pod) bool {
	return func(pods map[string]*corev1.Pod) bool {
		for _, n := range names {
			if pods[n] != nil {
				return false
			}
		}
		return true
	}
}
