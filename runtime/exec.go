package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"github.com/opencontainers/runc/libcontainer"
)

// ExecSpec describes a process to run in a running container (an exec
// probe, a lifecycle hook, kubectl exec). Unset fields are the container's.
type ExecSpec struct {
	Args []string
	Env  []string // added to the container's environment; later entries win
	Cwd  string
	// UID and GID default to the container's user (with its supplementary
	// groups; an explicit user gets none).
	UID, GID *uint32
	// Stdin, Stdout and Stderr: nil is /dev/null. Output keeps being copied
	// for at most 2 s after the process exits if children still hold it.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// TTY runs the process on a terminal: its output (stdout and stderr
	// merged) goes to Stdout.
	TTY bool
	// Resize receives terminal sizes, {columns, rows}, with TTY.
	Resize <-chan [2]uint16
	// Size is the terminal's size, {columns, rows}, when the process
	// starts (zero: the kernel's 0x0), with TTY.
	Size [2]uint16
}

var execSeq atomic.Uint64

// Exec runs a process in the container and returns its exit code (128+sig
// when killed by a signal). A missing executable is an error, not 127.
// When ctx ends first, the process and everything it started are killed
// and the error wraps ctx.Err() (context.DeadlineExceeded for a timeout).
func (c *Container) Exec(ctx context.Context, e ExecSpec) (exitCode int, retErr error) {
	if len(e.Args) == 0 {
		return -1, fmt.Errorf("exec in container %s: no command", c.id)
	}
	if err := ctx.Err(); err != nil {
		return -1, fmt.Errorf("exec %q in container %s: %w", e.Args[0], c.id, err)
	}
	p := c.execProcess(e)

	// The process gets a cgroup of its own below the container's, so that a
	// timeout kills exactly it and all its descendants, however they fork
	// or get reparented.
	sub, err := c.takeExecCgroup()
	if err != nil {
		return -1, fmt.Errorf("exec %q in container %s: %w", e.Args[0], c.id, err)
	}
	defer func() {
		if err := c.putExecCgroup(sub); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("exec %q in container %s: remove its cgroup: %w", e.Args[0], c.id, err))
		}
	}()
	p.SubCgroupPaths = map[string]string{"": sub.name}

	sio, err := newStdio(p, e.TTY, e.Stdin != nil, !e.TTY && e.Stdout != nil, !e.TTY && e.Stderr != nil)
	if err != nil {
		return -1, fmt.Errorf("exec %q in container %s: %w", e.Args[0], c.id, err)
	}
	defer sio.close()
	var copiers sync.WaitGroup
	copyOut := func(w io.Writer, r *os.File) {
		if w != nil && r != nil {
			copiers.Go(func() { _, _ = io.Copy(w, r) })
		}
	}
	copyOut(e.Stdout, sio.stdout)
	copyOut(e.Stderr, sio.stderr)

	err = c.lc.Run(p)
	sio.closeChild()
	if err != nil {
		sio.closeReaders()
		copiers.Wait()
		return -1, fmt.Errorf("exec %q in container %s: %w", e.Args[0], c.id, err)
	}
	if e.TTY {
		if err := sio.recvConsole(); err != nil {
			_ = p.Signal(os.Kill)
			_, _ = p.Wait()
			return -1, fmt.Errorf("exec %q in container %s: %w", e.Args[0], c.id, err)
		}
		copyOut(e.Stdout, sio.console)
	}
	exited := make(chan struct{})
	c.feedExec(e, sio, exited)
	waited := make(chan Exit, 1)
	go func() {
		ps, _ := p.Wait()
		waited <- exitOf(ps)
	}()

	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case exit := <-waited:
		close(exited)
		select {
		case <-drained:
		case <-ctx.Done():
		case <-time.After(drainTimeout):
		}
		sio.closeReaders()
		copiers.Wait()
		return exit.Code, nil
	case <-ctx.Done():
		close(exited)
		// The whole tree, at once; returns when the cgroup is empty.
		sub.killed = true
		if err := killCgroup(sub); err != nil {
			slog.Warn("killing timed-out exec", "container", c.id, "err", err)
		}
		<-waited
		sio.closeReaders()
		copiers.Wait()
		return -1, fmt.Errorf("exec %q in container %s: %w", e.Args[0], c.id, ctx.Err())
	}
}

// execProcess is the exec's process: the container's environment,
// working directory and user, with what e overrides.
func (c *Container) execProcess(e ExecSpec) *libcontainer.Process {
	d := c.defaults
	p := &libcontainer.Process{
		Args: e.Args, Env: append(slices.Clone(d.Env), e.Env...), Cwd: d.Cwd,
		UID: int(d.UID), GID: int(d.GID), AdditionalGroups: toInts(d.Groups),
	}
	if e.TTY {
		p.ConsoleWidth, p.ConsoleHeight = e.Size[0], e.Size[1]
	}
	if e.Cwd != "" {
		p.Cwd = e.Cwd
	}
	if e.UID != nil || e.GID != nil {
		p.AdditionalGroups = nil
	}
	if e.UID != nil {
		p.UID = int(*e.UID)
	}
	if e.GID != nil {
		p.GID = int(*e.GID)
	}
	return p
}

// feedExec copies e's stdin to the process and passes terminal resizes
// until exited closes.
func (c *Container) feedExec(e ExecSpec, sio *stdio, exited <-chan struct{}) {
	if e.Stdin != nil {
		// Not waited for: a Stdin that never returns from Read would hold
		// Exec forever (as with exec.Cmd). Closing ours ends it at its
		// next write.
		go func() {
			_, _ = io.Copy(sio.stdin, e.Stdin)
			if !e.TTY {
				sio.stdin.Close() // EOF for the process
			}
		}()
	}
	if e.TTY && e.Resize != nil {
		go func() {
			for {
				select {
				case sz := <-e.Resize:
					if err := sio.resize(sz[0], sz[1]); err != nil {
						slog.Debug("resize exec terminal", "container", c.id, "err", err)
					}
				case <-exited:
					return
				}
			}
		}()
	}
}

// maxIdleExec is how many empty exec cgroups a container keeps for reuse:
// creating and removing one (a directory in each v1 hierarchy) was most of
// an exec probe's cost, and probes of one container seldom overlap.
const maxIdleExec = 2

// execCgroup is the cgroup <container leaf>/name of one exec at a time.
type execCgroup struct {
	name string
	cgroups.Manager
	// killed: a timeout killed its tree. It is removed, not reused: on
	// Linux 6.1 (Debian 12, cgroup v2) a process forked into a cgroup that
	// cgroup.kill was written to died at once (the next exec failed with
	// "error copying bootstrap data to pipe: write init-p: broken pipe").
	killed bool
}

// takeExecCgroup is an idle exec cgroup that is still empty, else a new one.
// It is the caller's alone until putExecCgroup. A new one is made with
// execMu held, so that Destroy, which closes execs first, never removes the
// container's cgroup while one is being made.
func (c *Container) takeExecCgroup() (execCgroup, error) {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	if c.execClosed {
		return execCgroup{}, errors.New("the container is being removed")
	}
	if cg, ok := c.popIdleExec(); ok {
		return cg, nil
	}
	name := fmt.Sprintf("exec-%d-%d", os.Getpid(), execSeq.Add(1))
	m, err := c.newExecCgroup(name)
	return execCgroup{name: name, Manager: m}, err
}

// popIdleExec takes an idle exec cgroup (execMu held).
func (c *Container) popIdleExec() (execCgroup, bool) {
	for len(c.idleExec) > 0 {
		cg := c.idleExec[len(c.idleExec)-1]
		c.idleExec = c.idleExec[:len(c.idleExec)-1]
		// A process moved in while it was idle makes it like one an exec
		// left running in: it goes with the container's.
		if pids, err := cg.GetAllPids(); err == nil && len(pids) == 0 {
			return cg, true
		}
	}
	return execCgroup{}, false
}

// putExecCgroup ends an exec's use of cg: empty, it becomes idle or, with
// enough idle, is removed. What the exec left running (kubectl exec
// 'daemon &') keeps running, as with CRI, and keeps cg, which then goes
// with the container's cgroup (whose removal removes its children).
func (c *Container) putExecCgroup(cg execCgroup) error {
	if pids, err := cg.GetAllPids(); err != nil || len(pids) > 0 {
		return nil
	}
	c.execMu.Lock()
	keep := !cg.killed && !c.execClosed && len(c.idleExec) < maxIdleExec
	if keep {
		c.idleExec = append(c.idleExec, cg)
	}
	c.execMu.Unlock()
	if keep {
		return nil
	}
	return cg.Destroy()
}

// newExecCgroup creates the cgroup <container leaf>/name.
func (c *Container) newExecCgroup(name string) (cgroups.Manager, error) {
	cg := &cgroups.Cgroup{Path: path.Join(c.cgroupPath, name), Resources: &cgroups.Resources{}}
	if cgroups.IsCgroup2UnifiedMode() {
		// A plain mkdir, not manager.Apply: that would try to enable
		// controllers in the container's leaf, which holds processes. No
		// limits are set here; the leaf's still apply.
		dir := filepath.Join(c.cgm.Path(""), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("exec cgroup: %w", err)
		}
		return manager.NewWithPaths(cg, map[string]string{"": dir})
	}
	m, err := manager.New(cg)
	if err != nil {
		return nil, fmt.Errorf("exec cgroup: %w", err)
	}
	// Creates the directory in every hierarchy (libcontainer joins them all)
	// and copies cpuset's cpus and mems from the parent.
	if err := m.Apply(-1); err != nil {
		_ = m.Destroy()
		return nil, fmt.Errorf("exec cgroup: %w", err)
	}
	return m, nil
}
