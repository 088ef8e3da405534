package main

import (
	"testing"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/internal/testutil"
)

func TestInspectHostFindsNothingMissingHere(t *testing.T) {
	testutil.RequiresRoot(t)
	h := inspectHost(t.TempDir(), cgroups.DefaultDriver(), true)
	if len(h.missing) != 0 {
		t.Errorf("missing on the test machine: %v", h.missing)
	}
	var names []string
	for _, f := range h.facts {
		names = append(names, f[0])
	}
	for _, want := range []string{"kernel", "cgroups", "overlay", "nftables", "pod DNS from", "seccomp"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("no %q among %v", want, names)
		}
	}
}

// BenchmarkInspectHost is the check podrun run and podrun daemon make first.
func BenchmarkInspectHost(b *testing.B) {
	testutil.RequiresRoot(b)
	dir := b.TempDir()
	for b.Loop() {
		inspectHost(dir, cgroups.DefaultDriver(), false)
	}
}
