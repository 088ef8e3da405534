package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/podrun/podrun/image/imagetest"

	"github.com/podrun/podrun/internal/testutil"
)

func TestLoadFormats(t *testing.T) {
	testutil.RequiresRoot(t)
	bb := busybox(t)
	id, _ := bb.ConfigName()
	work := tempDir(t)

	dockerSave := filepath.Join(work, "busybox.tar")
	if err := tarball.WriteToFile(dockerSave, name.MustParseReference("busybox:latest"), bb); err != nil {
		t.Fatal(err)
	}
	gzipped := filepath.Join(work, "busybox.tar.gz")
	gzipFile(t, dockerSave, gzipped)

	ociDir := filepath.Join(work, "oci")
	p, err := layout.Write(ociDir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	plat := hostPlatform()
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: bb, Descriptor: v1.Descriptor{Platform: &plat}})
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"io.containerd.image.name": "example.com/tools/busybox:1"})); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(bb, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	ociArchive := filepath.Join(work, "oci.tar")
	tarDir(t, ociDir, ociArchive)

	for _, tc := range []struct {
		name, path string
		refs       []string // "" for an unnamed image
	}{
		{"docker save", dockerSave, []string{"docker.io/library/busybox:latest"}},
		{"docker save, gzip", gzipped, []string{"docker.io/library/busybox:latest"}},
		{"classic docker save", classicDockerSave(t, bb, work), []string{"docker.io/library/classic:1"}},
		{"OCI layout", ociDir, []string{"example.com/tools/busybox:1", ""}},
		{"OCI archive", ociArchive, []string{"example.com/tools/busybox:1", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			imgs, err := s.Load(context.Background(), tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != len(tc.refs) {
				t.Fatalf("loaded %d images, want %d", len(imgs), len(tc.refs))
			}
			for i, img := range imgs {
				if img.Ref != tc.refs[i] || img.ID != id.String() || img.RepoDigest != "" || img.ImageID() != id.String() {
					t.Errorf("image %d = %+v, want ref %q ID %s, no repo digest", i, img, tc.refs[i], id)
				}
				if !s.complete(img) {
					t.Errorf("image %d not unpacked", i)
				}
			}
			if tc.refs[0] != "" {
				if got, err := s.Lookup(tc.refs[0]); err != nil || got.ID != id.String() {
					t.Errorf("Lookup(%s) = %v, %v", tc.refs[0], got, err)
				}
			}
			if got := entries(t, filepath.Join(s.root, "tmp")); len(got) != 0 {
				t.Errorf("tmp holds %v", got)
			}
			if fi, err := os.Stat(tc.path); err == nil && !fi.IsDir() && fi.Size() == 0 {
				t.Error("the input was consumed")
			}
		})
	}
}

func TestLoadRejectsOtherFiles(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	f := filepath.Join(tempDir(t), "x.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("hi"))
	tw.Close()
	os.WriteFile(f, buf.Bytes(), 0o644)
	if _, err := s.Load(context.Background(), f, nil); err == nil {
		t.Error("loaded a tar that is no image archive")
	}
	if got := entries(t, filepath.Join(s.root, "tmp")); len(got) != 0 {
		t.Errorf("tmp holds %v", got)
	}
}

// classicDockerSave writes the pre-OCI docker save layout: <id>.json,
// uncompressed <dir>/layer.tar, here reached through a symlink as docker
// does for a layer two images share.
func classicDockerSave(t testing.TB, img v1.Image, work string) string {
	t.Helper()
	cfg, _ := img.RawConfigFile()
	id, _ := img.ConfigName()
	l := mustLayers(t, img)[0]
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	layerTar, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := json.Marshal([]map[string]any{{
		"Config": id.Hex + ".json", "RepoTags": []string{"classic:1"}, "Layers": []string{"alias/layer.tar"},
	}})
	out := filepath.Join(work, "classic.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body []byte) {
		h.Size, h.Mode = int64(len(body)), 0o644
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	add(&tar.Header{Name: "real/", Typeflag: tar.TypeDir}, nil)
	add(&tar.Header{Name: "real/layer.tar", Typeflag: tar.TypeReg}, layerTar)
	add(&tar.Header{Name: "alias/", Typeflag: tar.TypeDir}, nil)
	add(&tar.Header{Name: "alias/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../real/layer.tar"}, nil)
	add(&tar.Header{Name: id.Hex + ".json", Typeflag: tar.TypeReg}, cfg)
	add(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg}, manifest)
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func gzipFile(t testing.TB, in, out string) {
	t.Helper()
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tarDir(t testing.TB, dir, out string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := d.Info()
		h, _ := tar.FileInfoHeader(fi, "")
		h.Name = rel
		if d.IsDir() {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			tw.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportRootfs(t *testing.T) {
	testutil.RequiresRoot(t)
	work := tempDir(t)
	var rootfs bytes.Buffer
	if err := imagetest.BusyboxRootfs(&rootfs); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(work, "rootfs.tar")
	if err := os.WriteFile(plain, rootfs.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	gz := filepath.Join(work, "rootfs.tar.gz")
	gzipFile(t, plain, gz)
	s := newStore(t)
	for _, src := range []string{plain, gz} {
		img, err := s.Import(context.Background(), src, "mine:1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if img.Ref != "docker.io/library/mine:1" || img.RepoDigest != "" {
			t.Errorf("import: %+v", img)
		}
		_, root := mount(t, s, img)
		fi, err := os.Stat(filepath.Join(root, "bin/sh"))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("/bin/sh: %v %v", fi, err)
		}
	}
	// Same content, same layer: one snapshot for both imports.
	if got := entries(t, filepath.Join(s.root, "snapshots")); len(got) != 1 {
		t.Errorf("snapshots = %v, want one", got)
	}
	if _, err := s.Import(context.Background(), plain, "Bad Name", nil); Reason(err) != ReasonInvalidImageName {
		t.Errorf("import with a bad name: %v", err)
	}
}
