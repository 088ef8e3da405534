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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
)

// hostExec runs q's command on the host behind podrun's exec framing (no
// terminal): what the shim does in a container.
func hostExec(q url.Values) io.ReadWriteCloser {
	client, srv := net.Pipe()
	go func() {
		defer srv.Close()
		fw := api.NewFrameWriter(srv)
		cmd := exec.Command(q["command"][0], q["command"][1:]...)
		cmd.Stdout = fw.Stream(api.StreamStdout)
		if isTrue(q.Get("stderr")) {
			cmd.Stderr = fw.Stream(api.StreamStderr)
		}
		var stdin io.WriteCloser
		if isTrue(q.Get("stdin")) {
			stdin, _ = cmd.StdinPipe()
		}
		status := func(st api.ExecStatus) {
			b, _ := json.Marshal(st)
			_ = fw.WriteFrame(api.StreamStatus, b)
		}
		if err := cmd.Start(); err != nil {
			status(api.ExecStatus{ExitCode: -1, Error: err.Error()})
			return
		}
		go func() {
			for {
				stream, p, err := api.ReadFrame(srv)
				if err != nil {
					_ = cmd.Process.Kill()
					return
				}
				if stream == api.StreamStdin && stdin != nil {
					if len(p) == 0 {
						stdin.Close()
					} else {
						_, _ = stdin.Write(p)
					}
				}
			}
		}()
		var ee *exec.ExitError
		if err := cmd.Wait(); errors.As(err, &ee) {
			status(api.ExecStatus{ExitCode: ee.ExitCode()})
			return
		}
		status(api.ExecStatus{})
	}()
	return client
}

// upgrades records the Upgrade header of every exec and portforward request.
type upgrades struct {
	mu  sync.Mutex
	got []string
}

func (u *upgrades) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/exec") || strings.HasSuffix(r.URL.Path, "/portforward") {
			u.mu.Lock()
			u.got = append(u.got, strings.ToLower(r.Header.Get("Upgrade")))
			u.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (u *upgrades) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	got := u.got
	u.got = nil
	return got
}

const attachedPod = `apiVersion: v1
kind: Pod
metadata:
  name: attached
spec:
  containers:
  - name: app
    image: busybox
    command: [cat]
    stdin: true
    stdinOnce: true
`

// streamModes are kubectl's WebSocket transports (its default from 1.31
// on) and its SPDY fallback.
var streamModes = []struct{ name, env, upgrade string }{
	{"websocket", "true", "websocket"},
	{"spdy", "false", "spdy/3.1"},
}

func (c *testCluster) tryEnv(env []string, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var buf strings.Builder
	cmd := c.cmd(ctx, stdin, args...)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// TestKubectlExecCpPortForward drives kubectl exec, attach, cp and port-forward
// over each transport; the fake runs the commands on the host and
// forwards to the host's loopback.
func TestKubectlExecCpPortForward(t *testing.T) {
	u := &upgrades{}
	forEachKubectlWith(t, u.wrap, func(t *testing.T, c *testCluster) {
		c.run(webPod, "apply", "-f", "-")
		c.run(attachedPod, "apply", "-f", "-")
		for _, m := range streamModes {
			t.Run(m.name, func(t *testing.T) {
				u.take() // what a failed subtest left
				env := []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + m.env, "KUBECTL_PORT_FORWARD_WEBSOCKETS=" + m.env}
				run := func(stdin string, args ...string) string {
					t.Helper()
					out, err := c.tryEnv(env, stdin, args...)
					if err != nil {
						t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
					}
					return out
				}
				out, err := c.tryEnv(env, "", "exec", "web", "-c", "app", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
					t.Errorf("exec exit 3: %v %q", err, out)
				}
				if out := run("", "exec", "web", "-c", "app", "--", "echo", "hello"); out != "hello\n" {
					t.Errorf("exec echo: %q", out)
				}
				if out := run("hello\nworld\n", "exec", "-i", "web", "-c", "app", "--", "tr", "a-z", "A-Z"); out != "HELLO\nWORLD\n" {
					t.Errorf("exec -i: %q", out)
				}
				// The fake's containers run cat for attach.
				if out := run("to the container\n", "attach", "-i", "attached", "-c", "app"); !strings.Contains(out, "to the container\n") {
					t.Errorf("attach -i: %q", out)
				}

				dir := t.TempDir()
				src := filepath.Join(dir, "src")
				if err := os.WriteFile(src, []byte("copied through tar\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				run("", "cp", src, "web:"+dir+"/in-pod", "-c", "app")
				if b, err := os.ReadFile(filepath.Join(dir, "in-pod")); err != nil || string(b) != "copied through tar\n" {
					t.Errorf("cp to the pod: %v %q", err, b)
				}
				run("", "cp", "web:"+dir+"/in-pod", filepath.Join(dir, "back"), "-c", "app")
				if b, err := os.ReadFile(filepath.Join(dir, "back")); err != nil || string(b) != "copied through tar\n" {
					t.Errorf("cp from the pod: %v %q", err, b)
				}

				portForward(t, c, env)
				for _, got := range u.take() {
					if got != m.upgrade {
						t.Errorf("an exec or port-forward upgraded to %q, not %q", got, m.upgrade)
					}
				}
			})
		}
	})
}

var forwarding = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) ->`)

// portForward forwards a local port to an echo server and talks to it
// through two connections.
func portForward(t *testing.T, c *testCluster, env []string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := c.cmd(ctx, "", "port-forward", "pod/web", ":"+port)
	cmd.Env = append(cmd.Env, env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	var local string
	for local == "" && lines.Scan() {
		if m := forwarding.FindStringSubmatch(lines.Text()); m != nil {
			local = m[1]
		}
	}
	if local == "" {
		t.Fatalf("port-forward did not say where it listens: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	for _, msg := range []string{"first connection\n", "second connection\n"} {
		conn, err := net.Dial("tcp", "127.0.0.1:"+local)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, msg)
		_ = conn.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || string(got) != msg {
			t.Errorf("through the port-forward: %v %q, want %q\n%s", err, got, msg, stderr.String())
		}
	}
}

// dialWebSocket opens a WebSocket to the cluster with one subprotocol.
func dialWebSocket(t *testing.T, c *testCluster, path, protocol string) *gwebsocket.Conn {
	t.Helper()
	d := gwebsocket.Dialer{TLSClientConfig: c.srv.Client().Transport.(*http.Transport).TLSClientConfig, Subprotocols: []string{protocol}}
	ws, resp, err := d.Dial("wss"+strings.TrimPrefix(c.srv.URL, "https")+path, http.Header{"Authorization": {"Bearer " + c.creds.Token}})
	if err != nil {
		t.Fatalf("websocket %s: %v %v", path, err, resp)
	}
	if ws.Subprotocol() != protocol {
		t.Fatalf("websocket %s: subprotocol %q", path, ws.Subprotocol())
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// read returns the next message as its channel and payload.
func read(t *testing.T, ws *gwebsocket.Conn) (byte, []byte) {
	t.Helper()
	_, msg, err := ws.ReadMessage()
	if err != nil || len(msg) == 0 {
		t.Fatalf("websocket read: %v %q", err, msg)
	}
	return msg[0], msg[1:]
}

// TestWebSocketV4 speaks v4.channel.k8s.io as clients other than kubectl
// do: exec's status for a non-zero exit, and port-forward's channel pair
// per port of ?ports=.
func TestWebSocketV4(t *testing.T) {
	c := startCluster(t, "")
	c.f.Create(context.Background(), api.Pods, "default", []byte(webPod))

	ws := dialWebSocket(t, c, "/api/v1/namespaces/default/pods/web/exec?container=app&stdout=true&command=sh&command=-c&command=exit+3", "v4.channel.k8s.io")
	for {
		ch, p := read(t, ws)
		if ch != chanError {
			continue
		}
		var st metav1.Status
		if err := json.Unmarshal(p, &st); err != nil || st.Status != metav1.StatusFailure || st.Reason != "NonZeroExitCode" ||
			st.Details == nil || len(st.Details.Causes) != 1 || st.Details.Causes[0].Type != "ExitCode" || st.Details.Causes[0].Message != "3" {
			t.Errorf("exec status: %v %s", err, p)
		}
		break
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_, _ = io.Copy(conn, conn)
			conn.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ws = dialWebSocket(t, c, "/api/v1/namespaces/default/pods/web/portforward?ports="+port, "v4.channel.k8s.io")
	for range 2 { // each channel starts with its port, little-endian
		if ch, p := read(t, ws); ch > 1 || len(p) != 2 || fmt.Sprint(int(p[0])|int(p[1])<<8) != port {
			t.Fatalf("port-forward channel %d starts with %v, want port %s", ch, p, port)
		}
	}
	if err := ws.WriteMessage(gwebsocket.BinaryMessage, append([]byte{0}, "ping\n"...)); err != nil {
		t.Fatal(err)
	}
	if ch, p := read(t, ws); ch != 0 || string(p) != "ping\n" {
		t.Errorf("through the port-forward: channel %d %q", ch, p)
	}
}
