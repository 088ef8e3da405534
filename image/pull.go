package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PullOptions are the per-pull inputs.
type PullOptions struct {
	// Secrets are the raw .dockerconfigjson (or legacy .dockercfg) payloads
	// of the pod's image pull secrets. They are tried before the node's
	// credentials ($DOCKER_CONFIG, ~/.docker/config.json).
	Secrets [][]byte
	// Progress, if set, receives layer updates, one call at a time.
	Progress func(Progress)
}

// Pull fetches ref from its registry for this host's platform and unpacks
// it. When the registry's manifest digest for ref is the one already stored,
// nothing else is fetched. Errors are *Error with Reason ErrImagePull or
// InvalidImageName.
func (s *Store) Pull(ctx context.Context, ref string, o PullOptions) (*Image, error) {
	img, err := s.pull(ctx, ref, o)
	return img, pullError(ref, err)
}

func (s *Store) pull(ctx context.Context, ref string, o PullOptions) (*Image, error) {
	r, norm, err := parseRef(ref)
	if err != nil {
		return nil, err
	}
	if listed(s.insecure, r.Context().RegistryStr()) {
		r, _, _ = parseRef(ref, name.Insecure)
	}
	unlock, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()

	repo := r.Context()
	tr, err := s.transport(ctx, repo, o.Secrets)
	if err != nil {
		return nil, err
	}
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(tr)}

	// Already here? A HEAD of the manifest is all the Always policy costs then.
	if cur, err := s.Lookup(norm); err == nil && cur.RepoDigest != "" && s.complete(cur) {
		if d, err := remote.Head(r, ropts...); err == nil && repoName(repo)+"@"+d.Digest.String() == cur.RepoDigest {
			return cur, nil
		}
	}

	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return nil, err
	}
	repoDigest := repoName(repo) + "@" + desc.Digest.String()
	mdesc, raw := desc.Descriptor, desc.Manifest
	if desc.MediaType.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("parse index %s: %w", desc.Digest, err)
		}
		child, err := pickManifest(idx.Manifests, hostPlatform(), true)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		if err := s.writeBlob(desc.Digest, raw); err != nil {
			return nil, err
		}
		cd, err := remote.Get(repo.Digest(child.Digest.String()), ropts...)
		if err != nil {
			return nil, err
		}
		mdesc, raw = cd.Descriptor, cd.Manifest
	}
	if !mdesc.MediaType.IsImage() {
		return nil, fmt.Errorf("manifest %s has media type %q: not an image podrun can run", mdesc.Digest, mdesc.MediaType)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", mdesc.Digest, err)
	}
	if err := s.writeBlob(mdesc.Digest, raw); err != nil {
		return nil, err
	}

	src := &registrySource{repo: repo, client: &http.Client{Transport: tr, CheckRedirect: noRedirectToPrivate}}
	var cfg *v1.ConfigFile
	for attempt := 0; cfg == nil; attempt++ {
		if err := s.ensureBlob(ctx, m.Config.Digest, src.fetch(m.Config.Digest, m.Config.Size), nil); err != nil {
			return nil, err
		}
		cfg, err = readConfig(s.blobPath(m.Config.Digest), m.Config.Digest)
		if errors.Is(err, ErrCorrupt) && attempt == 0 {
			os.Remove(s.blobPath(m.Config.Digest)) // damaged on disk since: fetch it again
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	p := &pendingImage{refs: []string{norm}, repoDigest: repoDigest, id: m.Config.Digest, manifest: mdesc.Digest, config: cfg}
	if repoDigest != norm {
		p.refs = append(p.refs, repoDigest)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest %s has %d layers, its config %d", mdesc.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		if !isLayer(l.MediaType) {
			return nil, fmt.Errorf("layer %s has media type %q: not a (supported) image layer", l.Digest, l.MediaType)
		}
		p.layers = append(p.layers, pendingLayer{
			digest: l.Digest, size: l.Size, mediaType: string(l.MediaType), diffID: cfg.RootFS.DiffIDs[i],
			fetch: src.fetch(l.Digest, l.Size),
		})
	}
	return s.commit(ctx, p, syncReport(o.Progress))
}

// complete reports whether every layer of img is unpacked.
func (s *Store) complete(img *Image) bool {
	for _, c := range img.chains {
		if !exists(s.snapshotPath(c)) {
			return false
		}
	}
	return len(img.chains) > 0
}

// readConfig reads and parses a stored config blob, checking it against d.
func readConfig(path string, d v1.Hash) (*v1.ConfigFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != d.Hex {
		return nil, fmt.Errorf("image config %s: %w", d, ErrCorrupt)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse image config %s: %w", d, err)
	}
	return cfg, nil
}

func isLayer(mt types.MediaType) bool {
	switch mt {
	case types.DockerLayer, types.DockerUncompressedLayer, types.DockerForeignLayer,
		types.OCILayer, types.OCILayerZStd, types.OCIUncompressedLayer,
		types.OCIRestrictedLayer, types.OCIUncompressedRestrictedLayer:
		return true
	}
	return false
}

// transport authenticates once per pull (pod secrets first, then the node's
// docker config) and is shared by the manifest requests and the blob
// downloads. Plain HTTP is refused except to loopback and configured
// insecure registries: go-containerregistry would also fall back to it for
// private (RFC 1918) and .local addresses.
func (s *Store) transport(ctx context.Context, repo name.Repository, secrets [][]byte) (http.RoundTripper, error) {
	kc, err := newSecretKeychain(secrets)
	if err != nil {
		return nil, err
	}
	auth, err := authn.Resolve(ctx, authn.NewMultiKeychain(kc, authn.DefaultKeychain), repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repoName(repo), err)
	}
	base := transport.NewRetry(httpGuard{inner: remote.DefaultTransport, insecure: s.insecure},
		transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests,
			http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
	tr, err := transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", repo.RegistryStr(), err)
	}
	return tr, nil
}

type httpGuard struct {
	inner    http.RoundTripper
	insecure []string
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allowHTTP(req.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: only loopback registries and --insecure-registry ones may use it", req.URL.Host)
	}
	return g.inner.RoundTrip(req)
}

func (g httpGuard) allowHTTP(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if ip, err := netip.ParseAddr(h); h == "localhost" || err == nil && ip.IsLoopback() {
		return true
	}
	return listed(g.insecure, host)
}

// listed reports whether registry host[:port] is in list, as itself or by its bare host.
func listed(list []string, host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	return slices.Contains(list, host) || slices.Contains(list, h)
}

// noRedirectToPrivate keeps a registry from redirecting a blob download to
// an internal address (cloud metadata and the like).
func noRedirectToPrivate(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	from, to := via[0].URL.Hostname(), req.URL.Hostname()
	if ip, err := netip.ParseAddr(to); err == nil && to != from &&
		(ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
		return fmt.Errorf("registry redirected to private address %s: refused", to)
	}
	return nil
}

// registrySource downloads blobs of one repository.
type registrySource struct {
	repo   name.Repository
	client *http.Client
}

// fetch downloads blob d, resuming a partial file from an interrupted
// attempt with a Range request (starting over if the registry ignores it).
// The partial file stays on a transfer error so that the next pull resumes;
// it is removed when the whole blob does not match d.
func (r *registrySource) fetch(d v1.Hash, size int64) fetchFunc {
	if size <= 0 {
		size = -1 // unknown: no resuming
	}
	return func(ctx context.Context, partial string, progress func(int64)) (retErr error) {
		f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer func() {
			if err := f.Close(); retErr == nil {
				retErr = err
			}
		}()
		h := sha256.New()
		have, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		if size < 0 || have > size {
			if err := restart(f, h); err != nil {
				return err
			}
			have = 0
		}
		if size < 0 || have < size {
			if have, err = r.download(ctx, d, f, h, have, size, progress); err != nil {
				return err
			}
		}
		if err := verify(h, d, have, size); err != nil {
			os.Remove(partial)
			return err
		}
		return nil
	}
}

// download appends blob d from byte have on to f and h and returns the
// length reached.
func (r *registrySource) download(ctx context.Context, d v1.Hash, f *os.File, h hash.Hash, have, size int64, progress func(int64)) (int64, error) {
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", r.repo.Scheme(), r.repo.RegistryStr(), r.repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return have, err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", have, size-1))
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return have, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0 &&
		strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", have)):
	case resp.StatusCode == http.StatusOK:
		if have > 0 { // the registry ignored the Range
			if err := restart(f, h); err != nil {
				return 0, err
			}
			have = 0
		}
	default:
		if err := transport.CheckError(resp, http.StatusOK); err != nil {
			return have, err
		}
		return have, fmt.Errorf("GET %s: unexpected %s", u, resp.Status)
	}
	var body io.Reader = resp.Body
	if size > 0 {
		body = io.LimitReader(body, size-have+1) // one byte more shows an overlong blob
	}
	n, err := io.Copy(io.MultiWriter(f, h, &counter{n: have, report: progress}), body)
	return have + n, err
}

func restart(f *os.File, h hash.Hash) error {
	h.Reset()
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch p.Architecture {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// pickManifest chooses the image for want among an index's manifests: the
// exact variant first, then older compatible ones (arm v7 runs v6 and v5;
// arm64 images often leave v8 out). A child without a platform counts as
// linux/amd64, as in go-containerregistry, when assumeAMD64 is set.
func pickManifest(ms []v1.Descriptor, want v1.Platform, assumeAMD64 bool) (v1.Descriptor, error) {
	best, bestRank := -1, 0
	var seen []string
	for i, d := range ms {
		p := d.Platform
		if p == nil {
			if !assumeAMD64 {
				continue
			}
			p = &v1.Platform{OS: "linux", Architecture: "amd64"}
		}
		seen = append(seen, p.String())
		if p.OS != want.OS || p.Architecture != want.Architecture || !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		rank := variantRank(want, p.Variant)
		if rank >= 0 && (best < 0 || rank < bestRank) {
			best, bestRank = i, rank
		}
	}
	if best < 0 {
		return v1.Descriptor{}, fmt.Errorf("no image for platform %s (the index has: %s)", want.String(), strings.Join(seen, ", "))
	}
	return ms[best], nil
}

// variantRank is 0 for the best match, higher for acceptable ones, -1 for none.
func variantRank(want v1.Platform, have string) int {
	switch want.Architecture {
	case "arm64":
		if have == "" || have == "v8" {
			return 0
		}
	case "amd64":
		if have == "" || have == "v1" {
			return 0
		}
	case "arm":
		order := []string{"v8", "v7", "v6", "v5"}
		from := slices.Index(order, want.Variant)
		if i := slices.Index(order, have); from >= 0 && i >= from {
			return i - from
		}
		if have == "" {
			return len(order)
		}
	default:
		if have == want.Variant {
			return 0
		}
		if have == "" {
			return 1
		}
	}
	return -1
}
