package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/image/imagetest"

	"github.com/podrun/podrun/internal/testutil"
)

// pushPull pushes img to a fresh registry and pulls it into s.
func pushPull(t testing.TB, s *Store, img v1.Image) *Image {
	t.Helper()
	host := imagetest.Registry(t)
	imagetest.Push(t, host+"/test:1", img, nil)
	got, err := s.Pull(context.Background(), host+"/test:1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// mount mounts img in a fresh container directory, unmounted at cleanup.
func mount(t testing.TB, s *Store, img *Image) (dir, rootfs string) {
	t.Helper()
	dir = filepath.Join(tempDir(t), "c")
	rootfs, err := s.Mount(img, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Unmount(dir); err != nil {
			t.Error(err)
		}
	})
	return dir, rootfs
}

func layer(t testing.TB, hdrs ...*tar.Header) v1.Layer {
	t.Helper()
	l, err := imagetest.Layer(func(tw *tar.Writer) error {
		for _, h := range hdrs {
			if h.ModTime.IsZero() {
				h.ModTime = imagetest.Epoch
			}
			if h.Typeflag == tar.TypeReg && h.Size == 0 && h.Linkname != "" {
				h.Size = int64(len(h.Linkname)) // body carried in Linkname, for brevity
			}
			body := ""
			if h.Typeflag == tar.TypeReg {
				body, h.Linkname = h.Linkname, ""
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if _, err := tw.Write([]byte(body)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func dir(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}
}

func file(name, body string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Linkname: body}
}

func TestWhiteoutAndOpaqueDirectory(t *testing.T) {
	testutil.RequiresRoot(t)
	base := layer(t, dir("etc/", 0o755), file("etc/motd", "old"), file("etc/keep", "kept"),
		dir("spool/", 0o755), file("spool/a", "a"), dir("spool/sub/", 0o755), file("spool/sub/b", "b"),
		&tar.Header{Typeflag: tar.TypeDir, Name: "owned/", Mode: 0o700, Uid: 1000, Gid: 1000})
	top := layer(t, file("etc/.wh.motd", ""), file("spool/.wh..wh..opq", ""), file("spool/new", "new"),
		file("owned/implied/file", "x")) // owned/ and owned/implied/ are implied here
	img, err := imagetest.Image(empty.Image, v1.Config{}, base, top)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	got := pushPull(t, s, img)
	_, root := mount(t, s, got)

	if _, err := os.Lstat(filepath.Join(root, "etc/motd")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("whited-out /etc/motd: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/keep")); string(b) != "kept" {
		t.Errorf("/etc/keep = %q", b)
	}
	if got := entries(t, filepath.Join(root, "spool")); !slices.Equal(got, []string{"new"}) {
		t.Errorf("opaque /spool holds %v, want [new]", got)
	}
	fi, err := os.Stat(filepath.Join(root, "owned"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || fi.Mode().Perm() != 0o700 {
		t.Errorf("implied parent /owned is %d %v, want the lower layer's 1000 0700", st.Uid, fi.Mode().Perm())
	}
	// The lower layer itself is untouched.
	if b, err := os.ReadFile(filepath.Join(s.snapshotPath(got.chains[0]), "etc/motd")); err != nil || string(b) != "old" {
		t.Errorf("base layer's etc/motd: %q, %v", b, err)
	}
}

func TestOverlayIsolation(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	img := pushPull(t, s, busybox(t))
	dirA, a := mount(t, s, img)
	_, b := mount(t, s, img)

	if err := os.WriteFile(filepath.Join(a, "tmp/written"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(a, "bin/ls")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b, "tmp/written")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file written in one container shows in another: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b, "bin/ls")); err != nil {
		t.Errorf("a file deleted in one container is gone in another: %v", err)
	}
	snap := s.snapshotPath(img.chains[0])
	if _, err := os.Stat(filepath.Join(snap, "tmp/written")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a container's write reached the image layer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(snap, "bin/ls")); err != nil {
		t.Errorf("a container's delete reached the image layer: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dirA, "upper/tmp/written")); err != nil {
		t.Errorf("the write is not in the container's upper dir: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dirA, "upper/bin/ls"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("the delete is not a whiteout in upper: %v %+v", err, st)
	}
	if fi, err := os.Stat(filepath.Join(a, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
		t.Errorf("/tmp = %v, %v; want 1777", fi.Mode(), err)
	}
}

func TestUnmountFromDirAlone(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	img := pushPull(t, s, busybox(t))
	d := filepath.Join(tempDir(t), "c")
	root, err := s.Mount(img, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mount(img, d); err == nil {
		Unmount(d)
		t.Fatal("a second Mount on the same dir succeeded")
	}
	if m, _ := isMountPoint(root); !m {
		t.Fatal("a failed second Mount undid the first")
	}
	if got := entries(t, filepath.Join(s.root, "leases")); len(got) != 1 {
		t.Errorf("leases = %v, want one", got)
	}
	// As after a crash: no Store, only the directory.
	if err := Unmount(d); err != nil {
		t.Fatal(err)
	}
	if exists(d) {
		t.Error("Unmount left the directory")
	}
	if got := entries(t, filepath.Join(s.root, "leases")); len(got) != 0 {
		t.Errorf("Unmount left the lease: %v", got)
	}
	if err := Unmount(d); err != nil {
		t.Errorf("second Unmount: %v", err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), root) {
		t.Errorf("%s still in mountinfo", root)
	}
}

func TestRemoveAndPruneSpareMountedLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	ctx := context.Background()
	img := pushPull(t, s, appImage(t, busybox(t)))
	d, _ := mount(t, s, img)

	did, err := s.Remove(ctx, img.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(did, "Untagged: "+img.Ref) || !slices.Contains(did, "Deleted: "+img.ID) {
		t.Errorf("Remove said %q", did)
	}
	for _, c := range img.chains {
		if !exists(s.snapshotPath(c)) {
			t.Errorf("rm deleted layer %s while a container uses it", c)
		}
	}
	if got := entries(t, filepath.Join(s.root, "blobs/sha256")); len(got) != 0 {
		t.Errorf("rm left blobs: %v", got)
	}
	if err := Unmount(d); err != nil {
		t.Fatal(err)
	}
	p, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.Snapshots != 2 || p.Blobs != 0 || p.Bytes < 1<<20 || p.Bytes > 3<<20 {
		t.Errorf("prune = %+v, want the 2 layers (about 2 MB) the container held", p)
	}
	for _, sub := range []string{"snapshots", "blobs/sha256", "tmp", "leases"} {
		if got := entries(t, filepath.Join(s.root, sub)); len(got) != 0 {
			t.Errorf("%s after prune: %v", sub, got)
		}
	}
}

func TestMountDeepImage(t *testing.T) {
	testutil.RequiresRoot(t)
	var layers []v1.Layer
	for i := range 70 {
		layers = append(layers, layer(t, file(fmt.Sprintf("l/%02d", i), "x")))
	}
	img, err := imagetest.Image(empty.Image, v1.Config{}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t)
	got := pushPull(t, s, img)
	_, root := mount(t, s, got)
	if n := len(entries(t, filepath.Join(root, "l"))); n != 70 {
		t.Errorf("merged /l has %d files, want 70", n)
	}

	// 70 absolute layer paths are over the page the legacy mount options
	// get: it mounts them by short names relative to the container's dir.
	legacyOnly.Store(true)
	defer legacyOnly.Store(false)
	dir, legacy := mount(t, s, got)
	if n := len(entries(t, filepath.Join(legacy, "l"))); n != 70 {
		t.Errorf("legacy mount of 70 layers: merged /l has %d files, want 70", n)
	}
	if target, err := os.Readlink(filepath.Join(dir, "l", "0")); err != nil || target != s.snapshotPath(got.chains[69]) {
		t.Errorf("short name of the topmost layer: %q, %v", target, err)
	}
	wd, _ := os.Getwd()
	if wd == dir {
		t.Error("the legacy mount changed the process's working directory")
	}
	_, small := mount(t, s, pushPull(t, s, busybox(t)))
	if _, err := os.Stat(filepath.Join(small, "bin/busybox")); err != nil {
		t.Errorf("legacy mount: %v", err)
	}
}

// TestMergedRootRuns runs the app image's entrypoint in its merged root, as
// its image user: the busybox layer, the app layer and the config work together.
func TestMergedRootRuns(t *testing.T) {
	testutil.RequiresRoot(t)
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		t.Skip("no chroot(8)")
	}
	s := newStore(t)
	img := pushPull(t, s, appImage(t, busybox(t)))
	_, root := mount(t, s, img)
	args := append([]string{"--userspec=" + img.Config.User, root}, img.Config.Entrypoint...)
	cmd := exec.Command(chroot, append(args, img.Config.Cmd...)...)
	cmd.Env = img.Config.Env
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "hello world\n" {
		t.Errorf("entrypoint: %q, %v", out, err)
	}
	out, err = exec.Command(chroot, "--userspec=1000:1000", root, "/bin/sh", "-c", "id -u; touch /tmp/x && ls /tmp").CombinedOutput()
	if err != nil || string(out) != "1000\nx\n" {
		t.Errorf("as uid 1000: %q, %v", out, err)
	}
}

// A container's overlay is volatile, by either mount path: its unmount
// does not sync the filesystem under its upper directory.
func TestOverlayIsVolatile(t *testing.T) {
	testutil.RequiresRoot(t)
	s := newStore(t)
	img := pushPull(t, s, busybox(t))
	for _, legacy := range []bool{false, true} {
		legacyOnly.Store(legacy)
		_, root := mount(t, s, img)
		// Linux 6.1 shows "volatile", newer kernels "fsync=volatile".
		mi, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(root))
		if err != nil || len(mi) != 1 {
			t.Fatalf("legacy %v: %s in mountinfo: %v, %v", legacy, root, mi, err)
		}
		if opts := strings.Split(mi[0].VFSOptions, ","); !slices.Contains(opts, "volatile") && !slices.Contains(opts, "fsync=volatile") {
			t.Errorf("legacy %v: overlay options %v, want volatile", legacy, opts)
		}
	}
	legacyOnly.Store(false)
}
