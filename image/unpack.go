package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/archive"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// chainIDs returns the OCI chain IDs (hex) of a stack of diff IDs, bottom first:
// a snapshot's content depends on every layer below it, so that is its key.
func chainIDs(diffIDs []v1.Hash) []string {
	out := make([]string, len(diffIDs))
	prev := ""
	for i, d := range diffIDs {
		if i == 0 {
			prev = d.String()
		} else {
			sum := sha256.Sum256([]byte(prev + " " + d.String()))
			prev = "sha256:" + hex.EncodeToString(sum[:])
		}
		out[i] = prev[len("sha256:"):]
	}
	return out
}

// unpack applies the layer blob d onto a new snapshot for chain, parents
// being the snapshots below it (topmost first). The blob's digest and the
// uncompressed stream's diff ID are both verified, the stream drained to its
// end, before the snapshot is committed by rename; a mismatch is ErrCorrupt.
func (s *Store) unpack(ctx context.Context, d, diffID v1.Hash, chain string, parents []string) (retErr error) {
	unlock, err := s.lockKey(ctx, "snapshot-"+chain)
	if err != nil {
		return err
	}
	defer unlock()
	final := s.snapshotPath(chain)
	if exists(final) {
		return nil
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	defer f.Close()
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "tmp"), "unpack-")
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	defer func() {
		if retErr != nil {
			os.RemoveAll(tmp)
		}
	}()

	blobHash := sha256.New()
	compressed := bufio.NewReaderSize(io.TeeReader(f, blobHash), 1<<16)
	tarStream, err := decompress(compressed)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, corruptIfMismatch(err, f, blobHash, d))
	}
	diffHash := sha256.New()
	tr := io.TeeReader(tarStream, diffHash)
	_, err = archive.Apply(ctx, tmp, tr,
		archive.WithConvertWhiteout(archive.OverlayConvertWhiteout),
		archive.WithParents(parents))
	if err == nil {
		// The tar end marker may come before the end of the stream: hash it all.
		_, err = io.Copy(io.Discard, tr)
	}
	if err != nil {
		tarStream.Close()
		return fmt.Errorf("unpack layer %s: %w", d, corruptIfMismatch(err, f, blobHash, d))
	}
	if err := tarStream.Close(); err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	if _, err := io.Copy(io.Discard, compressed); err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	if got := hex.EncodeToString(blobHash.Sum(nil)); got != d.Hex {
		return fmt.Errorf("unpack layer %s: blob is sha256:%s: %w", d, got, ErrCorrupt)
	}
	if got := hex.EncodeToString(diffHash.Sum(nil)); got != diffID.Hex {
		return fmt.Errorf("unpack layer %s: uncompressed content is sha256:%s, the image config says %s: %w", d, got, diffID, ErrCorrupt)
	}
	// The snapshot's own directory is never the merged root (upper is), but keep it traversable.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("unpack layer %s: %w", d, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("commit snapshot %s: %w", chain, err)
	}
	return nil
}

// corruptIfMismatch tells a damaged blob (whose digest no longer matches,
// typically failing as a gzip or tar error) from a well-formed but bad layer.
func corruptIfMismatch(err error, f *os.File, h hash.Hash, d v1.Hash) error {
	if _, cerr := io.Copy(h, f); cerr != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != d.Hex {
		return fmt.Errorf("%w (%v)", ErrCorrupt, err)
	}
	return err
}

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress detects gzip and zstd by their magic numbers; anything else is
// taken as a plain tar (docker save's layer.tar).
func decompress(r *bufio.Reader) (io.ReadCloser, error) {
	head, _ := r.Peek(4)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return gzip.NewReader(r)
	case bytes.HasPrefix(head, zstdMagic):
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}
