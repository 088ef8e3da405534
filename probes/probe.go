package probes

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/podrun/podrun/internal/expansion"
)

// kubeVersion is the kubelet version whose User-Agent podrun's probes and
// hooks send (kube-probe/1.34, kube-lifecycle/1.34).
const kubeVersion = "1.34"

// maxOutput caps what is kept of an exec probe's output and an HTTP probe's
// body, as the kubelet does (10 KiB).
const maxOutput = 10 << 10

// Target is what a probe or hook needs of one container instance.
type Target struct {
	// Host is the pod IP: the default host of httpGet and tcpSocket, and
	// the host of grpc.
	Host string
	// Dial connects from inside the pod's network namespace, so a server
	// bound only to the pod's 127.0.0.1 is reachable. Nil dials from this
	// process's namespace (host network pods, tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Exec runs cmd in the container, writing its stdout and stderr to
	// the two writers (possibly the same one, possibly from several
	// goroutines), and returns its exit code. When ctx ends it must kill the process and everything it
	// started and return.
	Exec func(ctx context.Context, cmd []string, stdout, stderr io.Writer) (exitCode int, err error)
	// Ports are the container's ports, for named probe ports.
	Ports []corev1.ContainerPort
	// Env is the container's env as written in the spec; exec probes expand
	// $(VAR) from its static values (a valueFrom variable expands to "", as
	// in the kubelet).
	Env []corev1.EnvVar
}

func (t Target) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if t.Dial != nil {
		return t.Dial(ctx, network, addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// Run runs probe p once against t within p.timeoutSeconds. A probe that ran
// returns Success, Warning or Failure with its output (the text of the
// kubelet's events); err is a handler error instead: the probe could not be
// run (unresolvable port, exec machinery failure, a body that could not be
// read) and the result says nothing about the container. Zero timeouts mean
// the defaults.
func Run(ctx context.Context, p *corev1.Probe, t Target) (Result, string, error) {
	timeout := seconds(p.TimeoutSeconds, 1)
	switch {
	case p.Exec != nil:
		return runExec(ctx, p.Exec.Command, t, timeout)
	case p.HTTPGet != nil:
		req, err := newRequest(ctx, p.HTTPGet, t, "probe")
		if err != nil {
			return Unknown, "", err
		}
		return doHTTP(newHTTPClient(t, timeout), req)
	case p.TCPSocket != nil:
		return runTCP(ctx, p.TCPSocket, t, timeout)
	case p.GRPC != nil:
		return runGRPC(ctx, p.GRPC, t, timeout)
	}
	return Unknown, "", errors.New("probe has no handler (exec, httpGet, tcpSocket or grpc)")
}

// seconds is a probe duration field, with def for an unset (zero) one.
func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

var errProbeTimeout = errors.New("probe timed out")

func runExec(ctx context.Context, cmd []string, t Target, timeout time.Duration) (Result, string, error) {
	if t.Exec == nil {
		return Unknown, "", errors.New("exec probe: no way to exec into this container")
	}
	cmd = expandCommand(cmd, t.Env)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errProbeTimeout)
	defer cancel()
	var out capped
	code, err := t.Exec(ctx, cmd, &out, &out)
	// A timeout is a Failure (the kubelet's ExecProbeTimeout, GA), whatever
	// the killed process or the exec machinery reported.
	if (err != nil || code != 0) && context.Cause(ctx) == errProbeTimeout {
		return Failure, fmt.Sprintf("command %q timed out", strings.Join(cmd, " ")), nil
	}
	if err != nil {
		return Unknown, "", fmt.Errorf("exec probe %q: %w", strings.Join(cmd, " "), err)
	}
	if code != 0 {
		return Failure, out.String(), nil
	}
	return Success, out.String(), nil
}

// capped keeps the first maxOutput bytes written to it and accepts (and
// drops) the rest, so a chatty command never blocks on a full pipe.
type capped struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := maxOutput - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// expandCommand is the kubelet's ExpandContainerCommandOnlyStatic: $(VAR)
// becomes the static value of VAR, "$$" becomes "$", and a reference to an
// unknown variable is left as written.
func expandCommand(cmd []string, env []corev1.EnvVar) []string {
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	out := make([]string, len(cmd))
	for i, s := range cmd {
		out[i] = expansion.Expand(s, vars)
	}
	return out
}

// resolvePort is the kubelet's ResolveContainerPort, error texts included
// (users search for them).
func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) (int, error) {
	port := -1
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		found := false
		for _, cp := range ports {
			if cp.Name == p.StrVal {
				port, found = int(cp.ContainerPort), true
				break
			}
		}
		if !found {
			// The kubelet's last resort: a number written as a string.
			n, err := strconv.Atoi(p.StrVal)
			if err != nil {
				return -1, err
			}
			port = n
		}
	default:
		return -1, fmt.Errorf("intOrString had no kind: %+v", p)
	}
	if port > 0 && port < 65536 {
		return port, nil
	}
	return port, fmt.Errorf("invalid port number: %v", port)
}

// newRequest builds the kubelet's GET for an httpGet probe or hook; purpose
// is the User-Agent's "kube-<purpose>".
func newRequest(ctx context.Context, g *corev1.HTTPGetAction, t Target, purpose string) (*http.Request, error) {
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := g.Host
	if host == "" {
		host = t.Host
	}
	port, err := resolvePort(g.Port, t.Ports)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(g.Path)
	if err != nil { // the kubelet passes a path it cannot parse along as is
		u = &url.URL{Path: g.Path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("http %s request to %s: %w", purpose, u, err)
	}
	h := make(http.Header, len(g.HTTPHeaders)+2)
	for _, kv := range g.HTTPHeaders {
		h.Add(kv.Name, kv.Value)
	}
	if _, ok := h["User-Agent"]; !ok {
		h.Set("User-Agent", "kube-"+purpose+"/"+kubeVersion)
	}
	if _, ok := h["Accept"]; !ok {
		h.Set("Accept", "*/*")
	} else if h.Get("Accept") == "" { // set empty on purpose: send none
		h.Del("Accept")
	}
	req.Header = h
	req.Host = h.Get("Host")
	return req, nil
}

// newHTTPClient is the kubelet's prober client, dialing through t: no TLS
// verification, no proxy, no keep-alive, no compression, redirects followed
// only on the same host. timeout 0 means none (hooks).
func newHTTPClient(t Target, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         t.dial,
			TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true, // the kubelet configures HTTP/2 too
			DisableKeepAlives:   true,
			DisableCompression:  true,
		},
		CheckRedirect: sameHostRedirects,
	}
}

// sameHostRedirects follows up to 10 redirects on the request's host; a
// redirect elsewhere is not followed and its 3xx becomes the response.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

func doHTTP(client *http.Client, req *http.Request) (Result, string, error) {
	res, err := client.Do(req)
	if err != nil {
		return Failure, err.Error(), nil // refused, timed out, TLS, too many redirects
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxOutput))
	if err != nil {
		// As in the kubelet: a body that breaks off is a handler error, not
		// a failure (and is retried).
		return Failure, "", fmt.Errorf("http probe: reading the response of %s: %w", req.URL, err)
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return Success, string(b), nil
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return Warning, "Probe terminated redirects, Response body: " + string(b), nil
	}
	// The kubelet never shows the body of a failed probe (k8s#99425).
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}

func runTCP(ctx context.Context, a *corev1.TCPSocketAction, t Target, timeout time.Duration) (Result, string, error) {
	port, err := resolvePort(a.Port, t.Ports)
	if err != nil {
		return Unknown, "", err
	}
	host := a.Host
	if host == "" {
		host = t.Host
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := t.dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return Failure, err.Error(), nil
	}
	conn.Close()
	return Success, "", nil
}

// runGRPC is the kubelet's grpc prober: a grpc.health.v1 Check over
// plaintext where any trouble is a Failure. The connection is dialed once,
// up front, through t (the kubelet lets grpc redial until the timeout): a
// refused connection fails at once, with the kubelet's message.
func runGRPC(ctx context.Context, a *corev1.GRPCAction, t Target, timeout time.Duration) (Result, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr := net.JoinHostPort(t.Host, strconv.Itoa(int(a.Port)))
	conn, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Failure, fmt.Sprintf("timeout: failed to connect service %q within %v: %+v", addr, timeout, err), nil
		}
		return Failure, fmt.Sprintf("error: failed to connect service at %q: %+v", addr, err), nil
	}
	var handedOver atomic.Bool
	defer func() {
		if !handedOver.Swap(true) {
			conn.Close()
		}
	}()
	creds := insecure.NewCredentials()
	if a.Mode != nil && *a.Mode == corev1.GRPCProbeModeTLS { // newer than 1.34; cheap to honour
		creds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("kube-probe/"+kubeVersion),
		grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			if handedOver.Swap(true) {
				return nil, errors.New("the probe's connection was already used")
			}
			return conn, nil
		}))
	if err != nil {
		return Unknown, "", fmt.Errorf("grpc probe of %s: %w", addr, err)
	}
	defer cc.Close()
	service := ""
	if a.Service != nil {
		service = *a.Service
	}
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			switch st.Code() {
			case codes.Unimplemented:
				return Failure, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): " + st.Message(), nil
			case codes.DeadlineExceeded:
				return Failure, fmt.Sprintf("timeout: health rpc did not complete within %v", timeout), nil
			}
		}
		return Failure, fmt.Sprintf("error: health rpc probe failed: %+v", err), nil
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus().String()), nil
	}
	return Success, "service healthy", nil
}
