package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
)

// logPoll is how often a followed log is checked for more output.
const logPoll = 100 * time.Millisecond

// Logs implements api.Backend. It reads the CRI log files the runtime
// writes (<log-dir>/<ns>_<name>_<uid>/<container>/<restartCount>.log, lines
// "<RFC3339Nano> <stream> <F|P> <text>") directly, so logs need neither the
// shim nor the daemon to have been up when they were written. With Follow
// it goes on with the next instance's file after a restart (kubectl's
// stream would end with the instance) and ends once the container will
// not run again.
func (d *Daemon) Logs(ctx context.Context, ns, name string, o *corev1.PodLogOptions, w io.Writer) error {
	d.mu.Lock()
	rec := d.pods[keyOf(ns, name)]
	var p *corev1.Pod
	if rec != nil {
		p = rec.pod
	}
	d.mu.Unlock()
	if p == nil {
		return notFound(api.Pods, name)
	}
	c, n, err := logTarget(p, o)
	if err != nil {
		return err
	}
	lw := &logLines{o: o, w: bufio.NewWriter(w)}
	if o.SinceSeconds != nil {
		lw.since = time.Now().Add(-time.Duration(*o.SinceSeconds) * time.Second)
	} else if o.SinceTime != nil {
		lw.since = o.SinceTime.Time
	}
	if o.LimitBytes != nil {
		lw.limit = *o.LimitBytes
	}
	dir := filepath.Join(d.node.LogDir(p), c)
	if o.TailLines != nil {
		lw.tail = int(*o.TailLines)
		lw.buffer = true
	}
	// The files the writer rotated away first, oldest first, then the
	// current one, which -f follows.
	if err := lw.readRotated(logPath(dir, n)); err != nil {
		return err
	}
	f, err := os.Open(logPath(dir, n))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var br *bufio.Reader
	if f != nil {
		br = bufio.NewReader(f)
		if err := lw.readAll(br); err != nil {
			return err
		}
	}
	if err := lw.flushTail(); err != nil {
		return err
	}
	if !o.Follow || o.Previous {
		return lw.w.Flush()
	}
	return d.followLog(ctx, lw, p, c, dir, n, &f, br)
}

// followLog is logs -f: it goes on reading the instance's log from br (of
// *f) across rotations and restarts until the pod or container is done
// or ctx ends. It replaces *f as it moves on, for the caller to close.
func (d *Daemon) followLog(ctx context.Context, lw *logLines, p *corev1.Pod, c, dir string, n int32, f **os.File, br *bufio.Reader) error {
	var err error
	for {
		if br != nil {
			if err := lw.readAll(br); err != nil {
				return err
			}
		}
		if err := lw.w.Flush(); err != nil || lw.full() {
			return err
		}
		restarts, done := d.logState(keyOf(p.Namespace, p.Name), p.UID, c)
		if next, ok := nextLog(dir, n, restarts); ok {
			// The container restarted: what is left of this file, then the next.
			if br != nil {
				if err := lw.readAll(br); err != nil {
					return err
				}
				(*f).Close()
			}
			lw.pending = ""
			if *f, err = os.Open(logPath(dir, next)); err != nil {
				return err
			}
			br, n = bufio.NewReader(*f), next
			continue
		}
		if done {
			if br != nil {
				if err := lw.readAll(br); err != nil {
					return err
				}
			}
			return lw.w.Flush()
		}
		if br == nil { // the current instance's file did not exist yet
			if *f, err = os.Open(logPath(dir, n)); err == nil {
				br = bufio.NewReader(*f)
			}
		} else if rotated(*f, logPath(dir, n)) {
			// The writer renamed the file aside and began a new one: the
			// rest of the old one, then the new one from its start.
			if err := lw.readAll(br); err != nil {
				return err
			}
			(*f).Close()
			if *f, err = os.Open(logPath(dir, n)); err != nil {
				return err
			}
			br = bufio.NewReader(*f)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(logPoll):
		}
	}
}

// logTarget is the container whose log o asks for, and the restart count
// of the instance whose log file that is.
func logTarget(p *corev1.Pod, o *corev1.PodLogOptions) (string, int32, error) {
	c := o.Container
	if c == "" {
		if len(p.Spec.Containers)+len(p.Spec.InitContainers) != 1 {
			return "", 0, apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v or one of the init containers: %v",
				p.Name, containerNames(p.Spec.Containers), containerNames(p.Spec.InitContainers)))
		}
		if len(p.Spec.Containers) == 1 {
			c = p.Spec.Containers[0].Name
		} else {
			c = p.Spec.InitContainers[0].Name
		}
	}
	if !hasContainer(p, c) {
		return "", 0, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", c, p.Name))
	}
	cs := containerStatus(p, c)
	if cs == nil || cs.ContainerID == "" && cs.LastTerminationState.Terminated == nil {
		reason := "ContainerCreating"
		if cs != nil && cs.State.Waiting != nil {
			reason = cs.State.Waiting.Reason
		}
		return "", 0, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: %s", c, p.Name, reason))
	}
	n := cs.RestartCount
	if cs.ContainerID == "" { // the latest start failed before a container existed
		n--
	}
	if o.Previous {
		if cs.LastTerminationState.Terminated == nil || n == 0 {
			return "", 0, apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", c, p.Name))
		}
		n--
	}
	return c, n, nil
}

func logPath(dir string, n int32) string {
	return podspec.LogFile(filepath.Dir(dir), filepath.Base(dir), n)
}

// nextLog finds the log of the first instance after n that has one (an
// instance that failed to start has none).
func nextLog(dir string, n, restarts int32) (int32, bool) {
	for i := n + 1; i <= restarts; i++ {
		if _, err := os.Stat(logPath(dir, i)); err == nil {
			return i, true
		}
	}
	return 0, false
}

// logState says how many times the container restarted and whether its
// log is complete: the pod is gone or finished, or the container ended
// and will not run again.
func (d *Daemon) logState(k key, uid types.UID, c string) (restarts int32, done bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec := d.pods[k]
	if rec == nil || rec.pod.UID != uid || rec.finished {
		return 0, true
	}
	cs := containerStatus(rec.pod, c)
	if cs == nil {
		return 0, false
	}
	return cs.RestartCount, cs.State.Terminated != nil && !willRestart(rec.pod, c, cs.State.Terminated.ExitCode)
}

// willRestart says whether a container that exited runs again: not in a
// pod that is deleted or finished, else the kubelet's rule.
func willRestart(p *corev1.Pod, name string, exitCode int32) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	for i, c := range podspec.Containers(&p.Spec) {
		if c.Name == name {
			return pod.ShouldRestart(p.Spec.RestartPolicy, c, i < len(p.Spec.InitContainers), exitCode)
		}
	}
	return false
}

func hasContainer(p *corev1.Pod, name string) bool { return podspec.Container(&p.Spec, name) != nil }

func containerStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	return podspec.Status(&p.Status, name)
}

// logLines turns CRI log lines into what kubectl logs prints.
// maxJoinedLine bounds a line joined from partial (P) records; the CRI
// writer cuts records at 16 KiB, so only a line this long is cut.
const maxJoinedLine = 1 << 20

type logLines struct {
	o       *corev1.PodLogOptions
	w       *bufio.Writer
	since   time.Time
	limit   int64 // 0: none
	written int64
	pending string // a line read without its newline yet
	partial string // text of P (partial) records waiting for their F
	partTS  string
	buffer  bool     // keep lines for tail instead of writing them
	tail    int      // with buffer: how many of the last lines to keep
	kept    []string // with buffer
}

// readRotated reads the files the writer rotated away from path, oldest
// first.
func (l *logLines) readRotated(path string) error {
	files, err := runtime.LogFiles(path)
	if err != nil {
		return err
	}
	for _, p := range files {
		if p == path {
			continue
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // dropped as the oldest meanwhile
		}
		if err != nil {
			return err
		}
		err = l.readAll(bufio.NewReader(f))
		f.Close()
		if err != nil {
			return err
		}
		l.pending = "" // a file ends with whole records
	}
	return nil
}

// rotated reports whether path is no longer the file f reads: the writer
// rotated it (or has yet to create the next one).
func rotated(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && !os.SameFile(a, b)
}

// readAll reads the complete lines available; an unterminated last line
// waits for the rest.
func (l *logLines) readAll(br *bufio.Reader) error {
	for {
		s, err := br.ReadString('\n')
		if err != nil {
			l.pending += s
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line := l.pending + strings.TrimSuffix(s, "\n")
		l.pending = ""
		if err := l.record(line); err != nil {
			return err
		}
	}
}

// record handles one CRI record: "<time> <stream> <F|P> <text>".
func (l *logLines) record(line string) error {
	rec, ok := runtime.ParseLogRecord(line)
	if !ok {
		return nil
	}
	text, ts := rec.Text, rec.Time
	if rec.Partial || l.partial != "" {
		if l.partial == "" {
			l.partTS = rec.Time
		}
		l.partial += text
		// A line this long goes out in pieces: the memory a reader holds
		// stays bounded, whatever a container writes without a newline.
		if rec.Partial && len(l.partial) < maxJoinedLine {
			return nil
		}
		text, ts, l.partial = l.partial, l.partTS, ""
	}
	if !l.since.IsZero() {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil && t.Before(l.since) {
			return nil
		}
	}
	out := text + "\n"
	if l.o.Timestamps {
		out = ts + " " + out
	}
	if l.buffer {
		l.kept = append(l.kept, out)
		if len(l.kept) > l.tail {
			l.kept = l.kept[1:]
		}
		return nil
	}
	return l.write(out)
}

func (l *logLines) write(s string) error {
	if l.full() {
		return nil
	}
	if l.limit > 0 && l.written+int64(len(s)) > l.limit {
		s = s[:l.limit-l.written]
	}
	l.written += int64(len(s))
	_, err := l.w.WriteString(s)
	return err
}

func (l *logLines) full() bool { return l.limit > 0 && l.written >= l.limit }

// flushTail writes the lines kept for tail and writes from now on.
func (l *logLines) flushTail() error {
	l.buffer = false
	for _, s := range l.kept {
		if err := l.write(s); err != nil {
			return err
		}
	}
	l.kept = nil
	return nil
}
