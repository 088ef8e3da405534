package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/urfave/cli/v2"

	"github.com/podrun/podrun/image/imagetest"

	"github.com/podrun/podrun/internal/testutil"
)

// podrunImage runs "podrun image --root root args..." in this process.
func podrunImage(t *testing.T, root string, args ...string) (string, error) {
	t.Helper()
	var out, progress bytes.Buffer
	app := &cli.App{Name: "podrun", Commands: []*cli.Command{imageCommand}, Writer: &out, ErrWriter: &progress}
	err := app.RunContext(t.Context(), append([]string{"podrun", "image", "--root", root}, args...))
	return out.String(), err
}

func TestImageCommands(t *testing.T) {
	testutil.RequiresRoot(t)
	work, err := os.MkdirTemp("", "podrun-clitest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	root := filepath.Join(work, "state")
	bb, err := imagetest.Busybox()
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(work, "busybox.tar")
	if err := tarball.WriteToFile(saved, name.MustParseReference("busybox:latest"), bb); err != nil {
		t.Fatal(err)
	}
	// docker save x | podrun image load
	piped := filepath.Join(work, "piped.tar")
	if err := tarball.WriteToFile(piped, name.MustParseReference("piped:1"), bb); err != nil {
		t.Fatal(err)
	}
	var rootfs bytes.Buffer
	if err := imagetest.BusyboxRootfs(&rootfs); err != nil {
		t.Fatal(err)
	}
	rootfsTar := filepath.Join(work, "rootfs.tar")
	if err := os.WriteFile(rootfsTar, rootfs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	host := imagetest.Registry(t)
	imagetest.Push(t, host+"/library/busybox:1", bb, nil)
	id, _ := bb.ConfigName()

	for _, step := range []struct {
		args  []string
		want  []string // regular expressions the output matches
		fail  bool
		stdin string // a file for standard input
	}{
		{args: []string{"load", "-i", saved}, want: []string{"Loaded image: docker.io/library/busybox:latest"}},
		{args: []string{"load"}, stdin: piped, want: []string{"Loaded image: docker.io/library/piped:1"}},
		{args: []string{"load", "-i", "-"}, stdin: piped, want: []string{"Loaded image: docker.io/library/piped:1"}},
		{args: []string{"load"}, stdin: rootfsTar, fail: true}, // neither docker save nor OCI
		{args: []string{"rm", "piped:1"}, want: []string{"Untagged: docker.io/library/piped:1"}},
		{args: []string{"import", rootfsTar, "--name", "mine:1"}, want: []string{"sha256:"}},
		{args: []string{"pull", host + "/library/busybox:1"}, want: []string{"Pulled " + regexp.QuoteMeta(host) + "/library/busybox:1", "Image ID: " + id.String()}},
		{args: []string{"ls"}, want: []string{`REPOSITORY +TAG +IMAGE ID +SIZE`, `docker\.io/library/busybox +latest +` + id.Hex[:12] + ` +1\.07MB`, `docker\.io/library/mine +1 `}},
		{args: []string{"rm", "mine:1"}, want: []string{"Untagged: docker.io/library/mine:1", "Deleted: sha256:"}},
		{args: []string{"rm", "mine:1"}, fail: true},
		{args: []string{"import", rootfsTar}, fail: true},
		{args: []string{"pull", "Not/Valid"}, fail: true},
		{args: []string{"prune"}, want: []string{"Deleted 0 layers"}},
	} {
		out, err := withStdin(t, step.stdin, func() (string, error) { return podrunImage(t, root, step.args...) })
		if (err != nil) != step.fail {
			t.Errorf("podrun image %s: err %v, want failure %v; output:\n%s", strings.Join(step.args, " "), err, step.fail, out)
		}
		for _, w := range step.want {
			if !regexp.MustCompile(w).MatchString(out) {
				t.Errorf("podrun image %s: output lacks %q:\n%s", strings.Join(step.args, " "), w, out)
			}
		}
	}
	if out, _ := podrunImage(t, root, "ls", "-q"); len(strings.Fields(out)) != 1 {
		t.Errorf("ls -q after rm: %q, want busybox's one ID", out)
	}
}

// withStdin runs fn with standard input read from file ("" leaves it).
func withStdin(t *testing.T, file string, fn func() (string, error)) (string, error) {
	if file == "" {
		return fn()
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stdin := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = stdin }()
	return fn()
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 999: "999B", 1000: "1kB", 1068729: "1.07MB", 5_300_000_000: "5.3GB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %s, want %s", n, got, want)
		}
	}
}
