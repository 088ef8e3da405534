package image

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podrun/podrun/image/imagetest"
)

// tempDir is a directory whose name says podrun, so that a leaked mount
// under it shows in the leak check.
func tempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "podrun-imagetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func newStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(filepath.Join(tempDir(t), "images"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func busybox(t testing.TB) v1.Image {
	t.Helper()
	img, err := imagetest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// requests counts a registry's requests by kind.
type requests struct {
	mu   sync.Mutex
	seen []string // "METHOD path"
}

func (rq *requests) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq.mu.Lock()
		rq.seen = append(rq.seen, r.Method+" "+r.URL.Path)
		rq.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (rq *requests) reset() {
	rq.mu.Lock()
	rq.seen = nil
	rq.mu.Unlock()
}

// count returns the requests whose "METHOD path" contains all of parts.
func (rq *requests) count(parts ...string) int {
	rq.mu.Lock()
	defer rq.mu.Unlock()
	n := 0
next:
	for _, s := range rq.seen {
		for _, p := range parts {
			if !strings.Contains(s, p) {
				continue next
			}
		}
		n++
	}
	return n
}

func entries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
