package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/api/client"
)

func init() { commands = append(commands, execCommand) }

var execCommand = &cli.Command{
	Name:                   "exec",
	Usage:                  "run a command in a container of a pod",
	ArgsUsage:              "POD -- COMMAND [ARG...]",
	UseShortOptionHandling: true,
	Description: "Exits with the command's exit code. -i passes standard input (its end closes the\n" +
		"command's); -t gives it a terminal (with -i and a terminal on standard input: raw mode,\n" +
		"window size changes passed on).",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "stdin", Aliases: []string{"i"}, Usage: "pass standard input to the command"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "allocate a terminal"},
		&cli.StringFlag{Name: "container", Aliases: []string{"c"}, Usage: "the container (default: the pod's default container)"},
		namespaceFlag(), socketFlag(),
	},
	Action: execAction,
}

func execAction(c *cli.Context) error {
	pos, command, err := args(c)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if len(pos) > 1 {
		return cli.Exit("exec: exec POD COMMAND is not supported; use exec POD -- COMMAND", 2)
	}
	if len(pos) != 1 || len(command) == 0 {
		return cli.Exit("exec: usage: podrun exec [-it] [-c CONTAINER] POD -- COMMAND [ARG...]", 2)
	}
	name, err := podName(pos[0])
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	cl := newClient(c)
	ns := c.String("namespace")
	o := client.ExecOptions{Container: c.String("container"), Command: command,
		Stdout: c.App.Writer, Stderr: c.App.ErrWriter}
	if o.Container == "" {
		p, err := cl.Pod(c.Context, ns, name)
		if err != nil {
			return apiError(err)
		}
		o.Container = defaultContainer(p, c.App.ErrWriter)
	}
	if c.Bool("stdin") {
		o.Stdin = os.Stdin
	}
	if c.Bool("tty") {
		fd := int(os.Stdin.Fd())
		if !c.Bool("stdin") || !isTerminal(fd) {
			fmt.Fprintln(c.App.ErrWriter, "Unable to use a TTY - input is not a terminal or the right kind of file")
		} else {
			restore, err := makeRaw(fd)
			if err != nil {
				return cli.Exit(fmt.Sprintf("exec: terminal: %v", err), 1)
			}
			defer restore()
			o.TTY = true
			o.Resize = watchSize(fd)
		}
	}
	code, err := cl.Exec(c.Context, ns, name, o)
	if err != nil {
		if code > 0 {
			return cli.Exit(err.Error(), code)
		}
		return apiError(err)
	}
	if code != 0 {
		fmt.Fprintf(c.App.ErrWriter, "command terminated with exit code %d\n", code)
		return cli.Exit("", code)
	}
	return nil
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// makeRaw puts the terminal in raw mode (cfmakeraw) until restore.
func makeRaw(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// watchSize sends the terminal's size now and after each SIGWINCH.
func watchSize(fd int) <-chan api.TerminalSize {
	ch := make(chan api.TerminalSize, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	send := func() {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err != nil {
			return
		}
		select {
		case <-ch: // a newer size replaces one not sent yet
		default:
		}
		ch <- api.TerminalSize{Width: ws.Col, Height: ws.Row}
	}
	send()
	go func() {
		for range winch {
			send()
		}
	}()
	return ch
}
