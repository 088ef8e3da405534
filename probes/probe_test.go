package probes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// serve starts an HTTP server on 127.0.0.1 and returns a target for it, with
// its port named "http".
func serve(t testing.TB, h http.HandlerFunc) (Target, int) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return targetFor(t, srv.URL)
}

func targetFor(t testing.TB, rawURL string) (Target, int) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return Target{
		Host:  u.Hostname(),
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}},
	}, port
}

func httpProbe(path string, port intstr.IntOrString) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}}
}

func TestHTTPProbeStatusCodes(t *testing.T) {
	target, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
		fmt.Fprintf(w, "body of %d", code)
	})
	for _, tc := range []struct {
		code int
		want Result
		out  string
	}{
		{200, Success, "body of 200"},
		{204, Success, ""},
		{304, Warning, "Probe terminated redirects, Response body: "},
		{399, Warning, "Probe terminated redirects, Response body: body of 399"},
		{400, Failure, "HTTP probe failed with statuscode: 400"},
		{404, Failure, "HTTP probe failed with statuscode: 404"},
		{503, Failure, "HTTP probe failed with statuscode: 503"},
	} {
		res, out, err := Run(context.Background(), httpProbe("/"+strconv.Itoa(tc.code), intstr.FromString("http")), target)
		if err != nil || res != tc.want || out != tc.out {
			t.Errorf("status %d: got (%v, %q, %v), want (%v, %q, nil)", tc.code, res, out, err, tc.want, tc.out)
		}
	}
}

func TestHTTPProbeRedirects(t *testing.T) {
	var hits sync.Map // path -> count
	var srvURL string
	target, port := serve(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := hits.LoadOrStore(r.URL.Path, new(int))
		*n.(*int)++
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/other":
			// The same server under another host name: not followed.
			http.Redirect(w, r, strings.Replace(srvURL, "127.0.0.1", "localhost", 1)+"/ok", http.StatusMovedPermanently)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/ok":
			io.WriteString(w, "fine")
		}
	})
	srvURL = fmt.Sprintf("http://127.0.0.1:%d", port)

	res, out, err := Run(context.Background(), httpProbe("/same", intstr.FromInt32(int32(port))), target)
	if err != nil || res != Success || out != "fine" {
		t.Errorf("same-host redirect: got (%v, %q, %v), want (Success, \"fine\", nil)", res, out, err)
	}

	res, out, err = Run(context.Background(), httpProbe("/other", intstr.FromInt32(int32(port))), target)
	if err != nil || res != Warning || !strings.HasPrefix(out, "Probe terminated redirects") {
		t.Errorf("off-host redirect: got (%v, %q, %v), want a Warning", res, out, err)
	}

	hits.Delete("/ok")
	res, out, err = Run(context.Background(), httpProbe("/loop", intstr.FromInt32(int32(port))), target)
	if err != nil || res != Failure || !strings.Contains(out, "stopped after 10 redirects") {
		t.Errorf("redirect loop: got (%v, %q, %v), want a Failure after 10 redirects", res, out, err)
	}
	if n, _ := hits.Load("/loop"); *n.(*int) != 10 {
		t.Errorf("redirect loop: %d requests, want 10", *n.(*int))
	}
	if _, followed := hits.Load("/ok"); followed {
		t.Error("off-host redirect was followed")
	}
}

func TestHTTPProbeRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	target, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { got <- r })

	p := httpProbe("/healthz?x=1", intstr.FromString("http"))
	if res, out, err := Run(context.Background(), p, target); res != Success || err != nil {
		t.Fatalf("got (%v, %q, %v)", res, out, err)
	}
	r := <-got
	for h, want := range map[string]string{
		"User-Agent":      "kube-probe/1.34",
		"Accept":          "*/*",
		"Accept-Encoding": "", // compression off
	} {
		if r.Header.Get(h) != want {
			t.Errorf("%s = %q, want %q", h, r.Header.Get(h), want)
		}
	}
	if r.URL.RawQuery != "x=1" || r.URL.Path != "/healthz" {
		t.Errorf("request URI %q, want /healthz?x=1", r.RequestURI)
	}
	if !r.Close {
		t.Error("probe asked for keep-alive; it must not")
	}

	p.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{
		{Name: "user-agent", Value: "mine"},
		{Name: "Accept", Value: ""},
		{Name: "Host", Value: "example.test"},
		{Name: "X-Custom", Value: "a"},
		{Name: "X-Custom", Value: "b"},
	}
	if res, out, err := Run(context.Background(), p, target); res != Success || err != nil {
		t.Fatalf("got (%v, %q, %v)", res, out, err)
	}
	r = <-got
	if ua := r.Header.Get("User-Agent"); ua != "mine" {
		t.Errorf("User-Agent %q, want the user's", ua)
	}
	if _, ok := r.Header["Accept"]; ok {
		t.Errorf("Accept %q sent; an empty user Accept must remove it", r.Header.Get("Accept"))
	}
	if r.Host != "example.test" {
		t.Errorf("Host %q, want the Host header's example.test", r.Host)
	}
	if v := r.Header.Values("X-Custom"); len(v) != 2 {
		t.Errorf("X-Custom %v, want both values", v)
	}
}

func TestHTTPProbeBodyCap(t *testing.T) {
	target, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 3*maxOutput))
	})
	res, out, err := Run(context.Background(), httpProbe("/", intstr.FromString("http")), target)
	if res != Success || err != nil || len(out) != 10240 {
		t.Fatalf("got (%v, %d bytes, %v), want Success with 10240 bytes", res, len(out), err)
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	target, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	start := time.Now()
	res, out, err := Run(context.Background(), httpProbe("/", intstr.FromString("http")), target)
	took := time.Since(start)
	if res != Failure || err != nil || !strings.Contains(out, "Client.Timeout exceeded") {
		t.Fatalf("got (%v, %q, %v), want a timeout Failure", res, out, err)
	}
	if took < time.Second || took > 3*time.Second {
		t.Fatalf("took %v, want timeoutSeconds (1s)", took)
	}
}

func TestHTTPSProbeSkipsVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "tls ok")
	}))
	t.Cleanup(srv.Close)
	target, _ := targetFor(t, srv.URL)
	p := httpProbe("/", intstr.FromString("http"))
	p.HTTPGet.Scheme = corev1.URISchemeHTTPS
	if res, out, err := Run(context.Background(), p, target); res != Success || out != "tls ok" || err != nil {
		t.Fatalf("got (%v, %q, %v), want Success over unverified TLS", res, out, err)
	}
}

// TestProbesDialThroughTarget stands in for the pod's netns: the pod IP is
// unroutable from here, and only the target's Dial reaches the server.
func TestProbesDialThroughTarget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	real := srv.Listener.Addr().String()
	var mu sync.Mutex
	var dialed []string
	target := Target{
		Host: "192.0.2.1", // TEST-NET-1: never routed
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dialed = append(dialed, network+" "+addr)
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, real)
		},
	}
	for _, p := range []*corev1.Probe{
		httpProbe("/", intstr.FromInt32(8080)),
		tcpProbe(intstr.FromInt32(8080)),
	} {
		if res, out, err := Run(context.Background(), p, target); res != Success || err != nil {
			t.Errorf("got (%v, %q, %v), want Success through the target's Dial", res, out, err)
		}
	}
	if want := []string{"tcp 192.0.2.1:8080", "tcp 192.0.2.1:8080"}; fmt.Sprint(dialed) != fmt.Sprint(want) {
		t.Errorf("dialed %v, want %v", dialed, want)
	}
}

func TestProbePorts(t *testing.T) {
	ports := []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}}
	for _, tc := range []struct {
		port intstr.IntOrString
		want int
		err  string
	}{
		{intstr.FromInt32(80), 80, ""},
		{intstr.FromString("metrics"), 9090, ""},
		{intstr.FromString("8081"), 8081, ""}, // a number written as a string
		{intstr.FromString("nope"), -1, `strconv.Atoi: parsing "nope": invalid syntax`},
		{intstr.FromInt32(0), 0, "invalid port number: 0"},
		{intstr.FromInt32(70000), 70000, "invalid port number: 70000"},
	} {
		got, err := resolvePort(tc.port, ports)
		if got != tc.want || fmt.Sprint(err) != map[bool]string{true: "<nil>", false: tc.err}[tc.err == ""] {
			t.Errorf("port %v: got (%d, %v), want (%d, %q)", tc.port.String(), got, err, tc.want, tc.err)
		}
	}
	// An unresolvable port is a handler error, not a failure.
	res, _, err := Run(context.Background(), httpProbe("/", intstr.FromString("nope")), Target{Host: "127.0.0.1", Ports: ports})
	if res != Unknown || err == nil {
		t.Fatalf("unknown named port: got (%v, %v), want (Unknown, an error)", res, err)
	}
}

// listen returns a port on 127.0.0.1 that accepts connections and closes
// them at once.
func listen(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// closedPort returns a port on 127.0.0.1 that nobody listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tcpProbe(p intstr.IntOrString) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: p}}}
}

func TestTCPProbe(t *testing.T) {
	t.Parallel()
	target := Target{Host: "127.0.0.1", Ports: []corev1.ContainerPort{{Name: "app", ContainerPort: int32(listen(t))}}}
	if res, out, err := Run(context.Background(), tcpProbe(intstr.FromString("app")), target); res != Success || out != "" || err != nil {
		t.Errorf("listening: got (%v, %q, %v), want Success", res, out, err)
	}

	res, out, err := Run(context.Background(), tcpProbe(intstr.FromInt32(int32(closedPort(t)))), target)
	if res != Failure || err != nil || !strings.Contains(out, "connection refused") {
		t.Errorf("closed port: got (%v, %q, %v), want a refused Failure", res, out, err)
	}

	// A black hole: the connect never completes.
	hole := Target{Host: "192.0.2.1", Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("dial tcp 192.0.2.1:1: %w", ctx.Err())
	}}
	start := time.Now()
	res, out, err = Run(context.Background(), tcpProbe(intstr.FromInt32(1)), hole)
	if took := time.Since(start); res != Failure || err != nil || took < time.Second || took > 3*time.Second {
		t.Errorf("black hole: got (%v, %q, %v) after %v, want a Failure after 1s", res, out, err, took)
	}
}

// slowHealth answers Check only when its caller gives up.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
}

func (slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func grpcServer(t *testing.T, register func(*grpc.Server)) (Target, int32, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	agents := make(chan string, 16)
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		agents <- strings.Join(md.Get("user-agent"), ",")
		return h(ctx, req)
	}))
	if register != nil {
		register(srv)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return Target{Host: "127.0.0.1"}, int32(ln.Addr().(*net.TCPAddr).Port), agents
}

func grpcProbe(port int32, service string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: port, Service: &service}}}
}

func TestGRPCProbe(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	target, port, agents := grpcServer(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) })

	res, out, err := Run(context.Background(), grpcProbe(port, ""), target)
	if res != Success || out != "service healthy" || err != nil {
		t.Errorf("serving: got (%v, %q, %v)", res, out, err)
	}
	if ua := <-agents; !strings.HasPrefix(ua, "kube-probe/1.34") {
		t.Errorf("user agent %q, want kube-probe/1.34 first", ua)
	}
	res, out, err = Run(context.Background(), grpcProbe(port, "down"), target)
	if res != Failure || out != `service unhealthy (responded with "NOT_SERVING")` || err != nil {
		t.Errorf("not serving: got (%v, %q, %v)", res, out, err)
	}
	res, out, err = Run(context.Background(), grpcProbe(port, "unknown"), target)
	if res != Failure || !strings.HasPrefix(out, "error: health rpc probe failed: ") || !strings.Contains(out, "NotFound") || err != nil {
		t.Errorf("unknown service: got (%v, %q, %v)", res, out, err)
	}
}

func TestGRPCProbeFailures(t *testing.T) {
	t.Parallel()
	target, port, _ := grpcServer(t, nil) // no health service
	res, out, err := Run(context.Background(), grpcProbe(port, ""), target)
	if res != Failure || err != nil || !strings.HasPrefix(out, "error: this server does not implement the grpc health protocol") {
		t.Errorf("unimplemented: got (%v, %q, %v), want a Failure", res, out, err)
	}

	slow, slowPort, _ := grpcServer(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, slowHealth{}) })
	start := time.Now()
	res, out, err = Run(context.Background(), grpcProbe(slowPort, ""), slow)
	if took := time.Since(start); res != Failure || err != nil || out != "timeout: health rpc did not complete within 1s" || took > 3*time.Second {
		t.Errorf("slow: got (%v, %q, %v) after %v, want a timeout Failure after 1s", res, out, err, took)
	}

	res, out, err = Run(context.Background(), grpcProbe(int32(closedPort(t)), ""), target)
	if res != Failure || err != nil || !strings.HasPrefix(out, "error: failed to connect service at") || !strings.Contains(out, "refused") {
		t.Errorf("refused: got (%v, %q, %v), want a Failure", res, out, err)
	}
}

func execProbe(cmd ...string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}}
}

func TestExecProbe(t *testing.T) {
	t.Parallel()
	var gotCmd []string
	target := Target{
		Env: []corev1.EnvVar{
			{Name: "NAME", Value: "world"},
			{Name: "SECRET", ValueFrom: &corev1.EnvVarSource{}}, // not static: ""
		},
		Exec: func(ctx context.Context, cmd []string, out, _ io.Writer) (int, error) {
			gotCmd = cmd
			if _, ok := ctx.Deadline(); !ok {
				return 0, errors.New("no deadline on the probe's exec")
			}
			switch cmd[0] {
			case "exit":
				code, _ := strconv.Atoi(cmd[1])
				io.WriteString(out, "exit output")
				return code, nil
			case "chatty":
				for range 5 {
					out.Write([]byte(strings.Repeat("y", 4096)))
				}
				return 0, nil
			case "hang":
				<-ctx.Done()
				return 137, nil // killed
			}
			return -1, errors.New("exec machinery broke")
		},
	}
	for _, tc := range []struct {
		cmd  []string
		want Result
		out  string
		err  bool
	}{
		{[]string{"exit", "0"}, Success, "exit output", false},
		{[]string{"exit", "3"}, Failure, "exit output", false},
		{[]string{"broken"}, Unknown, "", true},
		{[]string{"hang", "10"}, Failure, `command "hang 10" timed out`, false},
	} {
		start := time.Now()
		res, out, err := Run(context.Background(), execProbe(tc.cmd...), target)
		if res != tc.want || out != tc.out || (err != nil) != tc.err {
			t.Errorf("%v: got (%v, %q, %v), want (%v, %q, error %v)", tc.cmd, res, out, err, tc.want, tc.out, tc.err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%v took %v; the timeout is 1s", tc.cmd, took)
		}
	}

	if res, out, _ := Run(context.Background(), execProbe("chatty"), target); res != Success || len(out) != 10240 {
		t.Errorf("chatty: got (%v, %d bytes), want Success with 10240 bytes", res, len(out))
	}

	Run(context.Background(), execProbe("exit", "0", "$(NAME)", "$(SECRET)", "$(UNSET)", "$$(NAME)", "$$$(NAME)", "a$b", "$(", "$"), target)
	want := []string{"exit", "0", "world", "", "$(UNSET)", "$(NAME)", "$world", "a$b", "$(", "$"}
	if fmt.Sprint(gotCmd) != fmt.Sprint(want) {
		t.Errorf("expanded to %q, want %q", gotCmd, want)
	}
}

func TestRunWithoutHandler(t *testing.T) {
	if res, _, err := Run(context.Background(), &corev1.Probe{}, Target{}); res != Unknown || err == nil {
		t.Fatalf("got (%v, %v), want a handler error", res, err)
	}
}
