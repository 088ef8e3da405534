package imagetest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry serves an empty in-memory registry on 127.0.0.1 until the test
// ends and returns its host:port. Each wrap wraps the handler (the last
// outermost), e.g. BasicAuth, or a fault injector.
func Registry(t testing.TB, wrap ...func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	for _, w := range wrap {
		h = w(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// BasicAuth makes a registry require these credentials, as a private one does.
func BasicAuth(user, password string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="podrun-test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Push uploads img (a v1.Image or v1.ImageIndex) as ref and returns its
// digest. auth may be nil for an open registry.
func Push(t testing.TB, ref string, img any, auth authn.Authenticator) v1.Hash {
	t.Helper()
	d, err := PushE(ref, img, auth)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// PushE is Push for callers without a testing.TB.
func PushE(ref string, img any, auth authn.Authenticator) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	switch img := img.(type) {
	case v1.Image:
		if err := remote.Write(r, img, remote.WithAuth(auth)); err != nil {
			return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
		}
		return img.Digest()
	case v1.ImageIndex:
		if err := remote.WriteIndex(r, img, remote.WithAuth(auth)); err != nil {
			return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
		}
		return img.Digest()
	}
	return v1.Hash{}, fmt.Errorf("push %s: %T is neither an image nor an index", ref, img)
}
