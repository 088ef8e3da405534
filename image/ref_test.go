package image

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const digest = "sha256:0000000000000000000000000000000000000000000000000000000000000001"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                               "docker.io/library/busybox:latest",
		"busybox:1.36":                          "docker.io/library/busybox:1.36",
		"library/busybox":                       "docker.io/library/busybox:latest",
		"docker.io/busybox":                     "docker.io/library/busybox:latest",
		"index.docker.io/library/busybox:1":     "docker.io/library/busybox:1",
		"user/app:v2":                           "docker.io/user/app:v2",
		"registry-1.docker.io/library/busybox":  "registry-1.docker.io/library/busybox:latest",
		"quay.io/org/app":                       "quay.io/org/app:latest",
		"localhost:5000/app:1":                  "localhost:5000/app:1",
		"localhost/app":                         "localhost/app:latest",
		"127.0.0.1:5000/a/b/c:x":                "127.0.0.1:5000/a/b/c:x",
		"[::1]:5000/app":                        "[::1]:5000/app:latest",
		"busybox@" + digest:                     "docker.io/library/busybox@" + digest,
		"busybox:1.36@" + digest:                "docker.io/library/busybox@" + digest,
		"my.registry:8443/team/app:1@" + digest: "my.registry:8443/team/app@" + digest,
	} {
		got, err := Normalize(in)
		if err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "Busybox", "busybox:", "busy box", " busybox", "busybox@sha256:abc", "a//b", "-x", "busybox:.x"} {
		if _, err := Normalize(bad); !errors.Is(err, ErrInvalidName) || Reason(err) != ReasonInvalidImageName {
			t.Errorf("Normalize(%q): %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&Error{Reason: ReasonErrImagePull, Image: "x", Err: errors.New("boom")}, ReasonErrImagePull},
		{fmt.Errorf("start: %w", &Error{Reason: ReasonInvalidImageName, Image: "x", Err: ErrInvalidName}), ReasonInvalidImageName},
		{pullError("B", fmt.Errorf("parse: %w", ErrInvalidName)), ReasonInvalidImageName},
		{pullError("x", errors.New("connection refused")), ReasonErrImagePull},
		{fmt.Errorf("x: %w", ErrInvalidName), ReasonInvalidImageName},
		{errors.New("other"), ""},
		{nil, ""},
	} {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	err := pullError("busybox", errors.New("boom"))
	if want := `failed to pull and unpack image "docker.io/library/busybox:latest": boom`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestSecretKeychain(t *testing.T) {
	cred := func(user string) string { return fmt.Sprintf(`{"username":%q,"password":"p"}`, user) }
	secrets := [][]byte{
		[]byte(`{"auths":{` +
			`"https://index.docker.io/v1/":` + cred("hub") + `,` +
			`"quay.io":` + cred("quay") + `,` +
			`"quay.io/team":` + cred("team") + `,` +
			`"*.example.com":` + cred("glob") + `,` +
			`"reg.local:5000":` + cred("port") + `}}`),
		[]byte(`{"legacy.io":` + cred("legacy") + `,"quay.io":` + cred("second-secret") + `}`),
	}
	kc, err := newSecretKeychain(secrets)
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{
		"busybox":                   "hub",
		"docker.io/user/app":        "hub",
		"quay.io/other/app":         "quay",
		"quay.io/team/app":          "team",
		"quay.io/teamster/app":      "team", // a path prefix, as the kubelet matches it
		"a.example.com/app":         "glob",
		"a.b.example.com/app":       "",
		"example.com/app":           "",
		"reg.local:5000/app":        "port",
		"reg.local:5001/app":        "",
		"legacy.io/app":             "legacy",
		"registry.k8s.io/pause:3.9": "",
	} {
		repo, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(repo.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if a != authn.Anonymous {
			c, _ := a.Authorization()
			got = c.Username
		}
		if got != want {
			t.Errorf("%s: credentials of %q, want %q", ref, got, want)
		}
	}
	if _, err := newSecretKeychain([][]byte{[]byte("{not json")}); err == nil {
		t.Error("a malformed secret was accepted")
	}
}

func TestPickManifest(t *testing.T) {
	desc := func(p string) v1.Descriptor {
		parts := strings.Split(p, "/")
		pl := &v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) > 2 {
			pl.Variant = parts[2]
		}
		return v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: pl, Digest: v1.Hash{Algorithm: "sha256", Hex: p}}
	}
	attest := v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &v1.Platform{OS: "unknown", Architecture: "unknown"}}
	for _, tc := range []struct {
		want  v1.Platform
		index []string
		pick  string // "" for none
	}{
		{v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"linux/arm64/v8", "linux/amd64"}, "linux/amd64"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, []string{"linux/amd64", "linux/arm64"}, "linux/arm64"},
		{v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, []string{"linux/arm/v7", "linux/arm64/v8"}, "linux/arm64/v8"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, []string{"linux/arm/v6", "linux/arm/v7"}, "linux/arm/v7"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, []string{"linux/arm/v5", "linux/arm/v6"}, "linux/arm/v6"},
		{v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, []string{"linux/arm/v7"}, ""},
		{v1.Platform{OS: "linux", Architecture: "amd64"}, []string{"windows/amd64", "linux/s390x"}, ""},
	} {
		ms := []v1.Descriptor{attest}
		for _, p := range tc.index {
			ms = append(ms, desc(p))
		}
		got, err := pickManifest(ms, tc.want, true)
		if tc.pick == "" {
			if err == nil {
				t.Errorf("%s from %v: picked %s, want none", tc.want, tc.index, got.Digest.Hex)
			}
			continue
		}
		if err != nil || got.Digest.Hex != tc.pick {
			t.Errorf("%s from %v: %s, %v; want %s", tc.want, tc.index, got.Digest.Hex, err, tc.pick)
		}
	}
}

// TestLookupSeesEveryWrite: the index cache never serves a replaced index,
// even one rewritten at once with the same size. (Whether the kernel hands
// the new file the old one's inode and timestamp, the case the racy-clean
// rule guards against, is up to the filesystem.)
func TestLookupSeesEveryWrite(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range 100 {
		id := fmt.Sprintf("sha256:%064d", i)
		err := s.updateIndex(ctx, func(idx *index) error {
			clear(idx.Images)
			idx.Images[id] = &record{Layers: []layerRecord{{Chain: "c"}}}
			idx.Refs["docker.io/library/x:1"] = refEntry{ID: id}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		img, err := s.Lookup("x:1")
		if err != nil || img.ID != id {
			t.Fatalf("write %d: Lookup = %v, %v", i, img, err)
		}
	}
	time.Sleep(2 * racyWindow)
	if _, err := s.Lookup("x:1"); err != nil || s.cached == nil {
		t.Errorf("an old index is not cached: %v", err)
	}
}
