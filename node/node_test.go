package node

import (
	"os"
	"path/filepath"
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
