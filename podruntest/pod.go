package podruntest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/internal/kubectl"
	"github.com/podrun/podrun/internal/podspec"
)

// podConn is one pod as a backend serves it.
type podConn interface {
	pod() *corev1.Pod // the latest version, with its status
	// changed is closed at the pod's next change (status, event or log
	// line); call it again for the one after.
	changed() <-chan struct{}
	done() <-chan struct{} // closed when the pod is gone: terminated, removed
	events() []corev1.Event
	// logs reads a container's output (every instance); with follow it
	// goes on until the container will not run again or ctx ends.
	logs(ctx context.Context, container string, follow bool) (io.ReadCloser, error)
	exec(ctx context.Context, container string, cmd []string, stdout, stderr io.Writer) (int, error)
	dial(ctx context.Context, port int32) (net.Conn, error) // to the pod's 127.0.0.1
	delete()                                                // starts the pod's termination
}

// jobConn is one Job as a backend serves it.
type jobConn interface {
	job() *batchv1.Job
	changed() <-chan struct{}
	pods() []podConn // the Job's pods so far
	stop()           // deletes the Job and its pods; returns when they are gone
}

// Set is what one Start started, in its test's namespace.
type Set struct {
	Namespace string
	t         testing.TB
	pods      []*Pod
	jobs      []*Job
	stopRest  func()
}

// Pod returns the started pod called name (failing the test when there is
// none). Pods of Deployments have generated names: see Pods.
func (s *Set) Pod(name string) *Pod {
	s.t.Helper()
	for _, p := range s.pods {
		if p.Name() == name {
			return p
		}
	}
	s.t.Fatalf("podruntest: no pod %q was started (have %v)", name, s.names())
	return nil
}

// Pods returns the pods started (not those of Jobs: see Job.Pods).
func (s *Set) Pods() []*Pod { return s.pods }

// Job returns the started Job called name.
func (s *Set) Job(name string) *Job {
	s.t.Helper()
	for _, j := range s.jobs {
		if j.c.job().Name == name {
			return j
		}
	}
	s.t.Fatalf("podruntest: no Job %q was started", name)
	return nil
}

func (s *Set) names() []string {
	var out []string
	for _, p := range s.pods {
		out = append(out, p.Name())
	}
	return out
}

// stop deletes everything of the set and waits until it is gone.
func (s *Set) stop() {
	var wg sync.WaitGroup
	for _, j := range s.jobs {
		wg.Add(1)
		go func() { defer wg.Done(); j.c.stop() }()
	}
	for _, p := range s.pods {
		p.c.delete()
	}
	wg.Wait()
	if s.stopRest != nil {
		defer s.stopRest()
	}
	timeout := time.After(cleanupTimeout)
	for _, p := range s.pods {
		select {
		case <-p.c.done():
		case <-timeout:
			s.t.Errorf("podruntest: pod %s still not gone %v after the test:\n%s", p.Name(), cleanupTimeout, p.Describe())
			return
		}
	}
}

// Pod is a started pod. Its methods fail the test that started it.
type Pod struct {
	t testing.TB
	c podConn
}

// Name is the pod's name.
func (p *Pod) Name() string { return p.c.pod().Name }

// Object returns the latest version of the pod with its status.
func (p *Pod) Object() *corev1.Pod { return p.c.pod() }

// IP is the pod's IP ("" before its sandbox exists).
func (p *Pod) IP() string { return p.c.pod().Status.PodIP }

// Events returns the pod's events so far.
func (p *Pod) Events() []corev1.Event { return p.c.events() }

// Condition is what a Wait waits for: a state of the pod or a log line.
type Condition struct {
	desc string
	// met reports whether the pod is in the state; err says it never will be.
	met       func(p *corev1.Pod) (bool, error)
	container string         // with log: whose output
	log       *regexp.Regexp // a line of output that matches
}

// Ready is the pod's Ready condition True.
func Ready() Condition {
	return Condition{desc: "Ready", met: func(p *corev1.Pod) (bool, error) {
		if podspec.Ready(p) {
			return true, nil
		}
		return false, terminalErr(p)
	}}
}

// Succeeded is the pod's phase Succeeded.
func Succeeded() Condition { return phase(corev1.PodSucceeded) }

// Failed is the pod's phase Failed.
func Failed() Condition { return phase(corev1.PodFailed) }

func phase(want corev1.PodPhase) Condition {
	return Condition{desc: string(want), met: func(p *corev1.Pod) (bool, error) {
		return p.Status.Phase == want, terminalErr(p)
	}}
}

// Started is the container (app, init or sidecar) running and started
// (its startup probe, if any, passed).
func Started(container string) Condition {
	return Condition{desc: "container " + container + " started", met: func(p *corev1.Pod) (bool, error) {
		for _, cs := range podspec.Statuses(&p.Status) {
			if cs.Name == container && cs.State.Running != nil && cs.Started != nil && *cs.Started {
				return true, nil
			}
		}
		return false, terminalErr(p)
	}}
}

// LogLine is a line of the container's output matching the regular
// expression expr.
func LogLine(container, expr string) Condition {
	return Condition{desc: fmt.Sprintf("a line of %s's output matching %q", container, expr), container: container, log: regexp.MustCompile(expr)}
}

func terminalErr(p *corev1.Pod) error {
	if ph := p.Status.Phase; ph == corev1.PodSucceeded || ph == corev1.PodFailed {
		return fmt.Errorf("the pod is %s", ph)
	}
	return nil
}

// Wait waits until c holds, for at most timeout, and fails the test with
// the pod's status, events and each container's last log lines otherwise.
func (p *Pod) Wait(c Condition, timeout time.Duration) {
	p.t.Helper()
	if err := p.WaitErr(c, timeout); err != nil {
		p.t.Fatal(err)
	}
}

// WaitErr is Wait returning the failure (with the same report) instead.
func (p *Pod) WaitErr(c Condition, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	if c.log != nil {
		err = p.waitLog(ctx, c)
	} else {
		err = p.waitPod(ctx, c)
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %v", timeout)
	}
	return fmt.Errorf("podruntest: pod %s/%s: waiting for %s: %v (after %v)\n%s",
		p.c.pod().Namespace, p.Name(), c.desc, err, time.Since(start).Round(time.Millisecond), p.Describe())
}

func (p *Pod) waitPod(ctx context.Context, c Condition) error {
	for {
		ch := p.c.changed() // before reading: no change is missed
		ok, err := c.met(p.c.pod())
		if ok || err != nil {
			return err
		}
		select {
		case <-ch:
		case <-p.c.done():
			if ok, _ := c.met(p.c.pod()); ok {
				return nil
			}
			return errors.New("the pod is gone")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Pod) waitLog(ctx context.Context, c Condition) error {
	r, err := p.c.logs(ctx, c.container, true)
	if err != nil {
		return err
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if c.log.MatchString(sc.Text()) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("the container's output ended without such a line")
}

// tailLines is how many lines of each container's log a report shows.
const tailLines = 20

// Describe reports the pod as a failed Wait does: its kubectl get line,
// its container states, its events and the last lines of each container's
// output.
func (p *Pod) Describe() string {
	pod := p.c.pod()
	var b strings.Builder
	r := kubectl.Row(pod, time.Now())
	fmt.Fprintf(&b, "%-30s %-7s %-24s %-10s %s\n", "NAME", "READY", "STATUS", "RESTARTS", "AGE")
	fmt.Fprintf(&b, "%-30s %-7s %-24s %-10s %s\n", r.Name, r.Ready, r.Status, r.Restarts, r.Age)
	for _, cs := range podspec.Statuses(&pod.Status) {
		fmt.Fprintf(&b, "  container %s: %s, ready=%t, restarts=%d\n", cs.Name, state(cs.State), cs.Ready, cs.RestartCount)
	}
	evs := p.c.events()
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].LastTimestamp.Before(&evs[j].LastTimestamp) })
	b.WriteString("events:\n")
	if len(evs) == 0 {
		b.WriteString("  <none>\n")
	}
	for _, e := range evs {
		count := ""
		if e.Count > 1 {
			count = fmt.Sprintf(" (x%d)", e.Count)
		}
		fmt.Fprintf(&b, "  %s %s %s%s: %s\n", e.Type, e.Reason, e.InvolvedObject.FieldPath, count, strings.TrimSpace(e.Message))
	}
	for _, c := range podspec.Containers(&pod.Spec) {
		fmt.Fprintf(&b, "log of %s (last %d lines):\n", c.Name, tailLines)
		out := strings.TrimRight(p.logs(c.Name), "\n")
		if out == "" {
			b.WriteString("  <no output>\n")
			continue
		}
		lines := strings.Split(out, "\n")
		if len(lines) > tailLines {
			lines = lines[len(lines)-tailLines:]
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "  | %s\n", l)
		}
	}
	return b.String()
}

func state(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated (%s, exit code %d)", s.Terminated.Reason, s.Terminated.ExitCode)
	case s.Waiting != nil:
		return fmt.Sprintf("waiting (%s: %s)", s.Waiting.Reason, s.Waiting.Message)
	}
	return "not created"
}

// Logs returns everything the container wrote so far (every instance).
func (p *Pod) Logs(container string) string {
	p.t.Helper()
	s := p.logs(container)
	return s
}

func (p *Pod) logs(container string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := p.c.logs(ctx, container, false)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// FollowLogs streams the container's output, from its first line, until
// the container will not run again; the reader is closed at the end of the
// test at the latest.
func (p *Pod) FollowLogs(container string) io.ReadCloser {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := p.c.logs(ctx, container, true)
	if err != nil {
		cancel()
		p.t.Fatalf("podruntest: logs of %s/%s: %v", p.Name(), container, err)
	}
	p.t.Cleanup(func() { cancel(); r.Close() })
	return r
}

// ExecResult is what an Exec gave.
type ExecResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// Exec runs cmd in a running container and returns its output and exit
// code (a failure to run it at all fails the test).
func (p *Pod) Exec(container string, cmd ...string) ExecResult {
	p.t.Helper()
	var out, errOut strings.Builder
	code, err := p.c.exec(context.Background(), container, cmd, &out, &errOut)
	if err != nil {
		p.t.Fatalf("podruntest: exec %v in %s/%s: %v", cmd, p.Name(), container, err)
	}
	return ExecResult{Stdout: out.String(), Stderr: errOut.String(), ExitCode: code}
}

// ExitCode is the exit code of the container's last terminated instance
// (failing the test when it has none).
func (p *Pod) ExitCode(container string) int32 {
	p.t.Helper()
	for _, cs := range podspec.Statuses(&p.c.pod().Status) {
		if cs.Name != container {
			continue
		}
		if t := cs.State.Terminated; t != nil {
			return t.ExitCode
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			return t.ExitCode
		}
	}
	p.t.Fatalf("podruntest: container %s of pod %s has not terminated:\n%s", container, p.Name(), p.Describe())
	return 0
}

// Delete terminates the pod the kubelet's way now and waits until it is
// gone; Object then has its final status.
func (p *Pod) Delete() {
	p.t.Helper()
	p.c.delete()
	select {
	case <-p.c.done():
	case <-time.After(cleanupTimeout):
		p.t.Fatalf("podruntest: pod %s still not gone after %v:\n%s", p.Name(), cleanupTimeout, p.Describe())
	}
}

// Addr returns a 127.0.0.1 address on which the test reaches the pod's
// port: the container's hostPort when it has one, else a port-forward
// opened for the test (connections dialled inside the pod's network
// namespace, to its 127.0.0.1) and closed when the test ends.
func (p *Pod) Addr(port int32) string {
	p.t.Helper()
	for _, c := range podspec.Containers(&p.c.pod().Spec) {
		for _, cp := range c.Ports {
			if cp.ContainerPort == port && cp.HostPort != 0 && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
				return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(cp.HostPort)))
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatalf("podruntest: port-forward listener: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	p.t.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			down, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.forward(ctx, down, port)
			}()
		}
	}()
	return l.Addr().String()
}

// forward copies one connection to the pod's port and back.
func (p *Pod) forward(ctx context.Context, down net.Conn, port int32) {
	defer down.Close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	up, err := p.c.dial(dctx, port)
	cancel()
	if err != nil {
		p.t.Logf("podruntest: port-forward to %s:%d: %v", p.Name(), port, err)
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { up.Close(); down.Close() })
	defer stop()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, down)
		closeWrite(up)
		close(done)
	}()
	_, _ = io.Copy(down, up)
	closeWrite(down)
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Job is a started Job.
type Job struct {
	t testing.TB
	c jobConn
}

// Object returns the latest version of the Job with its status.
func (j *Job) Object() *batchv1.Job { return j.c.job() }

// Pods returns the Job's pods so far.
func (j *Job) Pods() []*Pod {
	var out []*Pod
	for _, c := range j.c.pods() {
		out = append(out, &Pod{t: j.t, c: c})
	}
	return out
}

// Wait waits until the Job is Complete, for at most timeout, and fails the
// test with the Job's status and a report on each of its pods otherwise
// (it failed, or the time ran out).
func (j *Job) Wait(timeout time.Duration) *batchv1.Job {
	j.t.Helper()
	got, err := j.WaitErr(timeout)
	if err != nil {
		j.t.Fatal(err)
	}
	return got
}

// WaitErr waits until the Job is finished (Complete or Failed), for at
// most timeout, and returns it; the error, with the same report as Wait's,
// says it failed or is not finished.
func (j *Job) WaitErr(timeout time.Duration) (*batchv1.Job, error) {
	deadline := time.After(timeout)
	for {
		ch := j.c.changed()
		got := j.c.job()
		if c := finished(got); c != nil {
			if c.Type == batchv1.JobComplete {
				return got, nil
			}
			return got, j.report(fmt.Sprintf("failed (%s: %s)", c.Reason, c.Message))
		}
		select {
		case <-ch:
		case <-deadline:
			return got, j.report(fmt.Sprintf("not finished after %v", timeout))
		}
	}
}

func finished(j *batchv1.Job) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func (j *Job) report(what string) error {
	got := j.c.job()
	var b strings.Builder
	fmt.Fprintf(&b, "podruntest: job %s/%s %s: active %d, succeeded %d, failed %d\n",
		got.Namespace, got.Name, what, got.Status.Active, got.Status.Succeeded, got.Status.Failed)
	for _, p := range j.Pods() {
		fmt.Fprintf(&b, "pod %s:\n%s", p.Name(), p.Describe())
	}
	return errors.New(b.String())
}

// notifier is a broadcast: changed returns a channel closed at the next
// notify.
type notifier struct {
	mu sync.Mutex // guards ch
	ch chan struct{}
}

func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
