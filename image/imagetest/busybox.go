// Package imagetest builds test images offline and serves them from an
// in-process registry, for podrun's tests and hack/testimage.
//
// Busybox is a real one-layer image made from the host's static busybox
// (Debian's busybox-static): every applet a hard link in /bin (each link
// header repeating the file's full stat: unpackers apply a link header's
// mode to the shared inode), /tmp 1777, /etc/passwd and /etc/group with
// root, a uid-1000 "user" and nobody (65534), /root and /home, and no
// /etc/hosts (the runtime provides it). Timestamps are fixed, so the
// digests are stable for a given busybox binary.
package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the modification time of every file in the test images.
var Epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// BusyboxPaths are where the static busybox binary is looked for.
var BusyboxPaths = []string{"/bin/busybox", "/usr/bin/busybox"}

// Path is the image's PATH.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var busybox = sync.OnceValues(func() (v1.Image, error) {
	var rootfs bytes.Buffer
	if err := BusyboxRootfs(&rootfs); err != nil {
		return nil, err
	}
	layer, err := LayerFromTar(rootfs.Bytes())
	if err != nil {
		return nil, err
	}
	return Image(empty.Image, v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=" + Path}}, layer)
})

// Busybox returns the busybox image for this host's architecture, built once per process.
func Busybox() (v1.Image, error) { return busybox() }

// BusyboxRootfs writes the busybox root filesystem as an uncompressed tar.
func BusyboxRootfs(w io.Writer) error {
	bin, err := findBusybox()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("read busybox: %w", err)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return fmt.Errorf("%s --list: %w", bin, err)
	}
	applets := strings.Fields(string(out))
	sort.Strings(applets)

	tw := tar.NewWriter(w)
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: Epoch})
	}
	file := func(name string, mode int64, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: Epoch}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	steps := []func() error{
		func() error { return dir("bin", 0o755, 0) },
		func() error { return file("bin/busybox", 0o755, data) },
		func() error {
			for _, a := range applets {
				if a == "busybox" || strings.Contains(a, "/") {
					continue
				}
				// The full stat again: an unpacker applies a link header's
				// mode and owner to the shared inode.
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeLink, Name: "bin/" + a, Linkname: "bin/busybox", Mode: 0o755, ModTime: Epoch}); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { return dir("dev", 0o755, 0) },
		func() error { return dir("etc", 0o755, 0) },
		func() error {
			return file("etc/group", 0o644, []byte("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"))
		},
		func() error {
			return file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"+
				"user:x:1000:1000:user:/home/user:/bin/sh\n"+
				"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
		},
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/user", 0o755, 1000) },
		func() error { return dir("proc", 0o555, 0) },
		func() error { return dir("root", 0o700, 0) },
		func() error { return dir("sys", 0o555, 0) },
		func() error { return dir("tmp", 0o1777, 0) },
		func() error { return dir("usr", 0o755, 0) },
		func() error { return dir("var", 0o755, 0) },
		tw.Close,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("busybox rootfs: %w", err)
		}
	}
	return nil
}

func findBusybox() (string, error) {
	for _, p := range BusyboxPaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no busybox at %s: install busybox-static", strings.Join(BusyboxPaths, " or "))
}

// LayerFromTar makes a gzip-compressed layer from an uncompressed tar.
func LayerFromTar(tarball []byte) (v1.Layer, error) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(tarball); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	b := gz.Bytes()
	return tarballLayer(b)
}

// Layer makes a gzip-compressed layer from tar entries written by build.
// Whatever build writes goes in as is, so tests can write hostile layers.
func Layer(build func(tw *tar.Writer) error) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := build(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return LayerFromTar(buf.Bytes())
}

func tarballLayer(gz []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.DockerLayer))
}

// Image stacks layers on base with config, for linux on this host's
// architecture (or base's, if it has one), created at Epoch.
func Image(base v1.Image, config v1.Config, layers ...v1.Layer) (v1.Image, error) {
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "podrun imagetest"}}
	}
	img, err := mutate.Append(base, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if cf.Architecture == "" {
		cf.OS, cf.Architecture = "linux", runtime.GOARCH
	}
	cf.Created = v1.Time{Time: Epoch}
	cf.Config = config
	return mutate.ConfigFile(img, cf)
}
