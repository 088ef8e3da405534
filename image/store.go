package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/atomicfile"
)

// Store is the image store under one directory:
//
//	lock                  flock: shared while content is added or mounted, exclusive for rm/prune
//	index.json            references and image records, replaced by rename under index.lock
//	blobs/sha256/<hex>    manifests, configs and layer blobs, each committed by rename once verified
//	snapshots/<chain>/    one unpacked layer (overlay whiteout format), keyed by chain ID, committed by rename
//	leases/<key>.json     one per container mount: the layers it uses, so prune keeps them
//	tmp/                  partial downloads (resumed by the next pull) and unpacks in progress
//	locks/                per-blob and per-snapshot lock files
//
// A Store is safe for concurrent use, also by several processes on the same
// directory.
type Store struct {
	root     string
	insecure []string // registries that may be reached over plain HTTP
	keys     keyLocks

	mu      sync.Mutex // guards cached and cacheID
	cached  *index     // never modified once cached: writers build a new one
	cacheID fileID
}

// Option configures a Store.
type Option func(*Store)

// WithInsecureRegistries lets pulls use plain HTTP for these registries
// ("host" or "host:port"). localhost and 127.0.0.1 are always allowed.
func WithInsecureRegistries(hosts ...string) Option {
	return func(s *Store) { s.insecure = append(s.insecure, hosts...) }
}

// Open opens the store in root (<state root>/images), creating it.
func Open(root string, opts ...Option) (*Store, error) {
	if root == "" {
		return nil, errors.New("open image store: empty root")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", root, err)
	}
	// 0700: the unpacked layers hold the images' setuid binaries.
	for _, d := range []string{"", "blobs/sha256", "snapshots", "leases", "tmp", "locks"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	s := &Store{root: root}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Image is an image in the store.
type Image struct {
	Ref        string // normalised, as Kubernetes shows it: docker.io/library/busybox:latest; "" if untagged
	ID         string // sha256:<config digest>
	RepoDigest string // docker.io/library/busybox@sha256:<manifest or index digest>; "" when unknown (archive loads)
	Size       int64  // bytes of the layer blobs, as crictl shows it
	Config     Config

	chains []string // snapshot keys (chain ID hex), bottom layer first
}

// ImageID is what pod status shows as imageID: the repo digest, or the image
// ID when the image never came from a registry (as CRI does).
func (i *Image) ImageID() string {
	if i.RepoDigest != "" {
		return i.RepoDigest
	}
	return i.ID
}

// Config is the part of an image's configuration the runtime uses.
type Config struct {
	Entrypoint   []string          `json:"entrypoint,omitempty"`
	Cmd          []string          `json:"cmd,omitempty"`
	Env          []string          `json:"env,omitempty"`
	WorkingDir   string            `json:"workingDir,omitempty"`
	User         string            `json:"user,omitempty"`
	StopSignal   string            `json:"stopSignal,omitempty"`
	ExposedPorts []string          `json:"exposedPorts,omitempty"` // "8080/tcp", sorted
	Labels       map[string]string `json:"labels,omitempty"`
}

func configFrom(c v1.Config) Config {
	ports := slices.Sorted(maps.Keys(c.ExposedPorts))
	return Config{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir,
		User: c.User, StopSignal: c.StopSignal, ExposedPorts: ports, Labels: c.Labels,
	}
}

func (c Config) clone() Config {
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Cmd = slices.Clone(c.Cmd)
	c.Env = slices.Clone(c.Env)
	c.ExposedPorts = slices.Clone(c.ExposedPorts)
	c.Labels = maps.Clone(c.Labels)
	return c
}

// index is index.json.
type index struct {
	Refs   map[string]refEntry `json:"refs"`   // by normalised reference
	Images map[string]*record  `json:"images"` // by image ID
}

type refEntry struct {
	ID         string `json:"id"`
	RepoDigest string `json:"repoDigest,omitempty"`
}

type record struct {
	Manifest string        `json:"manifest,omitempty"` // platform manifest digest, when the source had one
	Layers   []layerRecord `json:"layers"`
	Size     int64         `json:"size"`
	Config   Config        `json:"config"`
}

type layerRecord struct {
	Digest    string `json:"digest"` // the blob as pulled or loaded
	DiffID    string `json:"diffID"`
	Chain     string `json:"chain"` // chain ID hex: the snapshot directory
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType,omitempty"`
}

func (r *record) image(ref, id string, e refEntry) *Image {
	img := &Image{Ref: ref, ID: id, RepoDigest: e.RepoDigest, Size: r.Size, Config: r.Config.clone()}
	for _, l := range r.Layers {
		img.chains = append(img.chains, l.Chain)
	}
	return img
}

type fileID struct {
	ino, size int64
	mtime     unix.Timespec
}

func (s *Store) indexPath() string { return filepath.Join(s.root, "index.json") }

// readIndex returns the current index, cached by the file's identity: every
// write replaces the file, so an unchanged inode, size and mtime mean an
// unchanged index and a lookup costs one stat. A file read within a moment
// of its mtime is not trusted to the cache (a quick second write could
// reuse the inode with the same size and coarse mtime): git's racy-clean rule.
func (s *Store) readIndex() (*index, error) {
	var st unix.Stat_t
	if err := unix.Stat(s.indexPath(), &st); errors.Is(err, unix.ENOENT) {
		return &index{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("stat %s: %w", s.indexPath(), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached != nil && s.cacheID == statID(&st) {
		return s.cached, nil
	}
	start := time.Now()
	idx, id, err := s.loadIndex()
	if err != nil {
		return nil, err
	}
	if start.Sub(time.Unix(id.mtime.Unix())) > racyWindow {
		s.cached, s.cacheID = idx, id
	} else {
		s.cached = nil
	}
	return idx, nil
}

// racyWindow is well over the kernel's coarse timestamp granularity.
const racyWindow = 50 * time.Millisecond

func statID(st *unix.Stat_t) fileID {
	return fileID{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim}
}

// loadIndex reads index.json and the identity of the file it read.
func (s *Store) loadIndex() (*index, fileID, error) {
	idx := &index{}
	f, err := os.Open(s.indexPath())
	if errors.Is(err, fs.ErrNotExist) {
		return idx, fileID{}, nil
	}
	if err != nil {
		return nil, fileID{}, fmt.Errorf("read image index: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fileID{}, fmt.Errorf("read image index: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fileID{}, fmt.Errorf("read image index: %w", err)
	}
	if err := json.Unmarshal(b, idx); err != nil {
		return nil, fileID{}, fmt.Errorf("read image index %s: %w", s.indexPath(), err)
	}
	return idx, statID(&st), nil
}

// updateIndex applies fn to a fresh copy of the index and commits it by
// rename, under index.lock so that concurrent writers serialise.
func (s *Store) updateIndex(ctx context.Context, fn func(*index) error) error {
	unlock, err := flock(ctx, filepath.Join(s.root, "index.lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	idx, _, err := s.loadIndex()
	if err != nil {
		return err
	}
	if idx.Refs == nil {
		idx.Refs = map[string]refEntry{}
	}
	if idx.Images == nil {
		idx.Images = map[string]*record{}
	}
	if err := fn(idx); err != nil {
		return err
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("encode image index: %w", err)
	}
	return atomicfile.WriteFile(s.indexPath(), b, 0o600, true)
}

// Lookup finds an image by reference (any form Normalize accepts) or by
// image ID (sha256:<hex>). It returns ErrNotFound when absent.
func (s *Store) Lookup(ref string) (*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	if isImageID(ref) {
		if r, ok := idx.Images[ref]; ok {
			return r.image("", ref, refEntry{}), nil
		}
		return nil, fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	norm, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	e, ok := idx.Refs[norm]
	r := idx.Images[e.ID]
	if !ok || r == nil {
		return nil, fmt.Errorf("image %s: %w", norm, ErrNotFound)
	}
	return r.image(norm, e.ID, e), nil
}

// List returns one entry per reference, plus one with Ref "" for each image
// no reference names, sorted by Ref.
func (s *Store) List() ([]*Image, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	var out []*Image
	named := map[string]bool{}
	for ref, e := range idx.Refs {
		if r := idx.Images[e.ID]; r != nil {
			out = append(out, r.image(ref, e.ID, e))
			named[e.ID] = true
		}
	}
	for id, r := range idx.Images {
		if !named[id] {
			out = append(out, r.image("", id, refEntry{}))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ref != out[j].Ref {
			return out[i].Ref < out[j].Ref
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func isImageID(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && isHex64(hex)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Store) blobPath(d v1.Hash) string {
	return filepath.Join(s.root, "blobs", d.Algorithm, d.Hex)
}

func (s *Store) snapshotPath(chain string) string {
	return filepath.Join(s.root, "snapshots", chain)
}

// lockShared holds the store's lock shared: content may be added or
// mounted, but rm and prune wait.
func (s *Store) lockShared(ctx context.Context) (func(), error) {
	return flock(ctx, filepath.Join(s.root, "lock"), unix.LOCK_SH)
}

// lockKey serialises work on one blob or snapshot, in this process and
// across processes.
func (s *Store) lockKey(ctx context.Context, key string) (func(), error) {
	unlockMem, err := s.keys.lock(ctx, key)
	if err != nil {
		return nil, err
	}
	unlockFile, err := flock(ctx, filepath.Join(s.root, "locks", key), unix.LOCK_EX)
	if err != nil {
		unlockMem()
		return nil, err
	}
	return func() { unlockFile(); unlockMem() }, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
