package image

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/podrun/podrun/image/imagetest"

	"github.com/podrun/podrun/internal/testutil"
)

func TestPullByTagAndDigest(t *testing.T) {
	testutil.RequiresRoot(t)
	var rq requests
	host := imagetest.Registry(t, rq.wrap)
	bb := busybox(t)
	d := imagetest.Push(t, host+"/library/busybox:1.36", bb, nil)
	id, _ := bb.ConfigName()
	s := newStore(t)
	ctx := context.Background()

	img, err := s.Pull(ctx, host+"/library/busybox:1.36", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := host + "/library/busybox:1.36"; img.Ref != want {
		t.Errorf("Ref = %q, want %q", img.Ref, want)
	}
	if want := host + "/library/busybox@" + d.String(); img.RepoDigest != want {
		t.Errorf("RepoDigest = %q, want %q", img.RepoDigest, want)
	}
	if img.ID != id.String() {
		t.Errorf("ID = %s, want %s", img.ID, id)
	}
	if len(img.Config.Cmd) != 1 || img.Config.Cmd[0] != "sh" {
		t.Errorf("Cmd = %q", img.Config.Cmd)
	}
	for _, ref := range []string{host + "/library/busybox:1.36", img.RepoDigest, img.ID} {
		got, err := s.Lookup(ref)
		if err != nil || got.ID != img.ID {
			t.Errorf("Lookup(%s) = %v, %v", ref, got, err)
		}
	}

	rq.reset()
	byDigest, err := s.Pull(ctx, img.RepoDigest, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if byDigest.ID != img.ID || byDigest.Ref != img.RepoDigest {
		t.Errorf("pull by digest: %+v", byDigest)
	}
	if n := rq.count("GET", "/blobs/"); n != 0 {
		t.Errorf("pull by digest of a present image fetched %d blobs", n)
	}
	if got := entries(t, s.root+"/snapshots"); len(got) != 1 {
		t.Errorf("snapshots = %v, want one", got)
	}
}

func TestPullMultiArchPicksHostPlatform(t *testing.T) {
	testutil.RequiresRoot(t)
	host := imagetest.Registry(t)
	bb := busybox(t)
	other, err := imagetest.Image(empty.Image, v1.Config{Env: []string{"ARCH=other"}}, mustLayers(t, bb)...)
	if err != nil {
		t.Fatal(err)
	}
	plat := hostPlatform()
	otherArch := "arm64"
	if plat.Architecture == "arm64" {
		otherArch = "amd64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: otherArch}}},
		mutate.IndexAddendum{Add: bb, Descriptor: v1.Descriptor{Platform: &plat}},
	)
	d := imagetest.Push(t, host+"/multi:1", idx, nil)
	s := newStore(t)
	img, err := s.Pull(context.Background(), host+"/multi:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := bb.ConfigName()
	if img.ID != want.String() {
		t.Errorf("pulled %s, want the %s child %s", img.ID, plat, want)
	}
	if img.RepoDigest != host+"/multi@"+d.String() {
		t.Errorf("RepoDigest = %s, want the index digest %s", img.RepoDigest, d)
	}

	only := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: other, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}})
	imagetest.Push(t, host+"/multi:s390x", only, nil)
	_, err = s.Pull(context.Background(), host+"/multi:s390x", PullOptions{})
	if Reason(err) != ReasonErrImagePull || !strings.Contains(err.Error(), "no image for platform") {
		t.Errorf("pull of an index without this platform: %v (reason %q)", err, Reason(err))
	}
}

func mustLayers(t testing.TB, img v1.Image) []v1.Layer {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestPullAuth(t *testing.T) {
	testutil.RequiresRoot(t)
	host := imagetest.Registry(t, imagetest.BasicAuth("alice", "s3cret"))
	imagetest.Push(t, host+"/private/busybox:1", busybox(t), &authn.Basic{Username: "alice", Password: "s3cret"})
	ref := host + "/private/busybox:1"
	ctx := context.Background()
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no node credentials

	_, err := newStore(t).Pull(ctx, ref, PullOptions{})
	if Reason(err) != ReasonErrImagePull || !strings.Contains(err.Error(), "UNAUTHORIZED") {
		t.Fatalf("anonymous pull from a private registry: %v", err)
	}

	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	wrong := base64.StdEncoding.EncodeToString([]byte("alice:wrong"))
	for name, secret := range map[string]string{
		"dockerconfigjson":      `{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`,
		"dockercfg":             `{"http://` + host + `/v1/":{"username":"alice","password":"s3cret"}}`,
		"path prefix wins":      `{"auths":{"` + host + `":{"auth":"` + wrong + `"},"` + host + `/private":{"auth":"` + auth + `"}}}`,
		"other registry's ones": `{"auths":{"example.com":{"auth":"` + wrong + `"},"` + host + `":{"auth":"` + auth + `"}}}`,
	} {
		if _, err := newStore(t).Pull(ctx, ref, PullOptions{Secrets: [][]byte{[]byte(secret)}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "config.json"), []byte(`{"auths":{"`+host+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", cfg)
	if _, err := newStore(t).Pull(ctx, ref, PullOptions{}); err != nil {
		t.Errorf("with $DOCKER_CONFIG/config.json: %v", err)
	}
}

// A pull asks the registry every time (imagePullPolicy Always is the
// supervisor's choice) and fetches only what changed.
func TestPullFetchesOnlyWhatChanged(t *testing.T) {
	testutil.RequiresRoot(t)
	var rq requests
	host := imagetest.Registry(t, rq.wrap)
	bb := busybox(t)
	imagetest.Push(t, host+"/bb:latest", bb, nil)
	ref := host + "/bb:latest"
	s := newStore(t)
	ctx := context.Background()

	if _, err := s.Pull(ctx, "Busybox:UPPER", PullOptions{}); Reason(err) != ReasonInvalidImageName {
		t.Errorf("bad name: %v (reason %q)", err, Reason(err))
	}
	img, err := s.Pull(ctx, ref, PullOptions{})
	if err != nil {
		t.Fatalf("first pull: %v", err)
	}
	if got, err := s.Lookup(ref); err != nil || got.ID != img.ID {
		t.Errorf("lookup after the pull: %v, %v", got, err)
	}

	// Unchanged: the registry is asked, nothing is fetched.
	rq.reset()
	if _, err := s.Pull(ctx, ref, PullOptions{}); err != nil {
		t.Errorf("pull again: %v", err)
	}
	if n, blobs := rq.count("HEAD", "/manifests/"), rq.count("/blobs/"); n != 1 || blobs != 0 {
		t.Errorf("unchanged: %d manifest HEADs, %d blob requests (%v)", n, blobs, rq.seen)
	}

	// The tag moves: the new image is fetched; the old one, which no tag
	// names any more, goes.
	app := appImage(t, bb)
	imagetest.Push(t, ref, app, nil)
	img2, err := s.Pull(ctx, ref, PullOptions{})
	if err != nil {
		t.Fatalf("pull after the tag moved: %v", err)
	}
	if appID, _ := app.ConfigName(); img2.ID != appID.String() {
		t.Errorf("pull after the tag moved: got %s, want %s", img2.ID, appID)
	}
	if _, err := s.Lookup(img.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("the untagged old image is still there: %v", err)
	}
	if _, err := s.Lookup(img.RepoDigest); !errors.Is(err, ErrNotFound) {
		t.Errorf("the old image's digest reference is still there: %v", err)
	}
}

// appImage is base plus a layer that deletes /etc/motd (a whiteout), empties
// /spool but for "new" (an opaque directory) and adds an entrypoint.
func appImage(t testing.TB, base v1.Image) v1.Image {
	t.Helper()
	layer, err := imagetest.Layer(func(tw *tar.Writer) error {
		for _, h := range []*tar.Header{
			{Typeflag: tar.TypeDir, Name: "app/", Mode: 0o755},
			{Typeflag: tar.TypeReg, Name: "app/hello.sh", Mode: 0o755, Size: int64(len(helloScript))},
		} {
			h.ModTime = imagetest.Epoch
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		_, err := tw.Write([]byte(helloScript))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagetest.Image(base, v1.Config{
		Entrypoint: []string{"/app/hello.sh"}, Cmd: []string{"world"}, Env: []string{"PATH=" + imagetest.Path, "GREETING=hello"},
		WorkingDir: "/app", User: "1000:1000", StopSignal: "SIGQUIT",
		ExposedPorts: map[string]struct{}{"8080/tcp": {}}, Labels: map[string]string{"app": "hello"},
	}, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

const helloScript = "#!/bin/sh\necho \"$GREETING $1\"\n"

func TestSharedBaseLayerStoredOnce(t *testing.T) {
	testutil.RequiresRoot(t)
	host := imagetest.Registry(t)
	bb := busybox(t)
	imagetest.Push(t, host+"/library/busybox:1", bb, nil)
	imagetest.Push(t, host+"/app:1", appImage(t, bb), nil)
	s := newStore(t)
	ctx := context.Background()
	b, err := s.Pull(ctx, host+"/library/busybox:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	a, err := s.Pull(ctx, host+"/app:1", PullOptions{Progress: func(p Progress) { phases = append(phases, p.Phase) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(t, filepath.Join(s.root, "snapshots")); len(got) != 2 {
		t.Errorf("snapshots = %v, want 2 (busybox's layer once, app's own)", got)
	}
	if a.chains[0] != b.chains[0] {
		t.Errorf("app's base layer %s is not busybox's %s", a.chains[0], b.chains[0])
	}
	if !slices.Contains(phases, PhaseExists) {
		t.Errorf("the shared layer was not reported as existing: %v", phases)
	}
	// 2 manifests, 2 configs, 2 distinct layers.
	if got := entries(t, filepath.Join(s.root, "blobs", "sha256")); len(got) != 6 {
		t.Errorf("blobs = %d, want 6: %v", len(got), got)
	}
	want := Config{
		Entrypoint: []string{"/app/hello.sh"}, Cmd: []string{"world"}, Env: []string{"PATH=" + imagetest.Path, "GREETING=hello"},
		WorkingDir: "/app", User: "1000:1000", StopSignal: "SIGQUIT", ExposedPorts: []string{"8080/tcp"}, Labels: map[string]string{"app": "hello"},
	}
	if !reflect.DeepEqual(a.Config, want) {
		t.Errorf("config = %+v, want %+v", a.Config, want)
	}
}

// flipLayer corrupts the bytes of blob responses for digest d.
func flipLayer(d *v1.Hash) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d.Hex == "" || !strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) || r.Method != http.MethodGet {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := rec.Body.Bytes()
			body[len(body)/2] ^= 0xff
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(body)
		})
	}
}

func TestCorruptBlobFromRegistry(t *testing.T) {
	testutil.RequiresRoot(t)
	var bad v1.Hash
	host := imagetest.Registry(t, flipLayer(&bad))
	bb := busybox(t)
	imagetest.Push(t, host+"/bb:1", bb, nil)
	bad, _ = mustLayers(t, bb)[0].Digest()
	s := newStore(t)
	_, err := s.Pull(context.Background(), host+"/bb:1", PullOptions{})
	if !errors.Is(err, ErrCorrupt) || Reason(err) != ReasonErrImagePull {
		t.Fatalf("pull of a corrupted layer: %v", err)
	}
	for _, d := range []string{"snapshots", "tmp"} {
		if got := entries(t, filepath.Join(s.root, d)); len(got) != 0 {
			t.Errorf("%s after a corrupt download: %v", d, got)
		}
	}
	if exists(s.blobPath(bad)) {
		t.Error("the corrupt layer was stored")
	}
	if _, err := s.Lookup(host + "/bb:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed pull left an image: %v", err)
	}
}

func TestCorruptStoredBlobIsRefetched(t *testing.T) {
	testutil.RequiresRoot(t)
	var rq requests
	host := imagetest.Registry(t, rq.wrap)
	bb := busybox(t)
	imagetest.Push(t, host+"/bb:1", bb, nil)
	layer := mustLayers(t, bb)[0]
	d, _ := layer.Digest()
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// A blob already in the store (an earlier pull stopped before
	// unpacking it) that has since been damaged on disk.
	s := newStore(t)
	blob[100] ^= 0xff
	if err := os.WriteFile(s.blobPath(d), blob, 0o600); err != nil {
		t.Fatal(err)
	}
	rq.reset()
	img, err := s.Pull(context.Background(), host+"/bb:1", PullOptions{})
	if err != nil {
		t.Fatalf("pull over a corrupt stored blob: %v", err)
	}
	if n := rq.count("GET", "/blobs/"+d.String()); n != 1 {
		t.Errorf("layer fetched %d times, want once (the refetch)", n)
	}
	if !s.complete(img) {
		t.Error("image not unpacked")
	}
}

// cutOnce serves the first GET of blob d only up to half its length and
// records every Range header asked for d.
type cutOnce struct {
	d      *v1.Hash
	mu     sync.Mutex
	cut    bool
	ranges []string
}

func (c *cutOnce) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.d.Hex == "" || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+c.d.String()) {
			next.ServeHTTP(w, r)
			return
		}
		c.mu.Lock()
		c.ranges = append(c.ranges, r.Header.Get("Range"))
		first := !c.cut
		c.cut = true
		c.mu.Unlock()
		if !first {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		panic(http.ErrAbortHandler) // drop the connection mid-body
	})
}

func TestInterruptedPullResumes(t *testing.T) {
	testutil.RequiresRoot(t)
	var bad v1.Hash
	cut := &cutOnce{d: &bad}
	host := imagetest.Registry(t, cut.wrap)
	bb := busybox(t)
	imagetest.Push(t, host+"/bb:1", bb, nil)
	layer := mustLayers(t, bb)[0]
	bad, _ = layer.Digest()
	size, _ := layer.Size()
	s := newStore(t)
	ctx := context.Background()

	if _, err := s.Pull(ctx, host+"/bb:1", PullOptions{}); err == nil {
		t.Fatal("a pull cut half way succeeded")
	}
	if got := entries(t, filepath.Join(s.root, "snapshots")); len(got) != 0 {
		t.Errorf("snapshots after an interrupted pull: %v", got)
	}
	if _, err := s.Lookup(host + "/bb:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an interrupted pull left an image: %v", err)
	}
	partial, err := os.Stat(filepath.Join(s.root, "tmp", bad.Hex+".partial"))
	if err != nil || partial.Size() != size/2 {
		t.Fatalf("partial download: %v, %v (want %d bytes)", partial, err, size/2)
	}

	img, err := s.Pull(ctx, host+"/bb:1", PullOptions{})
	if err != nil {
		t.Fatalf("resumed pull: %v", err)
	}
	if want := fmt.Sprintf("bytes=%d-%d", size/2, size-1); len(cut.ranges) != 2 || cut.ranges[1] != want {
		t.Errorf("Range headers = %q, want the second to be %q", cut.ranges, want)
	}
	if !s.complete(img) {
		t.Error("image not unpacked")
	}
}

func TestConcurrentPullsUnpackOnce(t *testing.T) {
	testutil.RequiresRoot(t)
	var rq requests
	host := imagetest.Registry(t, rq.wrap)
	bb := busybox(t)
	imagetest.Push(t, host+"/bb:1", bb, nil)
	d, _ := mustLayers(t, bb)[0].Digest()
	// Two Stores on one directory stand for two processes: their locks are
	// separate open files, as between processes.
	s1 := newStore(t)
	s2, err := Open(s1.root)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s := []*Store{s1, s2}[i%2]
			_, err := s.Pull(context.Background(), host+"/bb:1", PullOptions{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := rq.count("GET", "/blobs/"+d.String()); n != 1 {
		t.Errorf("layer downloaded %d times, want once", n)
	}
	if got := entries(t, filepath.Join(s1.root, "snapshots")); len(got) != 1 {
		t.Errorf("snapshots = %v, want one", got)
	}
}

func TestPlainHTTPOnlyToLoopbackOrInsecure(t *testing.T) {
	g := httpGuard{insecure: []string{"10.1.2.3:5000", "reg.lan"}}
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "10.1.2.3:5000": true,
		"reg.lan": true, "reg.lan:5000": true,
		"10.1.2.3:5001": false, "192.168.1.10:5000": false, "registry.local": false, "example.com": false,
	} {
		if got := g.allowHTTP(host); got != want {
			t.Errorf("allowHTTP(%s) = %v, want %v", host, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://192.168.1.10:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Errorf("plain HTTP to a private address: %v", err)
	}
}
