package node

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/podrun/podrun/internal/trace"
)

func TestConcurrentlyOverlapsStepsAndJoinsErrors(t *testing.T) {
	var out bytes.Buffer
	rec := trace.New(&out, nil)
	ctx := trace.With(context.Background(), rec, "uid-1")
	var started sync.WaitGroup
	started.Add(3)
	all := make(chan struct{})
	go func() { started.Wait(); close(all) }()
	// Each step returns only once all three have started: run one after
	// another, they would time out.
	fn := func(err error) func() error {
		return func() error {
			started.Done()
			select {
			case <-all:
				return err
			case <-time.After(5 * time.Second):
				return errors.New("steps not run concurrently")
			}
		}
	}
	errA, errC := errors.New("a failed"), errors.New("c failed")
	err := concurrently(ctx, step{"a", fn(errA)}, step{"b", fn(nil)}, step{"c", fn(errC)})
	if !errors.Is(err, errA) || !errors.Is(err, errC) || strings.Contains(err.Error(), "concurrently") {
		t.Fatalf("err = %v, want a's and c's errors joined", err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"a", "b", "c"} {
		if !strings.Contains(out.String(), `"phase":"`+phase+`"`) {
			t.Errorf("no span %q in the trace:\n%s", phase, out.String())
		}
	}
}

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
