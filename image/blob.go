package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/podrun/podrun/internal/atomicfile"
)

// fetchFunc leaves the complete blob, verified against its digest, in the
// file partial. The file may hold the start of the blob from an earlier,
// interrupted attempt, which the function may resume from.
type fetchFunc func(ctx context.Context, partial string, progress func(done int64)) error

func checkDigest(d v1.Hash) error {
	if d.Algorithm != "sha256" || !isHex64(d.Hex) {
		return fmt.Errorf("unsupported digest %q", d)
	}
	return nil
}

// ensureBlob makes the blob d present in the store, fetching it once even
// when several goroutines or processes want it at the same time.
func (s *Store) ensureBlob(ctx context.Context, d v1.Hash, fetch fetchFunc, progress func(int64)) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	final := s.blobPath(d)
	if exists(final) {
		return nil
	}
	unlock, err := s.lockKey(ctx, "blob-"+d.Hex)
	if err != nil {
		return err
	}
	defer unlock()
	if exists(final) {
		return nil
	}
	partial := filepath.Join(s.root, "tmp", d.Hex+".partial")
	if err := fetch(ctx, partial, progress); err != nil {
		return fmt.Errorf("fetch blob %s: %w", d, err)
	}
	if err := os.Rename(partial, final); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return nil
}

// writeBlob stores a small blob held in memory (a manifest or config).
func (s *Store) writeBlob(d v1.Hash, data []byte) error {
	if err := checkDigest(d); err != nil {
		return err
	}
	if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != d.Hex {
		return fmt.Errorf("blob %s: %w", d, ErrCorrupt)
	}
	if exists(s.blobPath(d)) {
		return nil
	}
	return atomicfile.WriteFile(s.blobPath(d), data, 0o600, false)
}

// copyFetch is a fetchFunc that copies the blob from a local file, verifying it.
func copyFetch(open func() (*os.File, error), d v1.Hash, size int64) fetchFunc {
	return func(ctx context.Context, partial string, progress func(int64)) error {
		in, err := open()
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(partial, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, h, &counter{report: progress}), in)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = verify(h, d, n, size)
		}
		if err != nil {
			os.Remove(partial)
		}
		return err
	}
}

// verify checks a finished hash and length against a descriptor (size < 0: unknown).
func verify(h hash.Hash, d v1.Hash, n, size int64) error {
	if size >= 0 && n != size {
		return fmt.Errorf("blob %s: got %d bytes, want %d: %w", d, n, size, ErrCorrupt)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return fmt.Errorf("blob %s: got sha256:%s: %w", d, got, ErrCorrupt)
	}
	return nil
}

// counter reports the running total of bytes written through it.
type counter struct {
	n      int64
	report func(done int64)
}

func (c *counter) Write(b []byte) (int, error) {
	c.n += int64(len(b))
	if c.report != nil {
		c.report(c.n)
	}
	return len(b), nil
}
