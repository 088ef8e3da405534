package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/moby/client"
)

// Daemon is a local Docker Engine API: dockerd, or podman's compatible
// service, from which images are loaded by name as `kind load
// docker-image` does.
type Daemon struct {
	Host string // unix:///run/podman/podman.sock, tcp://…
	cl   *client.Client
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
// environment's DOCKER_HOST, DOCKER_API_VERSION and DOCKER_CERT_PATH /
// DOCKER_TLS_VERIFY as the docker CLI reads them, else the first of
// dockerd's and podman's sockets that exists).
func OpenDaemon(host string) (*Daemon, error) {
	opts := []client.Opt{client.FromEnv}
	if host == "" {
		host = os.Getenv(client.EnvOverrideHost)
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
	opts = append(opts, client.WithHost(host))
	cl, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker API %s: %w", host, err)
	}
	return &Daemon{Host: host, cl: cl}, nil
}

// Close closes the connections kept for reuse.
func (d *Daemon) Close() error { return d.cl.Close() }

// ImageID is the ID the daemon gives the image ref names now: it changes
// when the tag is moved to a new build.
func (d *Daemon) ImageID(ctx context.Context, ref string) (string, error) {
	res, err := d.cl.ImageInspect(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("docker API %s: inspect %s: %w", d.Host, ref, err)
	}
	return res.ID, nil
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
	rc, err := d.cl.ImageSave(ctx, []string{ref})
	if err != nil {
		return nil, fmt.Errorf("docker API %s: save %s: %w", d.Host, ref, err)
	}
	defer rc.Close()
	imgs, err := s.loadArchive(ctx, rc, ref+" from "+d.Host, norm, progress)
	if err != nil {
		return nil, err
	}
	if len(imgs) != 1 {
		return nil, errors.New("load " + ref + ": the daemon sent no image")
	}
	imgs[0].Ref = norm
	return imgs[0], nil
}
