package kubeapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-logr/logr"
	gwebsocket "github.com/gorilla/websocket"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	tunnel "k8s.io/client-go/tools/portforward"
	pfserver "k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"

	"github.com/podrun/podrun/api"
)

// The streaming subresources, as the API server and the kubelet serve
// them: exec over SPDY/3.1 (the kubelet's own server, k8s.io/cri-streaming,
// v1 to v4.channel.k8s.io) and over WebSocket (v5.channel.k8s.io, which
// kubectl 1.30+ tries first, and v4); port-forward over SPDY/3.1
// (portforward.k8s.io) and SPDY tunnelled through WebSocket
// (SPDY/3.1+portforward.k8s.io, kubectl 1.31+). The container side is the
// backend's: podrun's framed exec stream and its port-forward connection.

const (
	// streamIdleTimeout is the kubelet's default streamingConnectionIdleTimeout.
	streamIdleTimeout     = 4 * time.Hour
	streamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

var portForwardProtocols = []string{"portforward.k8s.io"}

func (s *server) serveStream(w http.ResponseWriter, r *http.Request, t target) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		api.WriteError(w, apierrors.NewMethodNotSupported(t.k.GroupResource(), strings.ToLower(r.Method)))
		return
	}
	switch t.sub {
	case "exec", "attach":
		s.remoteCommand(w, r, t)
	case "portforward":
		s.portForward(w, r, t)
	}
}

// execOptions reads the API server's exec query (stdin, stdout, stderr,
// tty: a terminal merges stderr into stdout).
func execOptions(q url.Values) (*remotecommand.Options, error) {
	o := &remotecommand.Options{Stdin: isTrue(q.Get("stdin")), Stdout: isTrue(q.Get("stdout")),
		Stderr: isTrue(q.Get("stderr")), TTY: isTrue(q.Get("tty"))}
	if o.TTY {
		o.Stderr = false
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return nil, apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// remoteCommand serves exec and attach.
func (s *server) remoteCommand(w http.ResponseWriter, r *http.Request, t target) {
	q := r.URL.Query()
	opts, err := execOptions(q)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	// The process starts (or the attachment begins) before the upgrade, so
	// that what is wrong (no such pod or container, not running) is
	// answered as an API error.
	open, cmd := s.b.Exec, q["command"]
	if t.sub == "attach" {
		open, cmd = s.b.Attach, nil
	}
	up, err := open(r.Context(), t.ns, t.name, url.Values{"command": cmd, "container": {q.Get("container")},
		"stdin": {fmt.Sprint(opts.Stdin)}, "stderr": {fmt.Sprint(opts.Stderr)}, "tty": {fmt.Sprint(opts.TTY)}})
	if err != nil {
		api.WriteError(w, err)
		return
	}
	defer up.Close()
	e := &executor{up: up}
	w = clientWatch{ResponseWriter: w, gone: func() { up.Close() }}
	switch {
	case wsstream.IsWebSocketRequest(r):
		s.execWebSocket(w, r, opts, e, cmd)
	case t.sub == "attach":
		remotecommand.ServeAttach(w, r, e, t.name, "", q.Get("container"), opts,
			streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	default:
		remotecommand.ServeExec(w, r, e, t.name, "", q.Get("container"), cmd, opts,
			streamIdleTimeout, streamCreationTimeout, remotecommand.SupportedStreamingProtocols)
	}
}

// Channels of the WebSocket remote command protocols.
const (
	chanStdin = iota
	chanStdout
	chanStderr
	chanError
	chanResize
)

// execWebSocket serves exec and attach over v5.channel.k8s.io and v4: one
// binary message per write, its first byte the channel; the error channel
// carries the metav1.Status that ends the stream; v5 adds the client's
// close of a channel (stdin's end).
func (s *server) execWebSocket(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options, e *executor, cmd []string) {
	use := func(on bool, t wsstream.ChannelType) wsstream.ChannelType {
		if on {
			return t
		}
		return wsstream.IgnoreChannel
	}
	channels := []wsstream.ChannelType{use(opts.Stdin, wsstream.ReadChannel), use(opts.Stdout, wsstream.WriteChannel),
		use(opts.Stderr, wsstream.WriteChannel), wsstream.WriteChannel, wsstream.ReadChannel}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: channels},
		remotecommand.StreamProtocolV4Name: {Binary: true, Channels: channels},
		"v4.base64.channel.k8s.io":         {Binary: false, Channels: channels},
	})
	conn.SetIdleTimeout(streamIdleTimeout)
	// Its reader logs an error when the connection closes under it, as it
	// does at every exec's end (the client waits for the server to close).
	_, streams, err := conn.Open(w, r.WithContext(klog.NewContext(r.Context(), logr.Discard())))
	if err != nil {
		s.cfg.Log.Warn("exec: websocket upgrade", "err", err)
		return
	}
	defer conn.Close()
	var in io.Reader
	var out, errOut io.WriteCloser
	if opts.Stdin {
		in = streams[chanStdin]
	}
	if opts.Stdout {
		out = streams[chanStdout]
	}
	if opts.Stderr {
		errOut = streams[chanStderr]
	}
	var resize chan remotecommand.TerminalSize
	if opts.TTY {
		resize = make(chan remotecommand.TerminalSize)
		go decodeResizes(r.Context(), streams[chanResize], resize)
	}
	err = e.ExecInContainer(r.Context(), "", "", "", cmd, in, out, errOut, opts.TTY, resize, 0)
	b, _ := json.Marshal(execStatus(err))
	_, _ = streams[chanError].Write(b)
}

// decodeResizes reads JSON terminal sizes until the channel ends.
func decodeResizes(ctx context.Context, r io.Reader, ch chan<- remotecommand.TerminalSize) {
	defer close(ch)
	dec := json.NewDecoder(r)
	for {
		var sz remotecommand.TerminalSize
		if dec.Decode(&sz) != nil {
			return
		}
		select {
		case ch <- sz:
		case <-ctx.Done():
			return
		}
	}
}

// execStatus is the Status the API server sends at an exec's end: Success,
// NonZeroExitCode with the code as an ExitCode cause, or InternalError.
func execStatus(err error) metav1.Status {
	st := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	var exit utilexec.CodeExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		st.Status, st.Reason = metav1.StatusFailure, remotecommand.NonZeroExitCodeReason
		st.Message = "command terminated with non-zero exit code: " + exit.Error()
		st.Details = &metav1.StatusDetails{Causes: []metav1.StatusCause{
			{Type: remotecommand.ExitCodeCauseType, Message: fmt.Sprint(exit.Code)}}}
	default:
		st.Status, st.Reason, st.Code = metav1.StatusFailure, metav1.StatusReasonInternalError, http.StatusInternalServerError
		st.Message = "Internal error occurred: error executing command in container: " + err.Error()
	}
	return st
}

// executor runs one exec over the framed stream the backend opened (see
// package api): stdin and resizes in, stdout, stderr and the status out.
type executor struct {
	up io.ReadWriteCloser
}

// ExecInContainer implements remotecommand.Executor. A non-zero exit is a
// utilexec.CodeExitError; closing the stream kills the process (see
// clientWatch).
func (e *executor) ExecInContainer(_ context.Context, _, _, _ string, cmd []string, in io.Reader, out, errOut io.WriteCloser,
	_ bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	fw := api.NewFrameWriter(e.up)
	if in != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf)
				if n > 0 && fw.WriteFrame(api.StreamStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = fw.WriteFrame(api.StreamStdin, nil) // stdin's end
					return
				}
			}
		}()
	}
	if resize != nil {
		go func() {
			for sz := range resize {
				b, _ := json.Marshal(api.TerminalSize{Width: sz.Width, Height: sz.Height})
				if fw.WriteFrame(api.StreamResize, b) != nil {
					return
				}
			}
		}()
	}
	for {
		stream, payload, err := api.ReadFrame(e.up)
		if err != nil {
			return fmt.Errorf("the exec stream ended without an exit status: %w", err)
		}
		var w io.Writer
		switch stream {
		case api.StreamStdout:
			w = out
		case api.StreamStderr:
			w = errOut
		case api.StreamStatus:
			var st api.ExecStatus
			if err := json.Unmarshal(payload, &st); err != nil {
				return fmt.Errorf("exec status: %w", err)
			}
			switch {
			case st.Error != "":
				return errors.New(st.Error)
			case st.ExitCode != 0:
				return utilexec.CodeExitError{Err: fmt.Errorf("error executing command %v, exit code %d", cmd, st.ExitCode), Code: st.ExitCode}
			}
			return nil
		}
		if w != nil {
			if _, err := w.Write(payload); err != nil {
				return fmt.Errorf("exec output: %w", err)
			}
		}
	}
}

// AttachContainer implements remotecommand.Attacher: an attachment ends
// with status 0.
func (e *executor) AttachContainer(ctx context.Context, name, uid, container string, in io.Reader, out, errOut io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	return e.ExecInContainer(ctx, name, uid, container, nil, in, out, errOut, tty, resize, 0)
}

// clientWatch hands the upgraders a connection that calls gone when
// reading from the client fails: the client went away, and the exec'd
// process is killed, as when a kubelet's client goes.
type clientWatch struct {
	http.ResponseWriter
	gone func()
}

// Hijack implements http.Hijacker. Both upgraders read through the
// returned bufio.Reader.
func (c clientWatch) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(c.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReader(readWatch{brw.Reader, c.gone})
	return conn, bufio.NewReadWriter(r, brw.Writer), nil
}

type readWatch struct {
	r    io.Reader
	gone func()
}

func (r readWatch) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.gone()
	}
	return n, err
}

func (s *server) portForward(w http.ResponseWriter, r *http.Request, t target) {
	// Refuse a pod that cannot be forwarded to before the upgrade.
	p, err := s.b.Get(api.Pods, t.ns, t.name)
	if err != nil {
		api.WriteError(w, err)
		return
	}
	uid := string(p.GetUID()) // in the kubelet's error messages
	f := forwarder{b: s.b, ns: t.ns}
	if wsstream.IsWebSocketRequestWithTunnelingProtocol(r) {
		s.tunnelPortForward(w, r, t, f, uid)
		return
	}
	// The older WebSocket protocol (v4.channel.k8s.io) takes ?ports=, as
	// the kubelet's server takes ?port=: a data and an error channel each.
	pr := r.Clone(r.Context())
	q := pr.URL.Query()
	q["port"] = q["ports"]
	pr.URL.RawQuery = q.Encode()
	opts, err := pfserver.NewV4Options(pr)
	if err != nil {
		api.WriteError(w, apierrors.NewBadRequest(err.Error()))
		return
	}
	pfserver.ServePortForward(w, pr, f, t.name, uid, opts, streamIdleTimeout, streamCreationTimeout, portForwardProtocols)
}

// tunnelPortForward serves SPDY/3.1+portforward.k8s.io: the WebSocket
// carries a SPDY connection in binary messages, which the kubelet's SPDY
// server serves as if it had upgraded the request itself.
func (s *server) tunnelPortForward(w http.ResponseWriter, r *http.Request, t target, f forwarder, uid string) {
	spdyReq := r.Clone(r.Context())
	spdyReq.Header.Set(httpstream.HeaderUpgrade, "SPDY/3.1")
	spdyReq.Header.Del(wsstream.WebSocketProtocolHeader)
	const prefix = "SPDY/3.1+"
	for _, p := range strings.Split(r.Header.Get(wsstream.WebSocketProtocolHeader), ",") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(p), prefix); ok {
			spdyReq.Header.Add(httpstream.HeaderProtocolVersion, p)
		}
	}
	tw := &tunnelWriter{w: w, r: r, header: http.Header{}, log: s}
	pfserver.ServePortForward(tw, spdyReq, f, t.name, uid, nil, streamIdleTimeout, streamCreationTimeout, portForwardProtocols)
}

// tunnelWriter is the ResponseWriter the SPDY server upgrades: its 101
// becomes the WebSocket handshake (naming the negotiated protocol with the
// tunnelling prefix) and its hijacked connection is the WebSocket's.
type tunnelWriter struct {
	w      http.ResponseWriter
	r      *http.Request
	header http.Header
	log    *server
	conn   net.Conn
}

func (t *tunnelWriter) Header() http.Header { return t.header }

func (t *tunnelWriter) WriteHeader(code int) {
	if code != http.StatusSwitchingProtocols {
		for k, v := range t.header {
			t.w.Header()[k] = v
		}
		t.w.WriteHeader(code)
		return
	}
	u := gwebsocket.Upgrader{
		Subprotocols: []string{"SPDY/3.1+" + t.header.Get(httpstream.HeaderProtocolVersion)},
		CheckOrigin:  func(*http.Request) bool { return true }, // authenticated already; not a browser API
	}
	ws, err := u.Upgrade(t.w, t.r, nil)
	if err != nil {
		t.log.cfg.Log.Warn("portforward: websocket upgrade", "err", err)
		return
	}
	t.conn = tunnel.NewTunnelingConnection("server", ws)
}

func (t *tunnelWriter) Write(p []byte) (int, error) {
	if t.conn != nil {
		return 0, errors.New("write to an upgraded connection")
	}
	return t.w.Write(p)
}

// Hijack implements http.Hijacker for the SPDY upgrader.
func (t *tunnelWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if t.conn == nil {
		return nil, nil, errors.New("the websocket upgrade failed")
	}
	return t.conn, bufio.NewReadWriter(bufio.NewReader(t.conn), bufio.NewWriter(t.conn)), nil
}

// forwarder connects the SPDY data streams to the backend's connections.
type forwarder struct {
	b  api.Backend
	ns string
}

// PortForward implements portforward.PortForwarder: bytes both ways, the
// client's end of its stream passed on as a half-close, until the pod's
// side ends.
func (f forwarder) PortForward(ctx context.Context, name, _ string, port int32, stream io.ReadWriteCloser) error {
	c, err := f.b.PortForward(ctx, f.ns, name, int(port))
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		_, _ = io.Copy(c, stream)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, err = io.Copy(stream, c)
	return err
}
