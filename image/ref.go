package image

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// dockerHub is how Kubernetes and containerd show Docker Hub; go-containerregistry
// calls it index.docker.io.
const dockerHub = "docker.io"

// Normalize returns ref the way Kubernetes shows it: registry, full repository
// path and a tag or digest, e.g. busybox -> docker.io/library/busybox:latest.
// A reference with both a tag and a digest keeps only the digest, as
// containerd does. Unparseable references wrap ErrInvalidName.
func Normalize(ref string) (string, error) {
	_, norm, err := parseRef(ref)
	return norm, err
}

var (
	pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// A tag's characters; its length (at most 128) is checked apart, as
	// a {0,127} repetition compiles to ~120 KB at every start.
	tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
)

func parseRef(ref string, opts ...name.Option) (name.Reference, string, error) {
	if ref == "" || strings.TrimSpace(ref) != ref {
		return nil, "", fmt.Errorf("couldn't parse image name %q: %w", ref, ErrInvalidName)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't parse image name %q: %w: %v", ref, ErrInvalidName, err)
	}
	// go-containerregistry checks only the characters; Docker's grammar
	// (which the kubelet applies) also shapes each path component and the tag.
	for _, c := range strings.Split(r.Context().RepositoryStr(), "/") {
		if !pathComponent.MatchString(c) {
			return nil, "", fmt.Errorf("couldn't parse image name %q: %w", ref, ErrInvalidName)
		}
	}
	if t, ok := r.(name.Tag); ok && (len(t.TagStr()) > 128 || !tagPattern.MatchString(t.TagStr())) {
		return nil, "", fmt.Errorf("couldn't parse image name %q: %w", ref, ErrInvalidName)
	}
	switch r := r.(type) {
	case name.Digest:
		return r, repoName(r.Context()) + "@" + r.DigestStr(), nil
	case name.Tag:
		return r, repoName(r.Context()) + ":" + r.TagStr(), nil
	}
	return nil, "", fmt.Errorf("couldn't parse image name %q: %w", ref, ErrInvalidName)
}

// repoName is the repository as Kubernetes shows it (docker.io, not index.docker.io).
func repoName(repo name.Repository) string {
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = dockerHub
	}
	return reg + "/" + repo.RepositoryStr()
}

// RepoTag splits a normalised reference into repository and tag, as image
// listings show them: the tag is "<none>" for a digest reference (or "").
func RepoTag(norm string) (repo, tag string) {
	if r, _, ok := strings.Cut(norm, "@"); ok {
		return r, "<none>"
	}
	if i := strings.LastIndexByte(norm, ':'); i > strings.LastIndexByte(norm, '/') {
		return norm[:i], norm[i+1:]
	}
	return norm, "<none>"
}
