package probes

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestExecHook(t *testing.T) {
	target := Target{Exec: func(ctx context.Context, cmd []string, out, errw io.Writer) (int, error) {
		io.WriteString(out, "hook said "+cmd[len(cmd)-1])
		io.WriteString(errw, "; oops")
		if cmd[len(cmd)-1] == "boom" {
			return -1, errors.New("exec broke")
		}
		if cmd[len(cmd)-1] == "exit 2" {
			return 2, nil
		}
		return 0, nil
	}}
	hook := func(cmd ...string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: cmd}}
	}
	if _, err := RunHook(context.Background(), hook("sh", "-c", "true"), target); err != nil {
		t.Fatalf("exit 0: %v", err)
	}

	_, err := RunHook(context.Background(), hook("sh", "-c", "exit 2"), target)
	var herr *HookError
	if !errors.As(err, &herr) {
		t.Fatalf("exit 2: got %v, want a *HookError", err)
	}
	const want = `Exec lifecycle hook ([sh -c exit 2]) for Container "app" in Pod "web_default(uid-1)" failed - error: command 'sh -c exit 2' exited with 2: ; oops, message: "hook said exit 2; oops"`
	if got := herr.Message("app", "web_default(uid-1)"); got != want {
		t.Fatalf("message\n got %s\nwant %s", got, want)
	}

	if _, err := RunHook(context.Background(), hook("boom"), target); err == nil || !strings.Contains(err.Error(), "exec broke") {
		t.Fatalf("exec error: got %v", err)
	}
}

func TestHTTPHookIgnoresStatus(t *testing.T) {
	got := make(chan *http.Request, 1)
	target, _ := serve(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.WriteHeader(http.StatusInternalServerError)
	})
	h := &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/stop", Port: intstr.FromString("http")}}
	fallback, err := RunHook(context.Background(), h, target)
	if err != nil || fallback != "" {
		t.Fatalf("500 answer: got (%q, %v), want success: hooks ignore the status", fallback, err)
	}
	if ua := (<-got).Header.Get("User-Agent"); ua != "kube-lifecycle/1.34" {
		t.Errorf("User-Agent %q, want kube-lifecycle/1.34", ua)
	}

	// No answer at all is the only failure.
	h.HTTPGet.Port = intstr.FromInt32(int32(closedPort(t)))
	_, err = RunHook(context.Background(), h, target)
	var herr *HookError
	if !errors.As(err, &herr) || !strings.HasPrefix(herr.Message("app", "p"), `HTTP lifecycle hook (/stop) for Container "app" in Pod "p" failed - error: Get "http://127.0.0.1:`) {
		t.Fatalf("refused: got %v", err)
	}
}

func TestHTTPSHookFallsBackToHTTP(t *testing.T) {
	got := make(chan *http.Request, 2)
	target, _ := serve(t, func(w http.ResponseWriter, r *http.Request) { got <- r })
	h := &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "/", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTPS,
		HTTPHeaders: []corev1.HTTPHeader{{Name: "Authorization", Value: "Bearer secret"}},
	}}
	fallback, err := RunHook(context.Background(), h, target)
	if err != nil || !strings.HasPrefix(fallback, "request to HTTPS lifecycle hook 127.0.0.1:") ||
		!strings.HasSuffix(fallback, " got HTTP response, retry with HTTP succeeded") {
		t.Fatalf("got (%q, %v), want the LifecycleHTTPFallback message", fallback, err)
	}
	r := <-got
	if r.Header.Get("Authorization") != "" {
		t.Error("the plain-HTTP retry sent the Authorization header")
	}
	if len(got) != 0 {
		t.Error("more than one plain request reached the server")
	}
}

func TestHTTPSHookAnsweredInTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	target, _ := targetFor(t, srv.URL)
	h := &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTPS}}
	if fallback, err := RunHook(context.Background(), h, target); err != nil || fallback != "" {
		t.Fatalf("got (%q, %v), want success without fallback", fallback, err)
	}
}

func TestSleepHook(t *testing.T) {
	h := &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 0}}
	if _, err := RunHook(context.Background(), h, Target{}); err != nil {
		t.Fatalf("sleep 0: %v", err)
	}

	h.Sleep.Seconds = 3600
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := RunHook(ctx, h, Target{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("sleep 3600 returned early: %v", err)
	default:
	}
	cancel()
	err := recv(t, done, "sleep hook return after cancel")
	var herr *HookError
	const want = `Sleep lifecycle hook (3600) for Container "c" in Pod "p" failed - error: container terminated before sleep hook finished`
	if !errors.As(err, &herr) || herr.Message("c", "p") != want {
		t.Fatalf("cancelled sleep: got %v, want %q", err, want)
	}
}

func TestSleepHookSleeps(t *testing.T) {
	t.Parallel()
	start := time.Now()
	h := &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 1}}
	if _, err := RunHook(context.Background(), h, Target{}); err != nil || time.Since(start) < time.Second {
		t.Fatalf("sleep 1: err %v after %v", err, time.Since(start))
	}
}

func TestTCPSocketHookIsInvalid(t *testing.T) {
	h := &corev1.LifecycleHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}
	_, err := RunHook(context.Background(), h, Target{})
	var herr *HookError
	if !errors.As(err, &herr) || !strings.HasPrefix(herr.Message("c", "p"), "Cannot run handler: invalid handler: ") {
		t.Fatalf("got %v, want the kubelet's invalid handler error", err)
	}
}
