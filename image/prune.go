package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Remove removes an image reference, or with an image ID (sha256:<hex>, or
// a unique prefix of the hex of at least 4 digits) the image and every
// reference to it. An image no tag names any more goes with its digest
// references, as with docker rmi; then the layers no image or container
// uses are deleted (see Prune). It returns what it did, docker-style
// ("Untagged: ...", "Deleted: sha256:...").
func (s *Store) Remove(ctx context.Context, ref string) ([]string, error) {
	var did []string
	err := s.updateIndex(ctx, func(idx *index) error {
		refs, images := maps.Clone(idx.Refs), maps.Clone(idx.Images)
		if id, ok, err := matchID(idx, ref); err != nil {
			return err
		} else if ok {
			for r, e := range idx.Refs {
				if e.ID == id {
					delete(idx.Refs, r)
				}
			}
			delete(idx.Images, id)
		} else {
			norm, err := Normalize(ref)
			if err != nil {
				return err
			}
			e, ok := idx.Refs[norm]
			if !ok {
				return fmt.Errorf("image %s: %w", norm, ErrNotFound)
			}
			delete(idx.Refs, norm)
			dropIfUntagged(idx, e.ID)
		}
		did = did[:0]
		for _, r := range slices.Sorted(maps.Keys(refs)) {
			if _, still := idx.Refs[r]; !still {
				did = append(did, "Untagged: "+r)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(images)) {
			if _, still := idx.Images[id]; !still {
				did = append(did, "Deleted: "+id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.Prune(ctx); err != nil {
		return did, err
	}
	return did, nil
}

// matchID resolves an image ID or unique ID prefix.
func matchID(idx *index, ref string) (string, bool, error) {
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) < 4 || len(hex) > 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", false, nil
	}
	var found []string
	for id := range idx.Images {
		if strings.HasPrefix(id, "sha256:"+hex) {
			found = append(found, id)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], true, nil
	case len(found) > 1:
		return "", false, fmt.Errorf("image ID prefix %s is ambiguous (%d images)", hex, len(found))
	case strings.HasPrefix(ref, "sha256:"):
		return "", false, fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	return "", false, nil // a name that merely looks like hex
}

// Pruned reports what Prune deleted.
type Pruned struct {
	Snapshots, Blobs int
	Bytes            int64
}

// Prune deletes the unpacked layers and blobs that no image references and
// no mounted container leases, plus leftovers of interrupted pulls. It
// takes the store's lock exclusively, so it waits for pulls and mounts in
// progress, in this process or another.
func (s *Store) Prune(ctx context.Context) (Pruned, error) {
	var out Pruned
	unlock, err := flock(ctx, filepath.Join(s.root, "lock"), unix.LOCK_EX)
	if err != nil {
		return out, err
	}
	defer unlock()
	idx, _, err := s.loadIndex()
	if err != nil {
		return out, err
	}
	chains, blobs := map[string]bool{}, map[string]bool{}
	for id, r := range idx.Images {
		blobs[strings.TrimPrefix(id, "sha256:")] = true
		blobs[strings.TrimPrefix(r.Manifest, "sha256:")] = true
		for _, l := range r.Layers {
			chains[l.Chain] = true
			blobs[strings.TrimPrefix(l.Digest, "sha256:")] = true
		}
	}
	for _, e := range idx.Refs {
		if _, d, ok := strings.Cut(e.RepoDigest, "@sha256:"); ok {
			blobs[d] = true
		}
	}
	if err := s.leasedChains(chains); err != nil {
		return out, err
	}

	var errs []error
	remove := func(dir string, keep map[string]bool, count *int) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, e := range ents {
			if keep[e.Name()] {
				continue
			}
			p := filepath.Join(dir, e.Name())
			n := du(p)
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
				continue
			}
			out.Bytes += n
			if count != nil {
				*count++
			}
		}
	}
	remove(filepath.Join(s.root, "snapshots"), chains, &out.Snapshots)
	remove(filepath.Join(s.root, "blobs", "sha256"), blobs, &out.Blobs)
	remove(filepath.Join(s.root, "tmp"), nil, nil)                               // nobody is pulling: we hold the lock
	remove(filepath.Join(s.root, "locks"), nil, nil)                             // nor waiting on a key
	if tmps, err := filepath.Glob(filepath.Join(s.root, ".tmp-*")); err == nil { // index writes cut short
		for _, p := range tmps {
			os.Remove(p)
		}
	}
	return out, errors.Join(errs...)
}

// leasedChains adds the layers of live container mounts to chains and
// deletes the leases whose container directory is gone (a crash before Unmount).
func (s *Store) leasedChains(chains map[string]bool) error {
	dir := filepath.Join(s.root, "leases")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read leases: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read lease: %w", err)
		}
		var l lease
		if err := json.Unmarshal(b, &l); err != nil || l.Dir == "" {
			os.Remove(p) // torn by a crash in Mount: that mount never happened
			continue
		}
		if !exists(l.Dir) {
			os.Remove(p)
			continue
		}
		for _, c := range l.Chains {
			chains[c] = true
		}
	}
	return nil
}

// du is the disk usage of a path, in bytes of file content, each inode
// counted once (busybox's applets are one file).
func du(path string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}
