package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// next waits for one change report, failing after a minute.
func next(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(time.Minute):
		t.Fatalf("no change reported after %s", what)
	}
}

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pod.yaml")
	other := filepath.Join(dir, "notes.txt")
	os.WriteFile(file, []byte("a"), 0o644)
	w, err := New([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := w.Changes(ctx)

	// An editor's save: a new file renamed over the old one.
	tmp := filepath.Join(dir, ".pod.yaml.swp")
	os.WriteFile(tmp, []byte("b"), 0o644)
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	next(t, ch, "a rename over the file")

	// Another file of the directory is not reported: the next report is
	// the write to the watched one.
	os.WriteFile(other, []byte("x"), 0o644)
	os.WriteFile(file, []byte("c"), 0o644)
	next(t, ch, "a write")
	select {
	case <-ch:
		t.Error("a change reported twice, or the unrelated file reported")
	case <-time.After(3 * Quiet):
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("a change after the end")
		}
	case <-time.After(time.Minute):
		t.Fatal("Changes not closed after ctx ended")
	}
}

func TestWatcherRefusesStdin(t *testing.T) {
	if _, err := New([]string{"-"}); err == nil {
		t.Error("- accepted")
	}
}
