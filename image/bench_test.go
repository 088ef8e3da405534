package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/podrun/podrun/image/imagetest"

	"github.com/podrun/podrun/internal/testutil"
)

// BenchmarkPullBusybox: a cold pull and unpack of the busybox test image
// from a registry on 127.0.0.1 into an empty store.
func BenchmarkPullBusybox(b *testing.B) {
	testutil.RequiresRoot(b)
	host := imagetest.Registry(b)
	imagetest.Push(b, host+"/library/busybox:latest", busybox(b), nil)
	work := tempDir(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		s, err := Open(filepath.Join(work, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Pull(ctx, host+"/library/busybox:latest", PullOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(s.root)
		b.StartTimer()
	}
}

// BenchmarkLookupPresent: finding an image already in the store, what
// imagePullPolicy IfNotPresent costs when the image is there.
func BenchmarkLookupPresent(b *testing.B) {
	testutil.RequiresRoot(b)
	s := newStore(b)
	img := pushPull(b, s, busybox(b))
	for b.Loop() {
		if _, err := s.Lookup(img.Ref); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMount: Mount and Unmount of a container root filesystem.
func BenchmarkMount(b *testing.B) {
	testutil.RequiresRoot(b)
	s := newStore(b)
	img := pushPull(b, s, appImage(b, busybox(b)))
	work := tempDir(b)
	b.Run("mount", func(b *testing.B) {
		i := 0
		var dirs []string
		for b.Loop() {
			i++
			d := filepath.Join(work, fmt.Sprint("m", i))
			if _, err := s.Mount(img, d); err != nil {
				b.Fatal(err)
			}
			dirs = append(dirs, d)
		}
		b.StopTimer()
		for _, d := range dirs {
			if err := Unmount(d); err != nil {
				b.Error(err)
			}
		}
	})
	b.Run("unmount", func(b *testing.B) {
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			d := filepath.Join(work, fmt.Sprint("u", i))
			if _, err := s.Mount(img, d); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := Unmount(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
