package main

import (
	"context"
	"errors"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/podspec"
)

// imagePoll is how often a --watch loop asks the local Docker Engine API
// (dockerd or podman) which image each tag names.
const imagePoll = 2 * time.Second

// imageWatch follows the tags of a local Docker Engine or podman for a
// --watch loop: an image podrun loaded (not pulled from a registry) whose
// tag the daemon now gives to another build is loaded again.
type imageWatch struct {
	store *image.Store
	d     *image.Daemon
	note  func(format string, args ...any)
}

// newImageWatch returns nil when no Docker Engine API is reachable: the
// loop then follows only the files.
func newImageWatch(store *image.Store, note func(format string, args ...any)) *imageWatch {
	d, err := image.OpenDaemon("")
	if err != nil {
		return nil
	}
	note("--watch: following the image tags of %s", d.Host)
	return &imageWatch{store: store, d: d, note: note}
}

func (iw *imageWatch) Close() {
	if iw != nil {
		_ = iw.d.Close()
	}
}

// ticks are the polls of a --watch loop that follows iw, with the func
// that stops them; without iw (nil) there are none.
func (iw *imageWatch) ticks() (<-chan time.Time, func()) {
	if iw == nil {
		return nil, func() {}
	}
	t := time.NewTicker(imagePoll)
	return t.C, t.Stop
}

// reload loads again every ref whose tag moved in the daemon (or that
// podrun lacks and the daemon has) and returns them. Images pulled from
// a registry (they have a repo digest) are left alone.
func (iw *imageWatch) reload(ctx context.Context, refs []string) []string {
	var moved []string
	for _, ref := range refs {
		id, err := iw.d.ImageID(ctx, ref)
		if err != nil {
			continue // the daemon has no such image
		}
		img, err := iw.store.Lookup(ref)
		if err == nil && (img.RepoDigest != "" || img.ID == id) {
			continue
		}
		if err != nil && !errors.Is(err, image.ErrNotFound) {
			continue
		}
		if _, err := iw.store.LoadFromDaemon(ctx, iw.d, ref, nil); err != nil {
			iw.note("--watch: loading %s from %s: %v", ref, iw.d.Host, err)
			continue
		}
		iw.note("--watch: %s moved to %s in %s: loaded", ref, shortID(id), iw.d.Host)
		moved = append(moved, ref)
	}
	return moved
}

// podImages is every image the pods' containers name, once each.
func podImages(pods []*corev1.Pod) []string {
	var out []string
	for _, p := range pods {
		for _, c := range podspec.Containers(&p.Spec) {
			if !slices.Contains(out, c.Image) {
				out = append(out, c.Image)
			}
		}
	}
	return out
}

// usesAny reports whether a container of p names one of refs.
func usesAny(p *corev1.Pod, refs []string) bool {
	for _, c := range podspec.Containers(&p.Spec) {
		if slices.Contains(refs, c.Image) {
			return true
		}
	}
	return false
}
