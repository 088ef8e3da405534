package api

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
)

// Streams of an exec connection (see the package documentation).
const (
	StreamStdin  byte = 0
	StreamStdout byte = 1
	StreamStderr byte = 2
	StreamStatus byte = 3
	StreamResize byte = 4
)

// maxFrame bounds a frame's payload, so a corrupt length cannot make a
// reader allocate gigabytes.
const maxFrame = 1 << 20

// ExecStatus ends an exec stream: the process' exit code, or why it could
// not run (then ExitCode is -1).
type ExecStatus struct {
	ExitCode int    `json:"exitCode"`
	Error    string `json:"error,omitempty"`
}

// TerminalSize is a resize of the exec's terminal.
type TerminalSize struct {
	Width  uint16 `json:"width"`
	Height uint16 `json:"height"`
}

// FrameWriter writes frames to one connection from several goroutines.
type FrameWriter struct {
	mu sync.Mutex // serialises whole frames
	w  io.Writer
}

// NewFrameWriter writes frames to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame writes one frame; an empty p on StreamStdin is stdin's end.
// Larger payloads are split.
func (f *FrameWriter) WriteFrame(stream byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		n := min(len(p), maxFrame)
		var hdr [5]byte
		hdr[0] = stream
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		if _, err := f.w.Write(append(hdr[:], p[:n]...)); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// Stream is an io.Writer onto one stream; an empty Write sends nothing.
func (f *FrameWriter) Stream(stream byte) io.Writer { return streamWriter{f, stream} }

type streamWriter struct {
	f      *FrameWriter
	stream byte
}

func (s streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.f.WriteFrame(s.stream, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadFrame reads one frame. io.EOF means the connection ended cleanly
// between frames.
func ReadFrame(r io.Reader) (stream byte, payload []byte, err error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("truncated frame header: %w", err)
		}
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("frame of %d bytes on stream %d: larger than %d", n, hdr[0], maxFrame)
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, fmt.Errorf("truncated frame on stream %d: %w", hdr[0], err)
	}
	return hdr[0], payload, nil
}

// Upgrade sends an upgrade request for path to proto over conn (a fresh
// connection to the API or a shim) and returns the connection that carries
// the stream once the server switched protocols. An error answer is
// returned as its *apierrors.StatusError.
func Upgrade(conn net.Conn, path string, query url.Values, proto string) (net.Conn, error) {
	req, err := http.NewRequest(http.MethodPost, "http://podrun"+path+"?"+query.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", proto)
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return nil, DecodeError(resp.StatusCode, body)
	}
	return &upgraded{Conn: conn, r: br}, nil
}

// upgraded reads what the HTTP reader already buffered first.
type upgraded struct {
	net.Conn
	r *bufio.Reader
}

func (u *upgraded) Read(p []byte) (int, error) { return u.r.Read(p) }

// CloseWrite half-closes a unix or TCP connection.
func (u *upgraded) CloseWrite() error {
	if cw, ok := u.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return u.Conn.Close()
}
