package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// errGone: the process no longer exists (or its pid now names another one).
var errGone = errors.New("process is gone")

// procStat returns the parent pid and the start time (clock ticks since
// boot) of pid, from /proc/<pid>/stat.
func procStat(pid int) (ppid int, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// comm (field 2) may hold spaces and parentheses: fields 3.. follow the
	// last ')'. ppid is field 4, starttime field 22.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	if ppid, err = strconv.Atoi(string(f[1])); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat ppid: %w", pid, err)
	}
	if start, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat starttime: %w", pid, err)
	}
	return ppid, start, nil
}

// startTimeOf converts a /proc starttime (ticks since boot, CLOCK_BOOTTIME)
// to wall-clock time.
func startTimeOf(ticks uint64) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}
	}
	const hz = 100 // USER_HZ, fixed by the kernel ABI on every architecture Go supports
	since := time.Duration(ts.Nano()) - time.Duration(ticks)*time.Second/hz
	return time.Now().Add(-since)
}

// pidfd is a handle on one process that stays valid after the pid is reused.
type pidfd struct{ f *os.File }

// openPidfd opens pid, provided it is still the process that started at
// start (ticks since boot); errGone otherwise.
func openPidfd(pid int, start uint64) (*pidfd, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		return nil, errGone
	} else if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	p := &pidfd{os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}
	// Checked after opening: if the start time matches now, the pidfd
	// holds the right process whatever happens to the pid later.
	if _, st, err := procStat(pid); err != nil || st != start {
		p.Close()
		return nil, errGone
	}
	return p, nil
}

func (p *pidfd) signal(sig unix.Signal) error {
	// Not p.f.Fd(): that would switch the fd to blocking and off the poller.
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) { err = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); cerr != nil {
		return cerr
	}
	if errors.Is(err, unix.ESRCH) {
		return nil // exited already
	}
	return err
}

// wait blocks until the process has exited (not necessarily been reaped:
// it may not be our child). The Go poller waits, not a blocked thread.
func (p *pidfd) wait() error {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, 0)
		return err == nil && n > 0 || err != nil && !errors.Is(err, unix.EINTR)
	})
}

func (p *pidfd) Close() error { return p.f.Close() }

// initComm is the name nsexec gives runc's init (stage 2) until it execs.
const initComm = "runc:[2:INIT]\n"

// waitExecve waits until pid runs the container's program instead of runc
// init. libcontainer's Run returns once init has passed the exec fifo, a
// little before its execve: a signal in that window meets runc init's Go
// runtime, not the program (SIGTERM would end it with status 2, where the
// program, as a PID 1 without a handler, would have ignored it).
func waitExecve(pid int) {
	comm := "/proc/" + strconv.Itoa(pid) + "/comm"
	deadline := time.Now().Add(time.Second)
	for d := 20 * time.Microsecond; time.Now().Before(deadline); d = min(2*d, time.Millisecond) {
		if b, err := os.ReadFile(comm); err != nil || string(b) != initComm {
			return
		}
		time.Sleep(d)
	}
}

// reapStrays reaps this process' zombie children that are runc's own
// bootstrap stages (comm "runc:[1:CHILD]" or "runc:[2:INIT]"). They are
// children of podrun (runc clones them with CLONE_PARENT) and libcontainer
// waits for them only on its success path: after an exec that failed while
// its container was dying, they stay zombies. A zombie in a PID namespace
// holds its PID, so the container's init, exiting, waits for it in
// zap_pid_ns_processes forever, and the container never exits. It returns
// how many it reaped.
func reapStrays() int {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		comm, f := string(b[open+1:end]), bytes.Fields(b[end+1:])
		if len(f) < 2 || string(f[0]) != "Z" || string(f[1]) != strconv.Itoa(self) ||
			(comm != "runc:[1:CHILD]" && comm != "runc:[2:INIT]") {
			continue
		}
		var ws unix.WaitStatus
		if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
			n++
		}
	}
	return n
}
