// Command testimage writes the offline busybox:latest test image (see
// image/imagetest) as a docker save tarball, for `podrun image load -i`,
// or serves it from an in-memory registry, for trying `podrun image pull`.
//
//	go run ./hack/testimage -o bin/busybox.tar
//	go run ./hack/testimage -serve 127.0.0.1:5000   # then: podrun image pull 127.0.0.1:5000/library/busybox
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/podrun/podrun/image/imagetest"
)

func main() {
	out := flag.String("o", "bin/busybox.tar", "output file")
	ref := flag.String("t", "busybox:latest", "image name")
	serve := flag.String("serve", "", "serve the image from a registry on this address instead")
	flag.Parse()
	run := write
	if *serve != "" {
		run = func(_, ref string) error { return serveRegistry(*serve, ref) }
	}
	if err := run(*out, *ref); err != nil {
		fmt.Fprintln(os.Stderr, "testimage:", err)
		os.Exit(1)
	}
}

func write(out, ref string) error {
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

func serveRegistry(addr, ref string) error {
	img, err := imagetest.Busybox()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	go http.Serve(ln, reg)
	full := ln.Addr().String() + "/library/" + ref
	if _, err := imagetest.PushE(full, img, nil); err != nil {
		return err
	}
	fmt.Println("serving", full)
	select {}
}
