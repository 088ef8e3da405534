package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// now is CLOCK_BOOTTIME in seconds: the clock bench/agent stamps with.
func now() float64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic(err)
	}
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

// event is one line bench/agent wrote: "<boottime> <name> <what>".
type event struct {
	at         float64
	name, what string
}

func readEvents(path string) ([]event, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []event
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		at, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out = append(out, event{at, f[1], f[2]})
	}
	return out, nil
}

// count returns how many events are what, and the latest time of them.
func count(evs []event, what string) (n int, last float64) {
	for _, e := range evs {
		if e.what == what {
			n++
			last = max(last, e.at)
		}
	}
	return n, last
}

// waitEvents polls the log until n events are what, and returns the time
// of the last of them (the containers' own stamp: how often this polls
// changes only how soon it returns). alive reports a process that should
// keep running meanwhile.
func waitEvents(ctx context.Context, path, what string, n int, timeout time.Duration, alive func() error) (float64, error) {
	deadline := time.Now().Add(timeout)
	for {
		evs, err := readEvents(path)
		if err != nil {
			return 0, err
		}
		if got, last := count(evs, what); got >= n {
			return last, nil
		}
		if err := alive(); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) {
			got, _ := count(evs, what)
			return 0, fmt.Errorf("%d of %d %q events after %v", got, n, what, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// proc is a command whose stderr lines are stamped on arrival.
type proc struct {
	cmd   *exec.Cmd
	start float64 // just before exec

	mu      sync.Mutex
	lines   []stamped
	changed chan struct{} // closed and replaced on each new line
	tail    strings.Builder

	done   chan struct{}
	exitAt float64
	err    error
}

type stamped struct {
	at   float64
	text string
}

func startProc(name string, args []string, env []string) (*proc, error) {
	return startProcAttr(name, args, env, nil)
}

func startProcAttr(name string, args []string, env []string, attr *syscall.SysProcAttr) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = attr
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	p.start = now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			at := now()
			p.mu.Lock()
			p.lines = append(p.lines, stamped{at, sc.Text()})
			if p.tail.Len() < 64<<10 {
				p.tail.WriteString(sc.Text() + "\n")
			}
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	go func() {
		<-copied
		p.err = cmd.Wait()
		p.exitAt = now()
		close(p.done)
	}()
	return p, nil
}

// alive fails once the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early: %v\n%s", p.cmd.Path, p.err, p.stderr())
	default:
		return nil
	}
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tail.String()
}

// waitLine waits for a stderr line matching re and returns when it arrived.
func (p *proc) waitLine(ctx context.Context, re *regexp.Regexp, timeout time.Duration) (float64, error) {
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if re.MatchString(p.lines[seen].text) {
				at := p.lines[seen].at
				p.mu.Unlock()
				return at, nil
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.done:
			return 0, p.alive()
		case <-deadline:
			return 0, fmt.Errorf("no stderr line matching %q after %v:\n%s", re, timeout, p.stderr())
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// signal sends sig and returns when it was sent.
func (p *proc) signal(sig syscall.Signal) (float64, error) {
	at := now()
	return at, p.cmd.Process.Signal(sig)
}

// wait waits for the exit; an exit status in ok is no error.
func (p *proc) wait(timeout time.Duration, ok ...int) (float64, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %v", p.cmd.Path, timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		for _, c := range ok {
			if ee.ExitCode() == c {
				return p.exitAt, nil
			}
		}
	}
	if p.err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", p.cmd.Path, p.err, p.stderr())
	}
	return p.exitAt, nil
}

// stop ends a process a failed measurement left running: Ctrl-C (podrun
// then terminates its pods), and SIGKILL if that takes over a minute.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// runTimed runs a command to completion and returns its wall time in ms.
func runTimed(ctx context.Context, env []string, name string, args ...string) (float64, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := now()
	out, err := cmd.CombinedOutput()
	d := (now() - start) * 1000
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return d, nil
}

// rss sums VmRSS and VmHWM (kB) over the processes match selects.
func rss(match func(pid int, exe, comm string) bool) (rssKB, hwmKB int64, n int) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := "/proc/" + e.Name()
		exe, _ := os.Readlink(dir + "/exe")
		comm, _ := os.ReadFile(dir + "/comm")
		if !match(pid, strings.TrimSuffix(exe, " (deleted)"), strings.TrimSpace(string(comm))) {
			continue
		}
		status, err := os.ReadFile(dir + "/status")
		if err != nil {
			continue
		}
		n++
		for _, l := range strings.Split(string(status), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rssKB += v
			case "VmHWM:":
				hwmKB += v
			}
		}
	}
	return rssKB, hwmKB, n
}
