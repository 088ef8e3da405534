package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
)

// AttachContainer re-attaches to a running container of the pod.
func (n *Node) AttachContainer(ctx context.Context, p *corev1.Pod, c *corev1.Container, restartCount int32, id string) (pod.Container, error) {
	h, err := n.Runtime.Load(id)
	if err != nil {
		return nil, err
	}
	return &container{Container: h, dir: podspec.InstanceDir(n.PodDir(string(p.UID)), c.Name, restartCount), spec: c,
		logPath: podspec.LogFile(n.LogDir(p), c.Name, restartCount)}, nil
}

// StartContainer mounts the container's root filesystem, turns the
// container spec into a runtime.Spec and starts it.
func (n *Node) StartContainer(ctx context.Context, r *pod.ContainerRequest) (pod.Container, error) {
	pc, err := n.prepare(ctx, r)
	if err != nil {
		return nil, err
	}
	return pc.Start(ctx)
}

// errNoPids: with a pids limit per pod, a prepared container's waiting
// runc init (the Go runtime's threads) would take from the budget of the
// containers running meanwhile, which a kubelet's start never does.
var errNoPids = errors.New("not prepared ahead: the node limits each pod's pids (--pod-pids-limit)")

// PrepareContainer does all of StartContainer but the start of the
// container's process.
func (n *Node) PrepareContainer(ctx context.Context, r *pod.ContainerRequest) (pod.Prepared, error) {
	if n.cfg.Cgroups.PidsLimit > 0 {
		return nil, errNoPids
	}
	return n.prepare(ctx, r)
}

func (n *Node) prepare(ctx context.Context, r *pod.ContainerRequest) (_ pod.Prepared, retErr error) {
	p, c := r.Pod, r.Container
	nsb, err := n.sandbox(string(p.UID))
	if err != nil {
		return nil, pod.CreateError(err)
	}
	id := containerID(p, c.Name, r.RestartCount)
	dir := podspec.InstanceDir(nsb.dir, c.Name, r.RestartCount)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, pod.CreateError(err)
	}
	sp := trace.Start(ctx, "rootfs")
	rootfs, err := n.Images.Mount(r.Image, dir)
	sp.End()
	if err != nil {
		return nil, pod.CreateError(err)
	}
	defer func() {
		if retErr != nil {
			if err := image.Unmount(dir); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()

	sp = trace.Start(ctx, "spec")
	spec, err := n.containerSpec(nsb, r, id, dir, rootfs)
	sp.End()
	if err != nil {
		return nil, pod.ConfigError(err)
	}
	cr, err := n.Runtime.Create(ctx, spec)
	if errors.Is(err, runtime.ErrSeccompProfile) || errors.Is(err, runtime.ErrAppArmorProfile) {
		// containerd fails this in CreateContainer.
		return nil, pod.CreateError(err)
	} else if err != nil {
		return nil, err
	}
	return &prepared{cr: cr, c: &container{dir: dir, spec: c, logPath: spec.LogPath}}, nil
}

// prepared is a created container whose process waits for Start.
type prepared struct {
	cr *runtime.Created
	c  *container // without its runtime.Container until Start
}

func (p *prepared) Start(ctx context.Context) (pod.Container, error) {
	h, err := p.cr.Start(ctx)
	if err != nil {
		return nil, errors.Join(err, image.Unmount(p.c.dir))
	}
	p.c.Container = h
	return p.c, nil
}

func (p *prepared) Discard() error {
	return errors.Join(p.cr.Discard(), image.Unmount(p.c.dir))
}

// discardUnstarted removes the pod's containers that were created and
// never started (prepared by a process that died before it started or
// discarded them), with their root filesystems: their runtime IDs are
// needed again for the starts to come.
func (n *Node) discardUnstarted(uid, podDir string) error {
	ids, err := n.Runtime.List()
	var errs []error
	for _, id := range ids {
		if podUIDOf(id) != uid {
			continue
		}
		c, err := n.Runtime.Load(id)
		if err != nil || !c.Unstarted() {
			continue
		}
		errs = append(errs, c.Destroy(), image.Unmount(filepath.Join(podDir, "containers", id[len(uid)+1:])))
	}
	return errors.Join(append(errs, err)...)
}

// containerID is a container instance's runtime ID:
// <pod uid>-<name>-<restart count>; podUIDOf reads it back.
func containerID(p *corev1.Pod, name string, restart int32) string {
	return fmt.Sprintf("%s-%s-%d", p.UID, name, restart)
}

// podUIDOf is the pod UID of a containerID (pod UIDs are UUIDs), or "".
func podUIDOf(id string) string {
	if len(id) < 37 || id[36] != '-' {
		return ""
	}
	return id[:36]
}

// container is a runtime container plus what its removal needs.
type container struct {
	*runtime.Container
	dir     string
	spec    *corev1.Container
	logPath string
}

func (c *container) Signal(sig syscall.Signal) error { return c.Container.Signal(sig) }

// Remove reads the termination message (its last 4096 bytes; with
// FallbackToLogsOnError and no message after a failure, the last 80 log
// lines up to 2048 bytes) and removes the container and its root.
func (c *container) TerminationMessage() string {
	msg := ""
	// The last 4096 bytes, reading no more (the kubelet's tail.ReadAtMost).
	if b, err := runtime.ReadTail(filepath.Join(c.dir, "termination-log"), 4096); err == nil {
		msg = string(b)
	}
	if msg == "" && c.spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && c.Exit().Code != 0 {
		msg = tailLog(c.logPath, 80, 2048)
	}
	return msg
}

func (c *container) Remove() error {
	return errors.Join(c.Container.Destroy(), image.Unmount(c.dir))
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// tailLog returns the text of the last lines of a CRI log file, holding no
// more than lines+2 texts of maxBytes each while it reads.
func tailLog(path string, lines, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var texts []string
	partial := map[string]string{} // a line's P records so far, per stream
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		r, ok := runtime.ParseLogRecord(sc.Text())
		if !ok {
			continue
		}
		// Only the last maxBytes of the output count: a line longer than
		// that (a container writing without newlines) is kept as its end.
		if r.Partial {
			partial[r.Stream] = lastBytes(partial[r.Stream]+r.Text, maxBytes)
			continue
		}
		texts = append(texts, lastBytes(partial[r.Stream]+r.Text, maxBytes))
		delete(partial, r.Stream)
		if len(texts) > lines {
			texts = texts[1:]
		}
	}
	var b bytes.Buffer
	for _, t := range texts {
		b.WriteString(t)
		b.WriteByte('\n')
	}
	out := b.Bytes()
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out)
}
