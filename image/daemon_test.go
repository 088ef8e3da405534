package image

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/podrun/podrun/internal/testutil"
)

// fakeDaemon is a Docker Engine API with one image, x (the test busybox):
// other names are a 404, boom a 500. /_ping reports API version 1.43; any
// version prefix is accepted.
func fakeDaemon(t *testing.T) (http.Handler, string, *requests) {
	t.Helper()
	bb := busybox(t)
	id, err := bb.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if err := tarball.Write(name.MustParseReference("x"), bb, &archive); err != nil {
		t.Fatal(err)
	}
	fail := func(w http.ResponseWriter, code int, msg string) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/x/json", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"Id": id.String()})
	})
	mux.HandleFunc("GET /images/boom/json", func(w http.ResponseWriter, _ *http.Request) {
		fail(w, http.StatusInternalServerError, "disk on fire")
	})
	mux.HandleFunc("GET /images/get", func(w http.ResponseWriter, r *http.Request) {
		if names := r.URL.Query()["names"]; len(names) != 1 || names[0] != "x" {
			fail(w, http.StatusNotFound, "No such image: "+strings.Join(names, ","))
			return
		}
		_, _ = w.Write(archive.Bytes())
	})
	mux.HandleFunc("GET /_ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("API-Version", "1.43")
		_, _ = w.Write([]byte("OK"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "No such image: "+r.URL.Path)
	})
	seen := &requests{}
	return seen.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/v1."); ok {
			r.URL.Path = rest[strings.Index(rest, "/"):]
		}
		mux.ServeHTTP(w, r)
	})), id.String(), seen
}

// serveUnix serves h on a socket of the test and returns its path.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(tempDir(t), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

func TestDaemonCalls(t *testing.T) {
	h, id, seen := fakeDaemon(t)
	sock := serveUnix(t, h)
	ctx := context.Background()

	t.Setenv("DOCKER_HOST", "unix://"+sock)
	d, err := OpenDaemon("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Host != "unix://"+sock {
		t.Errorf("Host %q, want DOCKER_HOST's unix://%s", d.Host, sock)
	}
	if got, err := d.ImageID(ctx, "x"); err != nil || got != id {
		t.Errorf("ImageID(x) = %q, %v; want %s", got, err, id)
	}
	if seen.count("GET /_ping") != 1 || seen.count("GET /v1.43/images/x/json") != 1 {
		t.Errorf("requests %v, want GET /_ping, then the version it reported in front of GET /images/x/json", seen.seen)
	}
	_, err = d.ImageID(ctx, "nosuch:1")
	if err == nil || !strings.Contains(err.Error(), "no such image nosuch:1") || !strings.Contains(err.Error(), sock) {
		t.Errorf("ImageID of a missing image: %v; want no such image nosuch:1 and the host", err)
	}
	if _, err := d.ImageID(ctx, "boom"); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("ImageID on a 500: %v; want the daemon's message", err)
	}
	if _, err := newStore(t).LoadFromDaemon(ctx, d, "nosuch:1", nil); err == nil || !strings.Contains(err.Error(), "no such image nosuch:1") {
		t.Errorf("LoadFromDaemon of a missing image: %v", err)
	}

	// DOCKER_API_VERSION puts its version in front of every path, no
	// /_ping asked; an explicit host wins over DOCKER_HOST.
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	t.Setenv("DOCKER_API_VERSION", "1.41")
	seen.reset()
	d2, err := OpenDaemon("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if got, err := d2.ImageID(ctx, "x"); err != nil || got != id || seen.count("GET /v1.41/images/x/json") != 1 || seen.count("/_ping") != 0 {
		t.Errorf("ImageID(x) with DOCKER_API_VERSION = %q, %v (requests %v)", got, err, seen.seen)
	}
	t.Setenv("DOCKER_API_VERSION", "latest")
	if _, err := OpenDaemon("unix://" + sock); err == nil {
		t.Error("DOCKER_API_VERSION=latest accepted")
	}
	if _, err := OpenDaemon("ssh://me@box"); err == nil {
		t.Error("an ssh:// host accepted")
	}
}

// TestDaemonTLS: a tcp:// host with DOCKER_TLS_VERIFY is checked against
// DOCKER_CERT_PATH/ca.pem; DOCKER_TLS alone is TLS without the check.
func TestDaemonTLS(t *testing.T) {
	h, id, _ := fakeDaemon(t)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()
	certs := tempDir(t)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(certs, "ca.pem"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, env := range [][2]string{{"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_TLS", "1"}} {
		t.Setenv("DOCKER_TLS_VERIFY", "")
		t.Setenv("DOCKER_TLS", "")
		t.Setenv(env[0], env[1])
		t.Setenv("DOCKER_CERT_PATH", certs)
		d, err := OpenDaemon(host)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d.ImageID(ctx, "x"); err != nil || got != id {
			t.Errorf("%s: ImageID(x) = %q, %v", env[0], got, err)
		}
		d.Close()
	}

	// The test certificate names 127.0.0.1, not localhost: verified, the
	// name does not pass.
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	d, err := OpenDaemon("tcp://localhost:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.ImageID(ctx, "x"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a certificate for another name: %v; want a certificate error", err)
	}
	t.Setenv("DOCKER_CERT_PATH", tempDir(t))
	if _, err := OpenDaemon(host); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("DOCKER_TLS_VERIFY without a ca.pem: %v", err)
	}
}

// TestLoadFromDaemon: the daemon's save stream lands in the store, named
// as asked.
func TestLoadFromDaemon(t *testing.T) {
	testutil.RequiresRoot(t)
	h, id, seen := fakeDaemon(t)
	d, err := OpenDaemon("unix://" + serveUnix(t, h))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	img, err := newStore(t).LoadFromDaemon(context.Background(), d, "x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if img.Ref != "docker.io/library/x:latest" || img.ID != id {
		t.Errorf("loaded %s %s, want docker.io/library/x:latest %s", img.Ref, img.ID, id)
	}
	if seen.count("GET /v1.43/images/get") != 1 {
		t.Errorf("requests %v, want one GET /v1.43/images/get", seen.seen)
	}
}
