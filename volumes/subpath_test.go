package volumes

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/testutil"
)

// subPathPod makes a pod directory with one volume "v" (mode 0777, like an
// emptyDir) and a directory standing for a host path outside it.
func subPathPod(t *testing.T) (podDir, vol, host string) {
	t.Helper()
	podDir = filepath.Dir(volumesDir(t))
	vol = filepath.Join(podDir, "volumes", "v")
	host = filepath.Join(podDir, "host-etc")
	for _, d := range []string{vol, host} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(vol, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "shadow"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	return podDir, vol, host
}

func TestSubPath(t *testing.T) {
	testutil.RequiresRoot(t)
	podDir, vol, host := subPathPod(t)
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(vol, "file"), []byte("in the volume"), 0o644))
	must(os.Mkdir(filepath.Join(vol, "dir"), 0o755))
	must(os.Symlink("dir", filepath.Join(vol, "inside")))
	must(os.Symlink(host, filepath.Join(vol, "abs")))
	must(os.Symlink("../../host-etc", filepath.Join(vol, "rel")))

	// A missing directory chain is created with the volume root's mode,
	// whatever the umask, and the mount shows the volume's directory.
	tgt := SubPathTarget(podDir, "v", "app", 0)
	must(PrepareSubPath(vol, "dir/a/b", tgt))
	for _, d := range []string{"dir/a", "dir/a/b"} {
		if fi, err := os.Stat(filepath.Join(vol, d)); err != nil || fi.Mode().Perm() != 0o777 {
			t.Errorf("%s: %v %v, want mode 0777", d, fi.Mode(), err)
		}
	}
	must(os.WriteFile(filepath.Join(tgt, "x"), []byte("1"), 0o644))
	if _, err := os.Stat(filepath.Join(vol, "dir/a/b/x")); err != nil {
		t.Errorf("write through the subPath mount: %v", err)
	}
	// Again (a restarted container): the old mount is replaced, not stacked.
	must(PrepareSubPath(vol, "dir/a/b", tgt))
	if m, _ := mountsUnder(tgt); len(m) != 1 {
		t.Errorf("mounts on the target after a second prepare: %v", m)
	}
	// A file, and a symlink that stays inside the volume.
	fileTgt := SubPathTarget(podDir, "v", "app", 1)
	must(PrepareSubPath(vol, "file", fileTgt))
	if b, err := os.ReadFile(fileTgt); err != nil || string(b) != "in the volume" {
		t.Errorf("file subPath: %q %v", b, err)
	}
	must(PrepareSubPath(vol, "inside/a", SubPathTarget(podDir, "v", "app", 2)))

	for sub, want := range map[string]string{
		"/etc":         "must not be an absolute path",
		"dir/../..":    "must not contain '..'",
		"abs":          "not within volume path",
		"abs/new":      "not within volume path",
		"rel":          "not within volume path",
		"rel/shadow":   "not within volume path",
		"dir/../dir/a": "must not contain '..'",
	} {
		err := PrepareSubPath(vol, sub, SubPathTarget(podDir, "v", "bad", 0))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("subPath %q: %v, want %q", sub, err, want)
		}
	}
	if entries, _ := os.ReadDir(host); len(entries) != 1 {
		t.Errorf("something was created in the host directory: %v", entries)
	}

	must(TeardownSubPaths(podDir))
	if m, _ := mountsUnder(podDir); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if _, err := os.Stat(filepath.Join(podDir, subPathsDir)); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", subPathsDir, err)
	}
	if _, err := os.Stat(filepath.Join(vol, "dir/a/b/x")); err != nil {
		t.Errorf("teardown removed volume content: %v", err)
	}
}

// CVE-2017-1002101: a process of the pod keeps swapping a subPath component
// between a directory and a symlink to a host directory while the subPath
// is prepared again and again. The host directory is never what gets
// mounted, and nothing is created in it.
func TestSubPathSymlinkRace(t *testing.T) {
	testutil.RequiresRoot(t)
	podDir, vol, host := subPathPod(t)
	var hostSt, shadowSt unix.Stat_t
	if err := unix.Stat(host, &hostSt); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Join(host, "shadow"), &shadowSt); err != nil {
		t.Fatal(err)
	}
	// vol/a and vol/a.swap are exchanged atomically (RENAME_EXCHANGE):
	// one is a directory of the volume, the other a symlink to the host
	// directory (absolute or escaping with ..).
	if err := os.Mkdir(filepath.Join(vol, "a"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(vol, "a", "sub"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(vol, "a.swap")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../host-etc", filepath.Join(vol, "b.swap")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(vol, "b"), 0o777); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var swaps atomic.Int64
	defer func() { // before the volumes' cleanup
		stop.Store(true)
		wg.Wait()
	}()
	for _, name := range []string{"a", "b"} {
		wg.Go(func() {
			for !stop.Load() {
				if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(vol, name), unix.AT_FDCWD, filepath.Join(vol, name+".swap"), unix.RENAME_EXCHANGE); err != nil {
					t.Errorf("swap: %v", err)
					return
				}
				swaps.Add(1)
			}
		})
	}
	const iterations = 300
	mounted := 0
	subs := []string{"a", "a/sub", "a/new/dir", "b", "b/shadow", "b/made"}
	for i := range iterations {
		sub := subs[i%len(subs)]
		tgt := SubPathTarget(podDir, "v", "c", i%len(subs))
		if err := PrepareSubPath(vol, sub, tgt); err != nil {
			continue // refused: the symlink was in place
		}
		mounted++
		var st unix.Stat_t
		if err := unix.Stat(tgt, &st); err != nil {
			t.Fatal(err)
		}
		if st.Dev == hostSt.Dev && st.Ino == hostSt.Ino {
			t.Fatalf("iteration %d: subPath %q mounted the host directory", i, sub)
		}
		// "b/shadow" may be a directory the subPath created in the volume,
		// never the host's file.
		for _, p := range []string{tgt, filepath.Join(tgt, "shadow")} {
			if err := unix.Stat(p, &st); err == nil && st.Dev == shadowSt.Dev && st.Ino == shadowSt.Ino {
				t.Fatalf("iteration %d: subPath %q reaches the host's file", i, sub)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if entries, _ := os.ReadDir(host); len(entries) != 1 {
		t.Errorf("created in the host directory: %v", entries)
	}
	t.Logf("%d of %d prepares mounted, %d swaps", mounted, iterations, swaps.Load())
	if mounted == 0 || mounted == iterations {
		t.Errorf("the race never went one way or the other: %d of %d mounted", mounted, iterations)
	}
	if err := TeardownSubPaths(podDir); err != nil {
		t.Fatal(err)
	}
}
