package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/podrun/podrun/internal/trace"
	"golang.org/x/sys/unix"
)

// Mount is a bind mount into a container: a volume, /etc/hosts,
// /etc/resolv.conf, /etc/hostname, the termination log.
type Mount struct {
	Source, Destination string // absolute host path, absolute container path
	ReadOnly            bool
	// Propagation: "" or "rprivate" (Kubernetes None), "rslave"
	// (HostToContainer), "rshared" (Bidirectional).
	Propagation string
	// RecursiveReadOnly makes every submount of the source read-only too
	// (runc's "rro": mount_setattr MOUNT_ATTR_RDONLY with AT_RECURSIVE). It
	// needs ReadOnly, private propagation and RecursiveReadOnlySupported.
	RecursiveReadOnly bool
}

// Spec describes one container. The pod supervisor translates the pod spec
// into it; nothing here knows about pods beyond what it says.
type Spec struct {
	ID      string // unique among containers, [A-Za-z0-9_+.-]
	Rootfs  string // absolute path of the prepared root filesystem
	Sandbox *Sandbox

	Args, Env      []string // Env lacking PATH gets the usual default; HOSTNAME is added
	Cwd            string   // default "/"
	UID, GID       uint32
	AdditionalGIDs []uint32
	Mounts         []Mount

	CgroupPath string             // absolute, e.g. /podrun/burstable/pod<uid>/<container>
	Resources  *cgroups.Resources // limits; device rules are added here
	// CgroupSystemd makes the leaf a systemd scope, created through
	// systemd's D-Bus API with the limits as its properties: CgroupPath is
	// then the scope's path, <slice path>/<prefix>-<name>.scope, in the
	// slice whose path is its parent (see SystemdCgroup).
	CgroupSystemd bool

	Privileged, ReadOnlyRootfs, NoNewPrivileges bool
	CapAdd, CapDrop                             []string // Kubernetes spelling, relative to containerd's default set
	OOMScoreAdj                                 *int     // negative needs CAP_SYS_RESOURCE: dropped with a warning without it
	Sysctls                                     map[string]string

	// Seccomp is the seccomp profile type: "" or SeccompUnconfined for no
	// filter, SeccompRuntimeDefault for containerd's default profile,
	// SeccompLocalhost for the OCI JSON profile at SeccompProfile (an
	// absolute path: the kubelet's <seccomp root>/<localhostProfile>). A
	// privileged container gets no filter whatever it says, as in
	// containerd. A Localhost profile that cannot be loaded fails Start
	// with an error that is ErrSeccompProfile.
	Seccomp        string
	SeccompProfile string

	// AppArmor is the AppArmor profile type: "" or AppArmorUnconfined for
	// none, AppArmorRuntimeDefault for podrun's default profile
	// (AppArmorDefaultProfile, loaded with apparmor_parser on first use;
	// none for a privileged container, as in containerd),
	// AppArmorLocalhost for the profile named AppArmorProfile, which must
	// be loaded already. A profile that cannot be applied (no AppArmor on
	// the host, a Localhost profile not loaded, no apparmor_parser) fails
	// Start with an error that is ErrAppArmorProfile.
	AppArmor        string
	AppArmorProfile string

	// LogPath is the CRI log file (appended to, created 0640 with its
	// parent dirs): "<RFC3339Nano> stdout|stderr F|P <text>" lines. "" keeps
	// no log.
	LogPath string
	// LogMaxSize and LogMaxFiles bound the log as the kubelet's
	// containerLogMaxSize and containerLogMaxFiles (0: their defaults,
	// DefaultLogMaxSize and DefaultLogMaxFiles): before a record would take
	// LogPath past LogMaxSize bytes it is renamed LogPath.<timestamp>
	// (uncompressed) and a new LogPath opened; LogMaxFiles counts LogPath
	// and the rotated files kept. LogFiles lists them in order.
	LogMaxSize  int64
	LogMaxFiles int
	// Output, if set, is called with every log record's text (a line, or a
	// piece of a line longer than 16 KiB) from the stream's copier
	// goroutine: it must not block for long.
	Output func(stream, line string)
	// Raw, if set, is called with the output as it is read, before it is
	// cut into log records (kubectl attach), from the copier goroutines: it
	// must not block for long nor keep p.
	Raw func(stream string, p []byte)

	TTY   bool // a terminal: stdout and stderr merged into the "stdout" stream
	Stdin bool // keep stdin open for Container.Stdin
}

// Exit is how a container's init process ended.
type Exit struct {
	Code       int            // exit status, or 128+signal when killed by a signal (as CRI)
	Signal     syscall.Signal // the killing signal, 0 when it exited
	OOMKilled  bool           // its cgroup's oom_kill counter went up while it ran
	FinishedAt time.Time
	// Unknown: the exit status is lost because the container was
	// re-attached (Load) after the process that started it ended. Code is
	// then meaningless.
	Unknown bool
}

// Container is a started (or re-attached) container. Its methods are safe
// for concurrent use.
type Container struct {
	id         string
	lc         *libcontainer.Container
	cgm        cgroups.Manager // the container's leaf cgroup, for OOM counts and pids
	cgroupPath string
	pid        int
	startedAt  time.Time
	privatePID bool // its own PID namespace: the init's death kills all of it
	defaults   procDefaults
	io         *stdio // nil when re-attached

	done chan struct{} // closed once the init is reaped and output drained
	exit Exit          // written before done is closed

	execMu   sync.Mutex
	idleExec []execCgroup // empty exec cgroups for reuse, at most maxIdleExec
	// execClosed: Destroy began; no exec cgroup may be made any more (on
	// v1 making one would make the container's removed leaf again).
	execClosed bool

	destroyMu sync.Mutex // serialises Destroy
	destroyed bool
}

// Timeouts of the slow paths; the normal ones take milliseconds.
const (
	// drainTimeout bounds the wait for output after a process ended: a
	// straggler that inherited the pipe must not hold Done or Exec forever.
	drainTimeout = 2 * time.Second
	// killWait bounds the wait for SIGKILLed processes to disappear.
	killWait = 10 * time.Second
	// strayWait is how long a SIGKILLed init may take before runc's stray
	// zombies are looked for: well within killWait.
	strayWait = 2 * time.Second
)

// Start creates and starts a container and returns once its process runs.
// On error nothing is left: no container, cgroup, process or new log file.
func (r *Runtime) Start(ctx context.Context, s *Spec) (*Container, error) {
	cr, err := r.Create(ctx, s)
	if err != nil {
		return nil, err
	}
	return cr.Start(ctx)
}

// Created is a container created up to its start: its cgroup, state and
// log exist, and its init (runc init) has set up its namespaces and root
// and waits at the exec fifo. Exactly one of Start and Discard must follow.
type Created struct {
	s         *Spec
	lc        *libcontainer.Container
	p         *libcontainer.Process
	cgm       cgroups.Manager
	oomBefore uint64
	defaults  procDefaults
	sio       *stdio
	copiers   *sync.WaitGroup
	sink      *logSink
	undoSink  func()
	private   bool // its own PID namespace
}

// Create does all of Start but the start of the container's process. On
// error nothing is left.
func (r *Runtime) Create(ctx context.Context, s *Spec) (_ *Created, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start container %s: %w", s.ID, err)
	}
	sp := trace.Start(ctx, "create")
	defer sp.End()
	cfg, defaults, err := r.config(s)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	cr := &Created{s: s, defaults: defaults, copiers: &sync.WaitGroup{}, private: cfg.Namespaces.IsPrivate(configs.NEWPID)}
	if cr.sink, cr.undoSink, err = newSink(s); err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	defer func() {
		if retErr != nil {
			cr.undoSink()
		}
	}()
	cr.p = &libcontainer.Process{
		Args: s.Args, Env: defaults.Env, Cwd: defaults.Cwd,
		UID: int(s.UID), GID: int(s.GID), AdditionalGroups: toInts(s.AdditionalGIDs),
		Init: true,
	}
	if cr.sio, err = newStdio(cr.p, s.TTY, s.Stdin, !s.TTY, !s.TTY); err != nil {
		return nil, fmt.Errorf("container %s: %w", s.ID, err)
	}
	defer func() {
		if retErr != nil {
			cr.sio.closeChild()
			cr.sio.close()
			cr.copiers.Wait()
		}
	}()
	if cr.lc, err = libcontainer.Create(r.root, s.ID, cfg); err != nil {
		return nil, fmt.Errorf("create container %s: %w", s.ID, err)
	}
	defer func() {
		if retErr != nil {
			if err := cr.lc.Destroy(); err != nil {
				slog.Warn("rolling back container", "container", s.ID, "err", err)
			}
		}
	}()
	if cr.cgm, err = manager.New(cfg.Cgroups); err != nil {
		return nil, fmt.Errorf("container %s: cgroup: %w", s.ID, err)
	}
	// The leaf usually does not exist yet (0); if it does, only a rise counts.
	cr.oomBefore, _ = cr.cgm.OOMKillCount()

	// Read before the start: a chatty init must never block on a full pipe.
	copyPipes(cr.copiers, cr.sio, cr.sink)
	if err := cr.lc.Start(cr.p); err != nil {
		// Run kills what it started, except an init that died by itself.
		if _, perr := cr.p.Pid(); perr == nil {
			killInit(cr.p)
		}
		return nil, fmt.Errorf("start container %s: %w", s.ID, err)
	}
	return cr, nil
}

// Start starts the container's process and returns once it runs. On error
// nothing of the container is left.
func (cr *Created) Start(ctx context.Context) (_ *Container, retErr error) {
	s := cr.s
	defer func() {
		if retErr != nil {
			if err := cr.Discard(); err != nil {
				slog.Warn("rolling back container", "container", s.ID, "err", err)
			}
		}
	}()
	sp := trace.Start(ctx, "start")
	if err := cr.lc.Exec(); err != nil {
		return nil, fmt.Errorf("start container %s: %w", s.ID, err)
	}
	cr.sio.closeChild()
	if s.TTY {
		if err := cr.sio.recvConsole(); err != nil {
			return nil, fmt.Errorf("container %s: %w", s.ID, err)
		}
		cr.copiers.Go(func() { cr.sink.copyStream("stdout", cr.sio.console) })
	}
	pid, _ := cr.p.Pid()
	waitExecve(pid)
	sp.End()
	var oom *oomWatch
	if s.CgroupSystemd {
		var err error
		if oom, err = watchOOM(cr.cgm); err != nil {
			slog.Warn("not watching the container's cgroup for OOM kills: its counter after the exit decides", "container", s.ID, "err", err)
			oom = nil
		}
	}
	c := &Container{
		id: s.ID, lc: cr.lc, cgm: cr.cgm, cgroupPath: s.CgroupPath, pid: pid, startedAt: time.Now(),
		privatePID: cr.private, defaults: cr.defaults, io: cr.sio,
		done: make(chan struct{}),
	}
	go c.wait(cr.p, cr.oomBefore, oom, cr.copiers, cr.sink)
	return c, nil
}

// Discard kills the created container's init and removes the container,
// its cgroup and its new log file, as a failed Start would.
func (cr *Created) Discard() error {
	killInit(cr.p)
	cr.sio.closeChild()
	cr.sio.close()
	cr.copiers.Wait()
	cr.undoSink()
	if err := cr.lc.Destroy(); err != nil {
		return fmt.Errorf("discard container %s: %w", cr.s.ID, err)
	}
	return nil
}

// copyPipes copies the container's stdout and stderr pipes (none with a
// terminal) into its log.
func copyPipes(copiers *sync.WaitGroup, sio *stdio, sink *logSink) {
	for _, st := range []struct {
		name string
		f    *os.File
	}{{"stdout", sio.stdout}, {"stderr", sio.stderr}} {
		if st.f != nil {
			copiers.Go(func() { sink.copyStream(st.name, st.f) })
		}
	}
}

// killInit kills a container's init that Start will not hand out.
func killInit(p *libcontainer.Process) {
	_ = p.Signal(unix.SIGKILL)
	_, _ = p.Wait()
}

// newSink opens the container's CRI log with its rotation settings; undo
// closes it and removes a log it created.
func newSink(s *Spec) (_ *logSink, undo func(), _ error) {
	sink := &logSink{tee: s.Output, raw: s.Raw, id: s.ID, path: s.LogPath, maxSize: s.LogMaxSize, maxFiles: s.LogMaxFiles}
	if sink.maxSize == 0 {
		sink.maxSize = DefaultLogMaxSize
	}
	if sink.maxFiles == 0 {
		sink.maxFiles = DefaultLogMaxFiles
	}
	if sink.maxSize < 0 || sink.maxFiles < 2 {
		return nil, nil, fmt.Errorf("log rotation: LogMaxSize %d must be positive and LogMaxFiles %d at least 2", s.LogMaxSize, s.LogMaxFiles)
	}
	if s.LogPath == "" {
		return sink, func() {}, nil
	}
	f, created, err := openLog(s.LogPath)
	if err != nil {
		return nil, nil, err
	}
	sink.f = f
	if fi, err := f.Stat(); err == nil {
		sink.size = fi.Size() // appended to after a restart of the supervisor
	}
	return sink, func() {
		f.Close()
		if created {
			os.Remove(s.LogPath)
		}
	}, nil
}

// wait reaps the container's init and records its exit, OOM kills
// included, once its output is drained.
func (c *Container) wait(p *libcontainer.Process, oomBefore uint64, oom *oomWatch, copiers *sync.WaitGroup, sink *logSink) {
	ps, err := p.Wait()
	exit := exitOf(ps)
	if ps == nil {
		slog.Warn("waiting for container init", "container", c.id, "err", err)
	}
	// As containerd's CRI: any OOM kill in the container's cgroup makes it
	// OOMKilled, whatever its exit code. On cgroup v1 the kernel kills one
	// process, and a shell PID 1 whose child it killed may exit 0.
	if n, err := c.cgm.OOMKillCount(); err == nil && n > oomBefore {
		exit.OOMKilled = true
	}
	if oom != nil && oom.result(drainTimeout) {
		exit.OOMKilled = true
	}
	sio := c.io
	c.reaped(exit, func() {
		if err := waitTimeout(func() error { copiers.Wait(); return nil }, drainTimeout); err != nil {
			slog.Warn("container output still held open after its init exited: closing it", "container", c.id)
		}
		sio.closeReaders() // unblocks the copiers if stragglers still hold the pipes
		copiers.Wait()
		sio.close()
		if sink.f != nil {
			sink.f.Close()
		}
	})
}

func toInts(u []uint32) []int {
	out := make([]int, len(u))
	for i, v := range u {
		out[i] = int(v)
	}
	return out
}

// exitOf converts a wait status the way CRI reports it.
func exitOf(ps *os.ProcessState) Exit {
	e := Exit{FinishedAt: time.Now()}
	if ps == nil {
		e.Unknown = true
		return e
	}
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		e.Signal = ws.Signal()
		e.Code = 128 + int(e.Signal)
	} else {
		e.Code = ws.ExitStatus()
	}
	return e
}

// reaped finishes a container whose init is gone: without its own PID
// namespace the rest of its processes do not die with the init, so they are
// killed (containerd's shim does the same); then drain runs and Done closes.
func (c *Container) reaped(exit Exit, drain func()) {
	if !c.privatePID {
		if err := c.lc.Signal(unix.SIGKILL); err != nil && !notRunning(err) {
			slog.Warn("killing the rest of an exited container", "container", c.id, "err", err)
		}
	}
	drain()
	c.exit = exit
	close(c.done)
}

func notRunning(err error) bool {
	return errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, os.ErrProcessDone)
}

// ID returns the container's id.
func (c *Container) ID() string { return c.id }

// Pid returns the init process's pid in this process's PID namespace.
func (c *Container) Pid() int { return c.pid }

// StartedAt returns when the init process started.
func (c *Container) StartedAt() time.Time { return c.startedAt }

// Done is closed once the init process has been reaped and its output
// drained (waiting at most 2 s for processes still holding the pipes).
func (c *Container) Done() <-chan struct{} { return c.done }

// Exit returns how the init ended, waiting for Done if needed.
func (c *Container) Exit() Exit {
	<-c.done
	return c.exit
}

// Stdin returns the container's stdin (with Spec.Stdin; its terminal with
// Spec.TTY), nil otherwise or when re-attached. Closing it sends EOF
// (without a terminal).
func (c *Container) Stdin() io.WriteCloser {
	if c.io == nil || c.io.stdin == nil {
		return nil
	}
	return c.io.stdin
}

// Resize sets the size of the container's terminal; a no-op without one.
func (c *Container) Resize(cols, rows uint16) error {
	if c.io == nil {
		return nil
	}
	if err := c.io.resize(cols, rows); err != nil {
		return fmt.Errorf("resize terminal of container %s: %w", c.id, err)
	}
	return nil
}

// Signal sends sig to the container's init; SIGKILL without a private PID
// namespace goes to every process of the container. A container that has
// already exited is not an error.
func (c *Container) Signal(sig syscall.Signal) error {
	if err := c.lc.Signal(sig); err != nil && !notRunning(err) {
		return fmt.Errorf("signal %v to container %s: %w", sig, c.id, err)
	}
	if sig == unix.SIGKILL {
		go c.unblockExit()
	}
	return nil
}

// unblockExit reaps runc's stray zombies (reapStrays) when a SIGKILLed
// init has not exited after a while: they are what can hold it.
func (c *Container) unblockExit() {
	select {
	case <-c.done:
	case <-time.After(strayWait):
		if n := reapStrays(); n > 0 {
			slog.Warn("reaped runc processes a failed exec left behind, which held the container's exit", "container", c.id, "reaped", n)
		}
	}
}

// Destroy kills whatever is left of the container, waits for it, and
// removes the container, its state and its cgroup. It is idempotent.
func (c *Container) Destroy() error {
	c.destroyMu.Lock()
	defer c.destroyMu.Unlock()
	if c.destroyed {
		return nil
	}
	// Waits for an exec making its cgroup; later ones fail.
	c.execMu.Lock()
	c.execClosed = true
	c.execMu.Unlock()
	if err := c.Signal(unix.SIGKILL); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	select {
	case <-c.done:
	case <-time.After(killWait):
		return fmt.Errorf("destroy container %s: init still running %v after SIGKILL", c.id, killWait)
	}
	if err := killCgroup(c.cgm); err != nil {
		return fmt.Errorf("destroy container %s: %w", c.id, err)
	}
	if err := c.lc.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", c.id, err)
	}
	c.destroyed = true
	return nil
}

// killCgroup SIGKILLs every process in m's cgroup (and below) and waits
// until none is left. cgroup.kill (Linux 5.14; cgroup v2, or the unified
// hierarchy of a hybrid system) kills everything at once, forks in flight
// included; otherwise the cgroup is frozen while its pids are killed so
// that none forks or is replaced by an unrelated process meanwhile.
func killCgroup(m cgroups.Manager) error {
	atomicKill := false
	if p := m.Path(""); p != "" {
		atomicKill = cgroups.WriteFile(p, "cgroup.kill", "1") == nil
	}
	deadline := time.Now().Add(killWait)
	for {
		pids, err := m.GetAllPids()
		if errors.Is(err, os.ErrNotExist) || err == nil && len(pids) == 0 {
			return nil
		} else if err != nil {
			return fmt.Errorf("list cgroup processes: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in cgroup %v after SIGKILL", pids, killWait)
		}
		if !atomicKill {
			_ = m.Freeze(cgroups.Frozen)
			for _, pid := range pids {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
			_ = m.Freeze(cgroups.Thawed)
		}
		time.Sleep(time.Millisecond) // SIGKILL is asynchronous; the exits take microseconds
	}
}

// Unstarted reports whether the container was created but its process
// never started: its init still waits at the exec fifo, as a Created left
// by a process that died before Start or Discard leaves it.
func (c *Container) Unstarted() bool {
	st, err := c.lc.Status()
	return err == nil && st == libcontainer.Created
}

// Load re-attaches to a container after the process that started it ended
// (the daemon or shim restarted). Signal, Exec and Destroy work; Done
// closes when the init exits, with Exit().Unknown set since only the dead
// parent could have waited for it. Its output is not captured (the pipes
// died with the old process).
func (r *Runtime) Load(id string) (*Container, error) {
	lc, err := libcontainer.Load(r.root, id)
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	st, err := lc.State()
	if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	cfg := lc.Config()
	cgm, err := manager.NewWithPaths(cfg.Cgroups, st.CgroupPaths)
	if err != nil {
		return nil, fmt.Errorf("load container %s: cgroup: %w", id, err)
	}
	c := &Container{
		id: id, lc: lc, cgm: cgm, cgroupPath: cgroupPathOf(cfg.Cgroups), pid: st.InitProcessPid,
		startedAt:  startTimeOf(st.InitProcessStartTime),
		privatePID: cfg.Namespaces.IsPrivate(configs.NEWPID),
		defaults:   procDefaultsFrom(&cfg),
		done:       make(chan struct{}),
	}
	pfd, err := openPidfd(st.InitProcessPid, st.InitProcessStartTime)
	if errors.Is(err, errGone) {
		c.reaped(Exit{Unknown: true, FinishedAt: time.Now()}, func() {})
		return c, nil
	} else if err != nil {
		return nil, fmt.Errorf("load container %s: %w", id, err)
	}
	go func() {
		if err := pfd.wait(); err != nil {
			slog.Warn("waiting for re-attached container", "container", id, "err", err)
		}
		pfd.Close()
		c.reaped(Exit{Unknown: true, FinishedAt: time.Now()}, func() {})
	}()
	return c, nil
}
