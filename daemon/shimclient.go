package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/api"
)

// shimConn is the daemon's side of one shim's socket.
type shimConn struct {
	sock string
	hc   *http.Client
}

func newShimConn(dir string) *shimConn {
	s := &shimConn{sock: filepath.Join(dir, sockFile)}
	s.hc = &http.Client{Transport: &http.Transport{
		DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return s.dial(ctx) },
		DisableCompression: true,
	}}
	return s
}

func (s *shimConn) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", s.sock)
}

func (s *shimConn) close() { s.hc.CloseIdleConnections() }

func (s *shimConn) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://shim"+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("pod shim %s: %w", s.sock, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, api.DecodeError(resp.StatusCode, b)
	}
	return resp, nil
}

// watch calls fn with the shim's state at each change until the stream
// ends: after the final state, or when the shim died.
func (s *shimConn) watch(ctx context.Context, fn func(*shimState)) error {
	resp, err := s.do(ctx, http.MethodGet, "/watch", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var st shimState
		if err := dec.Decode(&st); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pod shim %s: watch: %w", s.sock, err)
		}
		fn(&st)
		if st.Final {
			return nil
		}
	}
}

func (s *shimConn) delete(ctx context.Context, grace *int64) error {
	path := "/delete"
	if grace != nil {
		path += "?grace=" + strconv.FormatInt(*grace, 10)
	}
	resp, err := s.do(ctx, http.MethodPost, path, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func (s *shimConn) update(ctx context.Context, p *corev1.Pod) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	resp, err := s.do(ctx, http.MethodPut, "/pod", b)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// exec opens an exec stream with the shim; the frames pass through.
func (s *shimConn) exec(ctx context.Context, query url.Values) (net.Conn, error) {
	conn, err := s.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("pod shim %s: %w", s.sock, err)
	}
	up, err := api.Upgrade(conn, "/exec", query, api.ExecProtocol)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return up, nil
}
