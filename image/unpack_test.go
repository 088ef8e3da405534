package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/image/imagetest"

	"github.com/podrun/podrun/internal/testutil"
)

func TestHostileLayersStayInside(t *testing.T) {
	testutil.RequiresRoot(t)
	escape := tempDir(t) // where a successful attack would write
	victim := filepath.Join(escape, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	up := strings.Repeat("../", 12)
	passwd := fileSum(t, "/etc/passwd")

	sym := func(name, target string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}
	}
	hard := func(name, target string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644}
	}
	xattrDir := func(name, key, value string) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr." + key: value}}
	}
	cases := []struct {
		name    string
		hdrs    []*tar.Header
		refused bool // else neutralised: unpacked, but inside the layer, trusted.* xattrs dropped
	}{
		{"dotdot name", []*tar.Header{file(up+escape[1:]+"/dotdot", "x")}, false},
		{"absolute name", []*tar.Header{file(escape+"/abs", "x")}, false},
		{"through absolute symlink", []*tar.Header{sym("esc", escape), file("esc/through-abs", "x")}, false},
		{"through relative symlink", []*tar.Header{sym("esc", up+escape[1:]), file("esc/through-rel", "x")}, false},
		{"dir over absolute symlink", []*tar.Header{sym("esc", escape), dir("esc/newdir/", 0o755)}, false},
		{"hardlink out of the root", []*tar.Header{hard("hl", up+escape[1:]+"/victim")}, true},
		{"hardlink via absolute symlink", []*tar.Header{sym("esc", escape), hard("hl", "esc/victim")}, true},
		{"hardlink to host passwd", []*tar.Header{hard("hl", "/etc/passwd")}, true},
		{"file replacing symlink to passwd", []*tar.Header{sym("pw", "/etc/passwd"), file("pw", "pwned")}, false},
		{"whiteout through symlink", []*tar.Header{sym("esc", escape), file("esc/.wh.victim", "")}, false},
		{"opaque marker through symlink", []*tar.Header{sym("esc", escape), file("esc/.wh..wh..opq", "")}, false},
		{"whiteout of ..", []*tar.Header{dir("d/", 0o755), file("d/.wh..", "")}, true},
		{"trusted.overlay.opaque xattr", []*tar.Header{xattrDir("x/", "trusted.overlay.opaque", "y")}, false},
		{"trusted.overlay.redirect xattr", []*tar.Header{xattrDir("x/", "trusted.overlay.redirect", "/etc")}, false},
		{"symlink loop", []*tar.Header{sym("a", "b"), sym("b", "a"), file("a/x", "x")}, true},
	}
	s := newStore(t)
	host := imagetest.Registry(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, err := imagetest.Image(empty.Image, v1.Config{}, layer(t, tc.hdrs...))
			if err != nil {
				t.Fatal(err)
			}
			ref := host + "/hostile:" + strings.NewReplacer(" ", "-", ".", "-").Replace(tc.name)
			imagetest.Push(t, ref, img, nil)
			got, err := s.Pull(context.Background(), ref, PullOptions{})
			switch {
			case tc.refused && err == nil:
				t.Errorf("unpacked; want refused")
			case !tc.refused && err != nil:
				t.Errorf("refused (%v); want unpacked inside the layer", err)
			}
			if got := entries(t, escape); !slices.Equal(got, []string{"victim"}) {
				t.Errorf("written outside the layer: %s holds %v", escape, got)
			}
			var st unix.Stat_t
			if b, _ := os.ReadFile(victim); string(b) != "untouched" || unix.Stat(victim, &st) != nil || st.Nlink != 1 {
				t.Errorf("victim changed: %q, nlink %d", b, st.Nlink)
			}
			if fileSum(t, "/etc/passwd") != passwd {
				t.Error("/etc/passwd changed")
			}
			if got := entries(t, filepath.Join(s.root, "tmp")); len(got) != 0 {
				t.Errorf("tmp holds %v", got)
			}
			if err == nil {
				// An opaque marker becomes trusted.overlay.opaque, podrun's own doing.
				opaque := slices.ContainsFunc(tc.hdrs, func(h *tar.Header) bool { return strings.HasSuffix(h.Name, ".wh..wh..opq") })
				assertNoTrustedXattrs(t, s.snapshotPath(got.chains[0]), opaque)
			}
		})
	}
}

func fileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// assertNoTrustedXattrs: a layer's own trusted.* attributes never reach
// disk; the one podrun writes is the opaque marker's conversion.
func assertNoTrustedXattrs(t *testing.T, root string, opaqueOK bool) {
	t.Helper()
	filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		buf := make([]byte, 4096)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return nil
		}
		for _, k := range bytes.Split(buf[:n], []byte{0}) {
			if bytes.HasPrefix(k, []byte("trusted.")) && !(opaqueOK && string(k) == "trusted.overlay.opaque") {
				t.Errorf("%s carries %s", p, k)
			}
		}
		return nil
	})
}

func TestChainIDs(t *testing.T) {
	a := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	b := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	got := chainIDs([]v1.Hash{a, b})
	sum := sha256.Sum256([]byte(a.String() + " " + b.String()))
	if got[0] != a.Hex || got[1] != hex.EncodeToString(sum[:]) {
		t.Errorf("chainIDs = %v", got)
	}
}
