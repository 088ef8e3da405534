package runtime

import (
	"os"
	"os/signal"

	"github.com/opencontainers/runc/libcontainer"
	// nsexec() runs from this package's C constructor before the Go runtime
	// starts; it joins and creates namespaces for libcontainer's init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
	"golang.org/x/sys/unix"
)

// The argv of the pod sandbox's process: argv[0] names it in ps output (and
// for leak checks), argv[1] selects the role in MaybeReexec.
const (
	pauseArgv0 = "podrun-pause"
	pauseRole  = "pause"
)

// MaybeReexec must be called first thing from package main's init(). When
// this process is one of the runtime's re-executions of the binary it does
// that job and never returns; otherwise it returns at once.
//
// Roles: "init" is libcontainer's container init; "pause" is the PID 1 of a
// pod's shared PID namespace (SandboxSpec.SharePID).
func MaybeReexec() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case "init":
		libcontainer.Init() // never returns
	case pauseRole:
		if os.Args[0] == pauseArgv0 {
			pause()
		}
	}
}

// pause is PID 1 of a pod's PID namespace: it holds the namespace open and
// reaps the orphans the kernel reparents to it. It exits 0 on SIGTERM or
// SIGINT; anything else it ignores (SIGKILL still works from outside).
func pause() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			os.Exit(0)
		}
		// SIGCHLD coalesces: reap every exited child, not just one.
		for {
			pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
