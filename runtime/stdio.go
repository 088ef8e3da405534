package runtime

import (
	"errors"
	"fmt"
	"os"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// stdio holds one process's standard streams. The child's ends go to
// libcontainer and are closed once the process runs; ours stay here, all
// pollable, so that closing one unblocks a goroutine reading it (pitfall
// P4: never let exec.Cmd own the pipes).
type stdio struct {
	child   []*os.File
	stdout  *os.File // read end, or the pty master with a terminal
	stderr  *os.File // read end; nil with a terminal
	stdin   *os.File // write end, or the pty master with a terminal
	console *os.File // pty master (terminal only), once received
	sock    *os.File // our end of the console socket (terminal only)
}

// newStdio prepares p's streams: a console socket with tty (runc init sends
// the pty master back on it), otherwise one pipe per wanted stream. Streams
// not wanted are /dev/null.
func newStdio(p *libcontainer.Process, tty, in, out, errOut bool) (_ *stdio, retErr error) {
	s := &stdio{}
	defer func() {
		if retErr != nil {
			s.closeChild()
			s.close()
		}
	}()
	if tty {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("console socket: %w", err)
		}
		if err := unix.SetNonblock(fds[0], true); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return nil, fmt.Errorf("console socket: %w", err)
		}
		s.sock = os.NewFile(uintptr(fds[0]), "console-socket")
		p.ConsoleSocket = os.NewFile(uintptr(fds[1]), "console-socket-child")
		s.child = append(s.child, p.ConsoleSocket)
		return s, nil
	}
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err != nil {
			return nil, nil, fmt.Errorf("stdio pipe: %w", err)
		}
		return r, w, nil
	}
	if in {
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		s.stdin, p.Stdin = w, r
		s.child = append(s.child, r)
	}
	if out {
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		s.stdout, p.Stdout = r, w
		s.child = append(s.child, w)
	}
	if errOut {
		r, w, err := pipe()
		if err != nil {
			return nil, err
		}
		s.stderr, p.Stderr = r, w
		s.child = append(s.child, w)
	}
	return s, nil
}

// closeChild closes the child's ends: after the start, the process holds
// its own copies, and ours would keep the pipes from ever reaching EOF.
func (s *stdio) closeChild() {
	for _, f := range s.child {
		f.Close()
	}
	s.child = nil
}

// recvConsole receives the pty master from runc init (terminal only).
func (s *stdio) recvConsole() error {
	if s.sock == nil {
		return nil
	}
	rc, err := s.sock.SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	oob := make([]byte, unix.CmsgSpace(4))
	var rerr error
	err = rc.Read(func(sfd uintptr) bool {
		_, oobn, _, _, e := unix.Recvmsg(int(sfd), make([]byte, 4096), oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(e, unix.EAGAIN) || errors.Is(e, unix.EINTR) {
			return false
		}
		if rerr = e; e != nil {
			return true
		}
		msgs, e := unix.ParseSocketControlMessage(oob[:oobn])
		if rerr = e; e != nil {
			return true
		}
		if len(msgs) != 1 {
			rerr = fmt.Errorf("console socket: %d control messages", len(msgs))
			return true
		}
		fds, e := unix.ParseUnixRights(&msgs[0])
		if rerr = e; e == nil && len(fds) != 1 {
			rerr = fmt.Errorf("console socket: %d fds", len(fds))
		} else if e == nil {
			fd = fds[0]
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("receive console: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("console: %w", err)
	}
	s.console = os.NewFile(uintptr(fd), "console")
	s.stdout, s.stdin = s.console, s.console
	return nil
}

// resize sets the terminal's size (columns, rows); no-op without one.
func (s *stdio) resize(cols, rows uint16) error {
	if s.console == nil {
		return nil
	}
	rc, err := s.console.SyscallConn()
	if err != nil {
		return err
	}
	// Control, not Fd(): Fd() would make the console blocking and unpollable.
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: rows})
	}); cerr != nil {
		return cerr
	}
	return err
}

// closeReaders ends our reading of the output streams.
func (s *stdio) closeReaders() {
	for _, f := range []*os.File{s.stdout, s.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// close closes everything of ours.
func (s *stdio) close() {
	for _, f := range []*os.File{s.stdout, s.stderr, s.stdin, s.console, s.sock} {
		if f != nil {
			f.Close()
		}
	}
}
