package image

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// secretKeychain holds the credentials of a pod's imagePullSecrets and
// matches them to a repository the way the kubelet's keyring does: keys are
// host, host:port, host/path prefixes or *.domain globs, the most specific
// first, and Docker Hub's legacy key https://index.docker.io/v1/ covers
// docker.io images.
type secretKeychain struct {
	keys  []string // most specific first
	creds map[string]authn.AuthConfig
}

// hubKey is what a Docker Hub key (https://index.docker.io/v1/, index.docker.io) becomes.
const hubKey = "index.docker.io"

func newSecretKeychain(secrets [][]byte) (*secretKeychain, error) {
	kc := &secretKeychain{creds: map[string]authn.AuthConfig{}}
	for i, raw := range secrets {
		var cfg struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("image pull secret %d: %w", i, err)
		}
		if cfg.Auths == nil { // legacy .dockercfg: the map itself
			if err := json.Unmarshal(raw, &cfg.Auths); err != nil {
				return nil, fmt.Errorf("image pull secret %d: %w", i, err)
			}
		}
		for server, auth := range cfg.Auths {
			key, err := credentialKey(server)
			if err != nil {
				return nil, fmt.Errorf("image pull secret %d: %w", i, err)
			}
			if _, dup := kc.creds[key]; !dup { // the first secret listed wins
				kc.creds[key] = auth
				kc.keys = append(kc.keys, key)
			}
		}
	}
	// Reverse order puts longer paths under one host first: quay.io/org before quay.io.
	sort.Sort(sort.Reverse(sort.StringSlice(kc.keys)))
	return kc, nil
}

// credentialKey turns a config key (with or without scheme, /v1/ or /v2/
// suffix) into host[:port][/path].
func credentialKey(server string) (string, error) {
	u, err := parseSchemeless(server)
	if err != nil {
		return "", fmt.Errorf("registry key %q: %w", server, err)
	}
	p := u.Path
	if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v2/") {
		p = p[3:]
	}
	if p == "/" {
		p = ""
	}
	return u.Host + p, nil
}

func parseSchemeless(s string) (*url.URL, error) {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		s = "https://" + s
	}
	return url.Parse(s)
}

// Resolve implements authn.Keychain.
func (kc *secretKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	image := target.String()
	if repo, ok := target.(name.Repository); ok {
		image = repoName(repo)
	}
	for _, key := range kc.keys {
		if keyMatches(key, image) {
			return authn.FromConfig(kc.creds[key]), nil
		}
	}
	if strings.HasPrefix(image, dockerHub+"/") {
		if c, ok := kc.creds[hubKey]; ok {
			return authn.FromConfig(c), nil
		}
	}
	return authn.Anonymous, nil
}

// keyMatches: same port, same number of host labels each matching the key's
// (glob) label, and the image path under the key's path.
func keyMatches(key, image string) bool {
	k, err := parseSchemeless(key)
	if err != nil {
		return false
	}
	t, err := parseSchemeless(image)
	if err != nil {
		return false
	}
	if k.Port() != t.Port() || !strings.HasPrefix(t.Path, k.Path) {
		return false
	}
	kl, tl := strings.Split(k.Hostname(), "."), strings.Split(t.Hostname(), ".")
	if len(kl) != len(tl) {
		return false
	}
	for i := range kl {
		if ok, err := filepath.Match(kl[i], tl[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
