package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
)

// UnixClient speaks HTTP over a unix socket: the daemon's API to its
// clients, and a pod shim's to the daemon.
type UnixClient struct {
	socket  string
	dialErr func(error) error // explains a failed dial
	hc      *http.Client
}

// NewUnixClient returns a client of the server on socket. dialErr, if set,
// turns a failed dial into the error its user should see.
func NewUnixClient(socket string, dialErr func(error) error) *UnixClient {
	c := &UnixClient{socket: socket, dialErr: dialErr}
	c.hc = &http.Client{Transport: &http.Transport{
		DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return c.Dial(ctx) },
		DisableCompression: true,
	}}
	return c
}

// Dial opens a connection to the socket, for protocols that take it over.
func (c *UnixClient) Dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil && c.dialErr != nil {
		err = c.dialErr(err)
	}
	return conn, err
}

// Do sends a request and returns the response of a 2xx answer; any other
// answer is returned as its *apierrors.StatusError.
func (c *UnixClient) Do(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Response, error) {
	u := "http://unix" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is made up; the socket is in the dial error
		}
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, DecodeError(resp.StatusCode, b)
	}
	return resp, nil
}

// CloseIdleConnections closes the connections kept for reuse.
func (c *UnixClient) CloseIdleConnections() { c.hc.CloseIdleConnections() }
