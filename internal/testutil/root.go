// Package testutil gates the tests that need root, the way containerd's
// pkg/testutil does: they run only when the test binary is given -test.root
// (make root-test), so `go test ./...` starts no container even as root.
package testutil

import (
	"flag"
	"os"
	"testing"
)

var root = flag.Bool("test.root", false, "run the tests that need root (real containers, mounts, cgroups, network namespaces)")

// RootEnabled reports whether -test.root was given. A TestMain may call it
// before m.Run, to set up what only the root tests need.
func RootEnabled() bool {
	if !flag.Parsed() {
		flag.Parse()
	}
	return *root
}

// RequiresRoot skips t unless -test.root was given, and fails it when the
// flag was given but the process is not root: a root run that silently
// skipped would prove nothing.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if !RootEnabled() {
		t.Skip("needs root: run with -test.root (make root-test)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("-test.root given, but not running as root")
	}
}
