package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Daemon is a local Docker Engine API: dockerd, or podman's compatible
// service, from which images are loaded by name as `kind load
// docker-image` does. podrun makes the few calls it needs itself: the
// Go client of the API would cost every podrun process (and every
// container's runc init, the same binary) its sixty packages' init.
type Daemon struct {
	Host string // unix:///run/podman/podman.sock, tcp://…
	http *http.Client

	mu        sync.Mutex
	base      url.URL // scheme, host and path prefix of every call
	versioned bool    // base ends in /v<API version>
}

// daemonSockets are where a Docker Engine API listens when DOCKER_HOST is
// not set, in the order they are tried: dockerd's, then rootful and
// rootless podman's (podman system service, podman.socket).
func daemonSockets() []string {
	socks := []string{"/var/run/docker.sock", "/run/podman/podman.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		socks = append(socks, filepath.Join(d, "podman", "podman.sock"))
	}
	return socks
}

// OpenDaemon connects to the Docker Engine API that host names ("": the
// environment's DOCKER_HOST, else the first of dockerd's and podman's
// sockets that exists). DOCKER_API_VERSION, DOCKER_TLS_VERIFY,
// DOCKER_TLS and DOCKER_CERT_PATH are read as the docker CLI reads them.
func OpenDaemon(host string) (*Daemon, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		for _, s := range daemonSockets() {
			if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
				host = "unix://" + s
				break
			}
		}
	}
	if host == "" {
		return nil, fmt.Errorf("no Docker Engine API found: DOCKER_HOST is not set and none of %v exists (start dockerd, or podman system service)", daemonSockets())
	}
	d, err := newDaemon(host)
	if err != nil {
		return nil, fmt.Errorf("docker API %s: %w", host, err)
	}
	return d, nil
}

func newDaemon(host string) (*Daemon, error) {
	d := &Daemon{Host: host}
	tr := &http.Transport{}
	scheme, addr, _ := strings.Cut(host, "://")
	switch scheme {
	case "unix":
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}
		d.base = url.URL{Scheme: "http", Host: "docker"}
	case "tcp", "http", "https":
		u, err := url.Parse(host)
		if err != nil {
			return nil, err
		}
		tr.Proxy = http.ProxyFromEnvironment
		d.base = url.URL{Scheme: "http", Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}
		if scheme != "http" {
			if tr.TLSClientConfig, err = tlsFromEnv(); err != nil {
				return nil, err
			}
		}
		if scheme == "https" && tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if tr.TLSClientConfig != nil {
			d.base.Scheme = "https"
		}
	default:
		return nil, fmt.Errorf("scheme %q is not supported: give unix://, tcp://, http:// or https://", scheme)
	}
	if v := strings.TrimPrefix(strings.TrimSpace(os.Getenv("DOCKER_API_VERSION")), "v"); v != "" {
		if err := checkVersion(v); err != nil {
			return nil, fmt.Errorf("DOCKER_API_VERSION: %w", err)
		}
		d.base.Path += "/v" + v
		d.versioned = true
	}
	d.http = &http.Client{Transport: tr}
	return d, nil
}

func checkVersion(v string) error {
	major, minor, _ := strings.Cut(v, ".")
	_, errMajor := strconv.Atoi(major)
	_, errMinor := strconv.Atoi(minor)
	if errMajor != nil || errMinor != nil {
		return fmt.Errorf("API version %q is not MAJOR.MINOR", v)
	}
	return nil
}

// negotiate puts the daemon's own API version, as its /_ping reports it,
// in front of every path, as the docker CLI does: dockerd has deprecated
// unversioned paths, which remain for a daemon that reports no version.
// Both calls keep their form in every version (later ones only add
// optional query parameters), so the daemon's newest is as good as any.
func (d *Daemon) negotiate(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.versioned {
		return nil
	}
	u := d.base
	u.Path += "/_ping"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if v := resp.Header.Get("API-Version"); v != "" && resp.StatusCode/100 == 2 {
		if err := checkVersion(v); err != nil {
			return fmt.Errorf("/_ping: %w", err)
		}
		d.base.Path += "/v" + v
	}
	d.versioned = true
	return nil
}

// tlsFromEnv is the TLS of a tcp:// host as the docker CLI sets it up: on
// when DOCKER_TLS_VERIFY or DOCKER_TLS is non-empty, or (as the Go
// client's FromEnv, which podrun used before) DOCKER_CERT_PATH is set. The
// files are in DOCKER_CERT_PATH, else DOCKER_CONFIG, else ~/.docker: the
// daemon's certificate is checked against ca.pem only when
// DOCKER_TLS_VERIFY is non-empty; cert.pem and key.pem, when both exist,
// are the client's certificate. nil: no TLS.
func tlsFromEnv() (*tls.Config, error) {
	dir := os.Getenv("DOCKER_CERT_PATH")
	verify := os.Getenv("DOCKER_TLS_VERIFY") != ""
	if dir == "" && !verify && os.Getenv("DOCKER_TLS") == "" {
		return nil, nil
	}
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("TLS certificates: %w", err)
		}
		dir = filepath.Join(home, ".docker")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !verify}
	if verify {
		ca := filepath.Join(dir, "ca.pem")
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("DOCKER_TLS_VERIFY: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("DOCKER_TLS_VERIFY: %s holds no PEM certificate", ca)
		}
	}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_, errCert := os.Stat(cert)
	_, errKey := os.Stat(key)
	if errCert == nil && errKey == nil {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate %s: %w", cert, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Close closes the connections kept for reuse.
func (d *Daemon) Close() error {
	d.http.CloseIdleConnections()
	return nil
}

// statusError is a call the daemon answered with other than 2xx.
type statusError struct {
	code int
	msg  string // the daemon's JSON "message", else the HTTP status
}

func (e *statusError) Error() string { return e.msg }

// get calls GET path?query and returns the response when it is a 2xx.
func (d *Daemon) get(ctx context.Context, path string, query url.Values) (*http.Response, error) {
	if err := d.negotiate(ctx); err != nil {
		return nil, err
	}
	u := d.base
	u.Path += path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var body struct{ Message string }
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) != nil || body.Message == "" {
		body.Message = resp.Status
	}
	return nil, &statusError{code: resp.StatusCode, msg: body.Message}
}

// failed is the error of a call about ref: a 404 says the daemon has no
// such image, whatever words the daemon uses for it.
func (d *Daemon) failed(call, ref string, err error) error {
	if se := (*statusError)(nil); errors.As(err, &se) && se.code == http.StatusNotFound {
		return fmt.Errorf("docker API %s: no such image %s", d.Host, ref)
	}
	return fmt.Errorf("docker API %s: %s %s: %w", d.Host, call, ref, err)
}

// ImageID is the ID the daemon gives the image ref names now: it changes
// when the tag is moved to a new build.
func (d *Daemon) ImageID(ctx context.Context, ref string) (string, error) {
	resp, err := d.get(ctx, "/images/"+ref+"/json", nil)
	if err != nil {
		return "", d.failed("inspect", ref, err)
	}
	defer resp.Body.Close()
	var img struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil {
		return "", d.failed("inspect", ref, err)
	}
	if img.ID == "" {
		return "", d.failed("inspect", ref, errors.New("the answer has no Id"))
	}
	return img.ID, nil
}

// LoadFromDaemon loads the image ref names in the daemon: the daemon's
// `docker save` stream goes straight into the store, one pass, the layers
// as the daemon keeps them. The image is named ref (normalised) besides the
// names the archive gives it: podman calls a local build
// localhost/NAME:TAG, a pod asks for NAME:TAG.
func (s *Store) LoadFromDaemon(ctx context.Context, d *Daemon, ref string, progress func(Progress)) (*Image, error) {
	norm, err := Normalize(ref)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lockShared(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	resp, err := d.get(ctx, "/images/get", url.Values{"names": {ref}})
	if err != nil {
		return nil, d.failed("save", ref, err)
	}
	defer resp.Body.Close()
	imgs, err := s.loadArchive(ctx, resp.Body, ref+" from "+d.Host, norm, progress)
	if err != nil {
		return nil, err
	}
	if len(imgs) != 1 {
		return nil, errors.New("load " + ref + ": the daemon sent no image")
	}
	imgs[0].Ref = norm
	return imgs[0], nil
}
