package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTailLogJoinsPartialRecords(t *testing.T) {
	log := "2026-01-01T00:00:00Z stdout F first\n" +
		"2026-01-01T00:00:01Z stdout P long-\n" +
		"2026-01-01T00:00:01Z stderr F err\n" +
		"2026-01-01T00:00:01Z stdout P line-\n" +
		"2026-01-01T00:00:02Z stdout F end\n" +
		"2026-01-01T00:00:03Z stdout F last\n"
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := tailLog(path, 80, 2048), "first\nerr\nlong-line-end\nlast\n"; got != want {
		t.Errorf("tailLog = %q, want %q", got, want)
	}
	if got, want := tailLog(path, 2, 2048), "long-line-end\nlast\n"; got != want {
		t.Errorf("last 2 lines = %q, want %q", got, want)
	}
	if got, want := tailLog(path, 80, 5), "last\n"; got != want {
		t.Errorf("5 bytes = %q, want %q", got, want)
	}
}

func TestTailLogBoundsPartialLines(t *testing.T) {
	// An endless line in 16 KiB records: what tailLog holds stays at maxBytes.
	var b strings.Builder
	chunk := strings.Repeat("x", 16<<10)
	for range 64 {
		b.WriteString("2026-01-01T00:00:00Z stdout P " + chunk + "\n")
	}
	b.WriteString("2026-01-01T00:00:00Z stdout F end\n")
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := tailLog(path, 80, 2048), strings.Repeat("x", 2044)+"end\n"; got != want {
		t.Errorf("tailLog: %d bytes ending %q", len(got), got[max(0, len(got)-10):])
	}
}
