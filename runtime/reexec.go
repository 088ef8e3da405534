package runtime

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	// nsexec() runs from this package's C constructor before the Go runtime
	// starts; it joins and creates namespaces for libcontainer's init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// pauseArgv0 names the pod sandbox's process (pause.c) in ps output and
// for leak checks.
const pauseArgv0 = "podrun-pause"

// MaybeReexec must be called first thing from package main's init(). When
// this process is one of the runtime's re-executions of the binary it does
// that job and never returns; otherwise it returns at once.
//
// Roles: "init" is libcontainer's container init. (The pause process, PID 1
// of a pod's shared PID namespace, never reaches Go: see pause.c.)
func MaybeReexec() {
	if len(os.Args) < 2 {
		return
	}
	if os.Args[1] == "init" {
		libcontainer.Init() // never returns
	}
}
