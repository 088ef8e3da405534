// Command testimage writes the offline busybox:latest test image (see
// image/imagetest) as a docker save tarball, for `podrun image load -i`.
//
//	go run ./hack/testimage -o bin/busybox.tar
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/podrun/podrun/image/imagetest"
)

func main() {
	out := flag.String("o", "bin/busybox.tar", "output file")
	ref := flag.String("t", "busybox:latest", "image name")
	flag.Parse()
	if err := run(*out, *ref); err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
}

func run(out, ref string) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	img, err := imagetest.Busybox()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, tag, img); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s %s\n", out, ref, id)
	return nil
}
