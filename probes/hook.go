package probes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// HookError is a lifecycle handler that failed. Message gives the text of
// the kubelet's FailedPostStartHook / FailedPreStopHook event.
type HookError struct {
	handler string // "Exec", "HTTP" or "Sleep"; "" for a handler that cannot run
	detail  string // the command, path or seconds the kubelet's message names
	output  string // what an exec hook printed
	Err     error
}

func (e *HookError) Error() string {
	if e.handler == "" {
		return e.Err.Error()
	}
	msg := fmt.Sprintf("%s lifecycle hook (%s) failed: %v", e.handler, e.detail, e.Err)
	if e.handler == "Exec" {
		msg += fmt.Sprintf(", output: %q", e.output)
	}
	return msg
}

func (e *HookError) Unwrap() error { return e.Err }

// Message is the kubelet's event message for this failure of the hook of
// container in pod (the kubelet writes pod as name_namespace(uid)).
func (e *HookError) Message(container, pod string) string {
	switch e.handler {
	case "":
		return "Cannot run handler: " + e.Err.Error()
	case "Exec":
		return fmt.Sprintf("Exec lifecycle hook (%s) for Container %q in Pod %q failed - error: %v, message: %q",
			e.detail, container, pod, e.Err, e.output)
	}
	return fmt.Sprintf("%s lifecycle hook (%s) for Container %q in Pod %q failed - error: %v",
		e.handler, e.detail, container, pod, e.Err)
}

// RunHook runs a postStart or preStop handler until it is done or ctx ends;
// it has no timeout of its own. A failure is a *HookError. An exec hook
// fails on a non-zero exit; an httpGet hook only when no response came (the
// status code is ignored); a sleep hook when ctx ends first; a tcpSocket
// hook always ("invalid handler", as in the kubelet). fallback is set when
// an HTTPS hook was answered in plain HTTP and the retry over http
// succeeded: the message of the kubelet's LifecycleHTTPFallback event.
func RunHook(ctx context.Context, h *corev1.LifecycleHandler, t Target) (fallback string, err error) {
	switch {
	case h.Exec != nil:
		return "", runExecHook(ctx, h.Exec.Command, t)
	case h.HTTPGet != nil:
		fallback, err := runHTTPHook(ctx, h.HTTPGet, t)
		if err != nil {
			return "", &HookError{handler: "HTTP", detail: h.HTTPGet.Path, Err: err}
		}
		return fallback, nil
	case h.Sleep != nil:
		timer := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer timer.Stop()
		select {
		case <-timer.C:
			return "", nil
		case <-ctx.Done():
			return "", &HookError{handler: "Sleep", detail: strconv.FormatInt(h.Sleep.Seconds, 10),
				Err: errors.New("container terminated before sleep hook finished")}
		}
	}
	return "", &HookError{Err: fmt.Errorf("invalid handler: %v", h)}
}

func runExecHook(ctx context.Context, cmd []string, t Target) error {
	fail := func(err error, out string) error {
		return &HookError{handler: "Exec", detail: fmt.Sprint(cmd), output: out, Err: err}
	}
	if t.Exec == nil {
		return fail(errors.New("no way to exec into this container"), "")
	}
	// As the CRI client's ExecSync: the error names the exit code and
	// stderr; the output is stdout followed by stderr.
	var stdout, stderr capped
	code, err := t.Exec(ctx, cmd, &stdout, &stderr)
	if err != nil {
		return fail(err, stdout.String()+stderr.String())
	}
	if code != 0 {
		return fail(fmt.Errorf("command '%s' exited with %d: %s", strings.Join(cmd, " "), code, stderr.String()),
			stdout.String()+stderr.String())
	}
	return nil
}

func runHTTPHook(ctx context.Context, g *corev1.HTTPGetAction, t Target) (fallback string, err error) {
	req, err := newRequest(ctx, g, t, "lifecycle")
	if err != nil {
		return "", err
	}
	client := newHTTPClient(t, 0)
	resp, err := client.Do(req)
	discard(resp)
	if !isHTTPResponseToHTTPS(err) {
		return "", err
	}
	retry := req.Clone(ctx)
	retry.URL.Scheme = "http"
	retry.Header.Del("Authorization") // never send credentials in the clear
	resp, retryErr := client.Do(retry)
	discard(resp)
	if retryErr != nil {
		return "", err // the kubelet reports the original error
	}
	return fmt.Sprintf("request to HTTPS lifecycle hook %s got HTTP response, retry with HTTP succeeded", retry.URL.Host), nil
}

// discard reads a little of a hook's response so the server is not cut off
// mid-reply, then closes it.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxOutput))
	resp.Body.Close()
}

// isHTTPResponseToHTTPS is the kubelet's test; net/http has no typed error
// for it.
func isHTTPResponseToHTTPS(err error) bool {
	var uerr *url.Error
	return errors.As(err, &uerr) && strings.Contains(uerr.Err.Error(), "server gave HTTP response to HTTPS client")
}
