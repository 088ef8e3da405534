package runtime

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"
	// nsexec() runs from this package's C constructor before the Go runtime
	// starts; it joins and creates namespaces for libcontainer's init.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// MaybeReexec must be called first thing from package main's init(). When
// this process is one of the runtime's re-executions of the binary it does
// that job and never returns; otherwise it returns at once.
func MaybeReexec() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init() // never returns
	}
}
