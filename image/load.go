package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Load adds the images of a docker save tarball, an OCI layout directory or
// an OCI archive (a tar of a layout) to the store, gzip- or zstd-compressed
// or not. Images are named by their RepoTags (docker save) or their
// io.containerd.image.name / org.opencontainers.image.ref.name annotation
// (OCI); unnamed ones are stored by ID only. Loaded images have no repo
// digest. For an OCI index, this host's platform is taken. The path "-"
// is standard input (an archive, as `docker save x | docker load` has it).
func (s *Store) Load(ctx context.Context, path string, progress func(Progress)) ([]*Image, error) {
	unlock, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if path == "-" {
		return s.loadArchive(ctx, os.Stdin, path, "", progress)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	if !fi.IsDir() {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		defer f.Close()
		return s.loadArchive(ctx, f, path, "", progress)
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer root.Close()
	return s.loadBundle(ctx, dirBundle{root}, path, "", progress)
}

// loadArchive loads the images of an archive read from in (what names it
// in errors); ref, when not "", also names the archive's only image.
func (s *Store) loadArchive(ctx context.Context, in io.Reader, what, ref string, progress func(Progress)) ([]*Image, error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "load-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(tmp)
	tb, err := extract(ctx, in, tmp)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", what, err)
	}
	return s.loadBundle(ctx, tb, what, ref, progress)
}

func (s *Store) loadBundle(ctx context.Context, b bundle, what, ref string, progress func(Progress)) ([]*Image, error) {
	var pending []*pendingImage
	var err error
	if _, err = b.read("manifest.json"); err == nil {
		pending, err = s.dockerSave(b)
		if err != nil {
			return nil, fmt.Errorf("load %s (docker save): %w", what, err)
		}
	} else if _, err = b.read("oci-layout"); err == nil {
		pending, err = s.ociLayout(b)
		if err != nil {
			return nil, fmt.Errorf("load %s (OCI layout): %w", what, err)
		}
	} else {
		return nil, fmt.Errorf("load %s: neither a docker save archive (manifest.json) nor an OCI layout (oci-layout, index.json)", what)
	}
	if ref != "" {
		if len(pending) != 1 {
			return nil, fmt.Errorf("load %s: %d images, want one", what, len(pending))
		}
		if !slices.Contains(pending[0].refs, ref) {
			pending[0].refs = append(pending[0].refs, ref)
		}
	}
	report := syncReport(progress)
	var out []*Image
	for _, p := range pending {
		img, err := s.commit(ctx, p, report)
		if err != nil {
			return out, fmt.Errorf("load %s: %w", what, err)
		}
		out = append(out, img)
	}
	return out, nil
}

// bundle is the content of an archive or layout: files by name.
type bundle interface {
	read(name string) ([]byte, error)
	blob(name string) (blobFile, error)
}

type blobFile struct {
	digest v1.Hash
	size   int64
	magic  []byte // the first bytes, to tell the compression
	fetch  fetchFunc
}

// tarBundle is an archive extracted to flat, numbered files: no name from
// the archive ever becomes a path, so nothing can land outside dir.
type tarBundle struct {
	files map[string]blobFile // by cleaned archive name
	paths map[string]string   // the extracted file of each name
	links map[string]string   // symlinks and hardlinks: name -> name
}

func extract(ctx context.Context, archive io.Reader, dir string) (*tarBundle, error) {
	r, err := decompress(bufio.NewReaderSize(archive, 1<<16))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := &tarBundle{files: map[string]blobFile{}, paths: map[string]string{}, links: map[string]string{}}
	tr := tar.NewReader(r)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		name := cleanName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			p := filepath.Join(dir, fmt.Sprintf("file-%d", n))
			bf, err := saveFile(tr, p)
			if err != nil {
				return nil, err
			}
			b.files[name], b.paths[name] = bf, p
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			b.links[name] = cleanName(target)
		case tar.TypeLink:
			b.links[name] = cleanName(hdr.Linkname)
		}
	}
	for name, p := range b.paths {
		bf := b.files[name]
		bf.fetch = func(_ context.Context, partial string, _ func(int64)) error {
			return os.Rename(p, partial) // hashed while extracted
		}
		b.files[name] = bf
	}
	return b, nil
}

// cleanName maps an archive name to a canonical one inside the archive
// ("../x", "/x" and "./x" all become "x").
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func saveFile(r io.Reader, p string) (blobFile, error) {
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return blobFile{}, err
	}
	h := sha256.New()
	head := &headWriter{}
	n, err := io.Copy(io.MultiWriter(out, h, head), r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return blobFile{}, fmt.Errorf("extract: %w", err)
	}
	return blobFile{digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, size: n, magic: head.b}, nil
}

// headWriter keeps the first bytes written through it.
type headWriter struct{ b []byte }

func (h *headWriter) Write(p []byte) (int, error) {
	if need := 4 - len(h.b); need > 0 {
		h.b = append(h.b, p[:min(need, len(p))]...)
	}
	return len(p), nil
}

func (b *tarBundle) lookup(name string) (string, error) {
	name = cleanName(name)
	for range 16 {
		if _, ok := b.files[name]; ok {
			return name, nil
		}
		t, ok := b.links[name]
		if !ok {
			break
		}
		name = t
	}
	return "", fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

func (b *tarBundle) read(name string) ([]byte, error) {
	n, err := b.lookup(name)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(b.paths[n])
}

func (b *tarBundle) blob(name string) (blobFile, error) {
	n, err := b.lookup(name)
	if err != nil {
		return blobFile{}, err
	}
	return b.files[n], nil
}

// dirBundle is a layout directory; os.Root keeps its symlinks inside it.
type dirBundle struct{ root *os.Root }

func (b dirBundle) read(name string) ([]byte, error) { return b.root.ReadFile(cleanName(name)) }

func (b dirBundle) blob(name string) (blobFile, error) {
	name = cleanName(name)
	f, err := b.root.Open(name)
	if err != nil {
		return blobFile{}, err
	}
	defer f.Close()
	h, head := sha256.New(), &headWriter{}
	n, err := io.Copy(io.MultiWriter(h, head), f)
	if err != nil {
		return blobFile{}, err
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	open := func() (*os.File, error) { return b.root.Open(name) }
	return blobFile{digest: d, size: n, magic: head.b, fetch: copyFetch(open, d, n)}, nil
}

// dockerSave reads a docker save archive's manifest.json.
func (s *Store) dockerSave(b bundle) ([]*pendingImage, error) {
	raw, err := b.read("manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	var out []*pendingImage
	for _, e := range entries {
		cfgRaw, err := b.read(e.Config)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		p, err := s.pendingFromConfig(cfgRaw)
		if err != nil {
			return nil, err
		}
		for _, t := range e.RepoTags {
			norm, err := Normalize(t)
			if err != nil {
				return nil, err
			}
			p.refs = append(p.refs, norm)
		}
		if len(e.Layers) != len(p.config.RootFS.DiffIDs) {
			return nil, fmt.Errorf("image %s lists %d layers, its config %d", p.id, len(e.Layers), len(p.config.RootFS.DiffIDs))
		}
		for i, l := range e.Layers {
			bf, err := b.blob(l)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l, err)
			}
			mt := types.DockerUncompressedLayer
			if bytes.HasPrefix(bf.magic, gzipMagic) {
				mt = types.DockerLayer
			} else if bytes.HasPrefix(bf.magic, zstdMagic) {
				mt = types.OCILayerZStd
			}
			p.layers = append(p.layers, pendingLayer{digest: bf.digest, size: bf.size, mediaType: string(mt), diffID: p.config.RootFS.DiffIDs[i], fetch: bf.fetch})
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *Store) pendingFromConfig(raw []byte) (*pendingImage, error) {
	sum := sha256.Sum256(raw)
	id := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("image config %s: %w", id, err)
	}
	if err := s.writeBlob(id, raw); err != nil {
		return nil, err
	}
	return &pendingImage{id: id, config: cfg}, nil
}

// ociLayout reads an OCI layout's index.json: each entry is an image, or an
// index to pick this host's platform from.
func (s *Store) ociLayout(b bundle) ([]*pendingImage, error) {
	raw, err := b.read("index.json")
	if err != nil {
		return nil, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	var out []*pendingImage
	for _, d := range idx.Manifests {
		p, err := s.ociImage(b, d, 0)
		if err != nil {
			return nil, err
		}
		ref := d.Annotations["io.containerd.image.name"]
		if rn := d.Annotations["org.opencontainers.image.ref.name"]; ref == "" && strings.ContainsAny(rn, "/:@") {
			ref = rn // often only a tag, which names nothing on its own
		}
		if ref != "" {
			norm, err := Normalize(ref)
			if err != nil {
				return nil, err
			}
			p.refs = append(p.refs, norm)
		}
		out = append(out, p)
	}
	return out, nil
}

func (s *Store) ociImage(b bundle, d v1.Descriptor, depth int) (*pendingImage, error) {
	raw, err := readBlob(b, d.Digest)
	if err != nil {
		return nil, err
	}
	if d.MediaType.IsIndex() {
		if depth > 2 {
			return nil, fmt.Errorf("index %s: nested too deep", d.Digest)
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		child, err := pickManifest(idx.Manifests, hostPlatform(), true)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		return s.ociImage(b, child, depth+1)
	}
	if !d.MediaType.IsImage() {
		return nil, fmt.Errorf("%s has media type %q: not an image", d.Digest, d.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if err := s.writeBlob(d.Digest, raw); err != nil {
		return nil, err
	}
	cfgRaw, err := readBlob(b, m.Config.Digest)
	if err != nil {
		return nil, err
	}
	p, err := s.pendingFromConfig(cfgRaw)
	if err != nil {
		return nil, err
	}
	p.manifest = d.Digest
	if len(m.Layers) != len(p.config.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest %s has %d layers, its config %d", d.Digest, len(m.Layers), len(p.config.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		if !isLayer(l.MediaType) {
			return nil, fmt.Errorf("layer %s has media type %q: not a (supported) image layer", l.Digest, l.MediaType)
		}
		bf, err := b.blob(blobName(l.Digest))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if bf.digest != l.Digest {
			return nil, fmt.Errorf("blob %s: content is %s: %w", l.Digest, bf.digest, ErrCorrupt)
		}
		p.layers = append(p.layers, pendingLayer{digest: l.Digest, size: bf.size, mediaType: string(l.MediaType), diffID: p.config.RootFS.DiffIDs[i], fetch: bf.fetch})
	}
	return p, nil
}

func blobName(d v1.Hash) string { return "blobs/" + d.Algorithm + "/" + d.Hex }

// readBlob reads a small blob of a layout and checks it against its digest.
func readBlob(b bundle, d v1.Hash) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	raw, err := b.read(blobName(d))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d, err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != d.Hex {
		return nil, fmt.Errorf("blob %s: %w", d, ErrCorrupt)
	}
	return raw, nil
}

// Import makes a one-layer image named ref from a root filesystem tar
// (gzip- or zstd-compressed or not; "-" reads standard input), like docker
// import. The image has no entrypoint or command of its own.
func (s *Store) Import(ctx context.Context, src, ref string, progress func(Progress)) (*Image, error) {
	_, norm, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	in := os.Stdin
	if src != "-" {
		if in, err = os.Open(src); err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		defer in.Close()
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "import-")
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	defer os.RemoveAll(tmp)
	blobPath := filepath.Join(tmp, "layer")
	bf, err := saveFile(in, blobPath)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	diffID, mt, err := diffIDOf(blobPath, bf)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux", Created: v1.Time{Time: now},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		History: []v1.History{{Created: v1.Time{Time: now}, CreatedBy: "podrun image import", Comment: "imported from " + filepath.Base(src)}},
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	p, err := s.pendingFromConfig(cfgRaw)
	if err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfgRaw)), Digest: p.id},
		Layers: []v1.Descriptor{{MediaType: mt, Size: bf.size, Digest: bf.digest}},
	}
	mRaw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(mRaw)
	p.manifest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if err := s.writeBlob(p.manifest, mRaw); err != nil {
		return nil, err
	}
	p.refs = []string{norm}
	p.layers = []pendingLayer{{digest: bf.digest, size: bf.size, mediaType: string(mt), diffID: diffID,
		fetch: func(_ context.Context, partial string, _ func(int64)) error { return os.Rename(blobPath, partial) }}}
	img, err := s.commit(ctx, p, syncReport(progress))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", src, err)
	}
	return img, nil
}

// diffIDOf is the digest of a layer blob's uncompressed tar, and the blob's media type.
func diffIDOf(path string, bf blobFile) (v1.Hash, types.MediaType, error) {
	switch {
	case bytes.HasPrefix(bf.magic, gzipMagic):
	case bytes.HasPrefix(bf.magic, zstdMagic):
	default:
		return bf.digest, types.OCIUncompressedLayer, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return v1.Hash{}, "", err
	}
	defer f.Close()
	r, err := decompress(bufio.NewReader(f))
	if err != nil {
		return v1.Hash{}, "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return v1.Hash{}, "", fmt.Errorf("decompress: %w", err)
	}
	mt := types.OCILayer
	if bytes.HasPrefix(bf.magic, zstdMagic) {
		mt = types.OCILayerZStd
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, mt, nil
}
