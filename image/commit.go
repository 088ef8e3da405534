package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// maxDownloads bounds the layers fetched at once per pull (dockerd's default).
const maxDownloads = 3

// Progress is one update about one layer of a pull or load.
type Progress struct {
	Layer   string // the layer blob's digest, shortened to 12 hex digits
	Phase   string // one of the Phase constants
	Current int64  // bytes fetched so far
	Total   int64  // the blob's size
}

// Phases of a layer, in order. A layer already unpacked goes straight to PhaseExists.
const (
	PhaseWaiting     = "waiting"
	PhaseDownloading = "downloading"
	PhaseUnpacking   = "unpacking"
	PhaseDone        = "done"
	PhaseExists      = "exists"
)

// pendingImage is an image whose manifest and config are known (and stored)
// and whose layers are still to be fetched and unpacked.
type pendingImage struct {
	refs       []string // normalised references that will name it
	repoDigest string
	id         v1.Hash // config digest
	manifest   v1.Hash // zero when the source has no manifest (docker save)
	config     *v1.ConfigFile
	layers     []pendingLayer
}

type pendingLayer struct {
	digest    v1.Hash // of the blob, as fetched
	size      int64
	mediaType string
	diffID    v1.Hash
	fetch     fetchFunc
}

// syncReport serialises progress callbacks: layers report from their own goroutines.
func syncReport(f func(Progress)) func(Progress) {
	if f == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		f(p)
	}
}

// commit fetches and unpacks p's layers (in parallel, each unpacked once its
// parent is) and then records the image and its references in the index.
func (s *Store) commit(ctx context.Context, p *pendingImage, report func(Progress)) (*Image, error) {
	if len(p.layers) == 0 {
		return nil, fmt.Errorf("image %s has no layers", p.id)
	}
	if n := len(p.config.RootFS.DiffIDs); n != len(p.layers) {
		return nil, fmt.Errorf("image %s: config lists %d layers, manifest %d", p.id, n, len(p.layers))
	}
	chains := chainIDs(p.config.RootFS.DiffIDs)
	for _, l := range p.layers {
		report(Progress{Layer: l.digest.Hex[:12], Phase: PhaseWaiting, Total: l.size})
	}
	if err := s.unpackAll(ctx, p.layers, chains, report); err != nil {
		return nil, err
	}

	rec := &record{Config: configFrom(p.config.Config)}
	if p.manifest != (v1.Hash{}) {
		rec.Manifest = p.manifest.String()
	}
	for i, l := range p.layers {
		rec.Layers = append(rec.Layers, layerRecord{
			Digest: l.digest.String(), DiffID: l.diffID.String(), Chain: chains[i], Size: l.size, MediaType: l.mediaType,
		})
		rec.Size += l.size
	}
	id := p.id.String()
	entry := refEntry{ID: id, RepoDigest: p.repoDigest}
	err := s.updateIndex(ctx, func(idx *index) error {
		idx.Images[id] = rec
		for _, r := range p.refs {
			old, had := idx.Refs[r]
			idx.Refs[r] = entry
			if had && old.ID != id {
				dropIfUntagged(idx, old.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ref := ""
	if len(p.refs) > 0 {
		ref = p.refs[0]
	}
	return rec.image(ref, id, entry), nil
}

// dropIfUntagged removes image id, and the digest references still naming
// it, once no tag names it: a tag moved to a new image, or was removed,
// leaves nothing a user can name the old image by. Its layers are then
// garbage for prune, unless a container still mounts them.
func dropIfUntagged(idx *index, id string) {
	var digestRefs []string
	for r, e := range idx.Refs {
		if e.ID != id {
			continue
		}
		if _, tag := RepoTag(r); tag != "<none>" {
			return
		}
		digestRefs = append(digestRefs, r)
	}
	for _, r := range digestRefs {
		delete(idx.Refs, r)
	}
	delete(idx.Images, id)
}

func (s *Store) unpackAll(ctx context.Context, layers []pendingLayer, chains []string, report func(Progress)) error {
	g, gctx := errgroup.WithContext(ctx)
	done := make([]chan struct{}, len(layers))
	for i := range done {
		done[i] = make(chan struct{})
	}
	slots := make(chan struct{}, maxDownloads)
	for i, l := range layers {
		g.Go(func() error {
			p := Progress{Layer: l.digest.Hex[:12], Total: l.size}
			phase := func(ph string) { p.Phase = ph; report(p) }
			if exists(s.snapshotPath(chains[i])) {
				phase(PhaseExists)
				close(done[i])
				return nil
			}
			var parents []string // topmost first
			for j := i - 1; j >= 0; j-- {
				parents = append(parents, s.snapshotPath(chains[j]))
			}
			for attempt := 0; ; attempt++ {
				err := func() error {
					select {
					case slots <- struct{}{}:
					case <-gctx.Done():
						return gctx.Err()
					}
					defer func() { <-slots }()
					return s.ensureBlob(gctx, l.digest, l.fetch, func(n int64) {
						p.Phase, p.Current = PhaseDownloading, n
						report(p)
					})
				}()
				if err != nil {
					return err
				}
				if i > 0 {
					select {
					case <-done[i-1]:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
				phase(PhaseUnpacking)
				err = s.unpack(gctx, l.digest, l.diffID, chains[i], parents)
				if errors.Is(err, ErrCorrupt) && attempt == 0 {
					// A stored blob went bad (or a resumed download was): fetch it again, once.
					if rerr := os.Remove(s.blobPath(l.digest)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
						return errors.Join(err, rerr)
					}
					continue
				}
				if err != nil {
					return err
				}
				break
			}
			phase(PhaseDone)
			close(done[i])
			return nil
		})
	}
	return g.Wait()
}
