package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
)

// Client is the daemon's side of one shim's socket.
type Client struct {
	sock string
	uc   *api.UnixClient
}

// Connect returns a client of the shim of the pod whose run directory is dir.
func (d Dir) Connect() *Client {
	sock := d.path(sockFile)
	return &Client{sock: sock, uc: api.NewUnixClient(sock, func(err error) error { return fmt.Errorf("pod shim %s: %w", sock, err) })}
}

// Ping reports whether the shim's socket takes connections.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.uc.Dial(ctx)
	if err == nil {
		conn.Close()
	}
	return err
}

// Close closes the connections kept for reuse.
func (c *Client) Close() { c.uc.CloseIdleConnections() }

// Watch calls fn with the shim's state at each change until the stream
// ends: after the final state, or when the shim died.
func (c *Client) Watch(ctx context.Context, fn func(*State)) error {
	resp, err := c.uc.Do(ctx, http.MethodGet, "/watch", nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var st State
		if err := dec.Decode(&st); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pod shim %s: watch: %w", c.sock, err)
		}
		if st.Version > Version {
			return fmt.Errorf("pod shim %s speaks version %d of the daemon-shim contract; this podrun speaks up to %d", c.sock, st.Version, Version)
		}
		fn(&st)
		if st.Final {
			return nil
		}
	}
}

// Delete asks for the pod's termination (nil grace: the pod's own).
func (c *Client) Delete(ctx context.Context, grace *int64) error {
	var q url.Values
	if grace != nil {
		q = url.Values{"grace": {strconv.FormatInt(*grace, 10)}}
	}
	resp, err := c.uc.Do(ctx, http.MethodPost, "/delete", q, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Update hands the shim a new version of the pod.
func (c *Client) Update(ctx context.Context, p *corev1.Pod) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp, err := c.uc.Do(ctx, http.MethodPut, "/pod", nil, b)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Exec opens an exec stream with the shim; the frames pass through.
func (c *Client) Exec(ctx context.Context, query url.Values) (net.Conn, error) {
	return c.upgrade(ctx, "/exec", query)
}

// Attach opens an attach stream with the shim, framed as exec's.
func (c *Client) Attach(ctx context.Context, query url.Values) (net.Conn, error) {
	return c.upgrade(ctx, "/attach", query)
}

func (c *Client) upgrade(ctx context.Context, path string, query url.Values) (net.Conn, error) {
	conn, err := c.uc.Dial(ctx)
	if err != nil {
		return nil, err
	}
	up, err := api.Upgrade(conn, path, query, api.ExecProtocol)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return up, nil
}
