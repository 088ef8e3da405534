package pod

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/probes"
)

// syncWork is one sync: the plan plus what the executor needs from the owner's
// state at planning time (it must not read the owner's mutable state).
type syncWork struct {
	plan     plan
	sb       *Sandbox
	running  []target
	lastExit map[*ctr]time.Time // the most recent exited instance at planning time
	restarts map[*ctr]int32     // the restart count a new instance gets
	prev     map[*ctr]*instance // the latest instance at planning time
	grace    *int64             // deletion grace period, if deleting
}

type target struct {
	c    *ctr
	inst *instance
}

// minGrace is the kubelet's minimumGracePeriodInSeconds: every stop signal
// gets at least this long before SIGKILL.
const minGrace = 2

// execute carries out one plan in the kubelet's SyncPod order.
func (s *Supervisor) execute(ctx context.Context, j *syncWork) {
	p := j.plan
	if p.killPod {
		sp := trace.Start(ctx, "kill pod")
		s.killPod(j.sb, j.running, j.grace)
		sp.End()
		return
	}
	for _, k := range p.kill {
		s.killContainer(j.sb, k.c, k.inst, s.grace(k.grace, nil), nil, k.message)
	}
	if p.createSandbox {
		sp := trace.Start(ctx, "sandbox")
		sb, err := s.o.Host.CreateSandbox(ctx, s.st.pod, s.o.Objects)
		sp.End()
		if err != nil {
			if ctx.Err() == nil { // not a deletion that cut it short
				s.send(evSandbox{err: err})
			}
			return
		}
		s.send(evSandbox{sb: sb})
		j.sb = sb
	}
	s.prepareAhead(j)
	for _, i := range p.startInit {
		c := s.st.init[i]
		if ctx.Err() != nil {
			return
		}
		if !s.start(ctx, j, c) && c.role == roleInit {
			return
		}
	}
	for _, i := range p.startApps {
		if ctx.Err() != nil {
			return
		}
		s.start(ctx, j, s.st.apps[i])
	}
}

// grace is the kubelet's setTerminationGracePeriod: a deletion's grace
// period overrides a failed probe's own, which overrides the pod's.
func (s *Supervisor) grace(own, override *int64) int64 {
	switch {
	case override != nil:
		return *override
	case own != nil:
		return *own
	}
	return *s.st.pod.Spec.TerminationGracePeriodSeconds
}

// killPod stops every running container at once, each with its own
// goroutine, sidecars ordered after the apps and after each later sidecar.
func (s *Supervisor) killPod(sb *Sandbox, running []target, grace *int64) {
	var order *ordering
	if s.st.hasSidecars() {
		names := map[string]bool{}
		for _, t := range running {
			names[t.c.spec.Name] = true
		}
		order = newOrdering(s.st, names)
	}
	// pod_workers.go calculateEffectiveGracePeriod: a pod's termination
	// always gets at least 1 s, so a zero grace period still runs preStop
	// hooks and still stops sidecars after the apps.
	g := max(s.grace(nil, grace), 1)
	var wg sync.WaitGroup
	for _, t := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.killContainer(sb, t.c, t.inst, g, order, "")
		}()
	}
	wg.Wait()
}

// killContainer is the kubelet's killContainer: preStop bounded by the
// grace period and subtracted from it, then this container's turn in the
// termination order, then the stop signal with at least minGrace seconds
// before SIGKILL. It returns once the container has exited.
func (s *Supervisor) killContainer(sb *Sandbox, c *ctr, inst *instance, grace int64, order *ordering, message string) {
	if message == "" {
		message = fmt.Sprintf("Stopping container %s", c.spec.Name)
	}
	s.rec.record(c, normal, "Killing", "%s", message)
	h := inst.handle
	if ps := preStop(c.spec); ps != nil && grace > 0 {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(grace)*time.Second)
		if err := s.runHook(ctx, sb, c, inst, ps); err != nil && ctx.Err() == nil {
			s.log.Info("preStop hook failed", "container", c.spec.Name, "err", err)
			s.rec.record(c, warning, "FailedPreStopHook", "%s", hookMessage(err, c, s.st.pod))
		}
		cancel()
		grace -= int64(time.Since(start).Seconds())
	}
	if order != nil && grace > 0 {
		grace -= int64(order.waitForTurn(c.spec.Name, grace).Seconds())
	}
	grace = max(grace, minGrace)
	sig := stopSignal(inst.stopSignal)
	s.log.Debug("stopping container", "container", c.spec.Name, "signal", sig, "grace", grace)
	if err := h.Signal(sig); err != nil {
		s.log.Warn("stop signal", "container", c.spec.Name, "err", err)
	}
	t := time.NewTimer(time.Duration(grace) * time.Second)
	select {
	case <-h.Done():
	case <-t.C:
		if err := h.Signal(syscall.SIGKILL); err != nil {
			s.log.Warn("SIGKILL", "container", c.spec.Name, "err", err)
		}
		<-h.Done()
	}
	t.Stop()
	if order != nil {
		order.done(c.spec.Name)
	}
	// The next decision must see this exit, as the kubelet's next sync sees
	// a pod status newer than its kills.
	<-inst.applied
}

func preStop(c *corev1.Container) *corev1.LifecycleHandler {
	if c.Lifecycle == nil {
		return nil
	}
	return c.Lifecycle.PreStop
}

// stopSignal is the image's STOPSIGNAL, else SIGTERM.
func stopSignal(name string) syscall.Signal {
	if name == "" {
		return syscall.SIGTERM
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig
	}
	if sig := unix.SignalNum("SIG" + name); sig != 0 {
		return sig
	}
	var n int
	if _, err := fmt.Sscanf(name, "%d", &n); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n)
	}
	return syscall.SIGTERM
}

// start is the kubelet's startContainer: back-off, image, config, create and
// start, then postStart synchronously. It reports to the owner and returns
// whether the container is running.
func (s *Supervisor) start(ctx context.Context, j *syncWork, c *ctr) bool {
	pod := s.st.pod
	now := time.Now()
	if last, ok := j.lastExit[c]; ok {
		key := crashKey(pod, c.spec)
		s.boffMu.Lock()
		until, in := s.crash.inBackoffSince(key, last, now)
		if !in {
			s.crash.next(key, last, now)
		}
		d := s.crash.get(key)
		s.boffMu.Unlock()
		if in {
			s.rec.record(c, warning, "BackOff", "Back-off restarting failed container %s in pod %s", c.spec.Name, Desc(pod))
			s.send(evStartFailed{c: c, reason: reasonCrashLoopBackOff, retryAt: until,
				message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, c.spec.Name, Desc(pod))})
			return false
		}
	}

	// The previous instance must be gone (its cgroup, rootfs) before the
	// next one of the same name is created.
	if prev := j.prev[c]; prev != nil && prev.removed != nil {
		<-prev.removed
	}
	ctx = trace.Container(ctx, c.spec.Name)
	sp := trace.Start(ctx, "image lookup")
	img, ok := s.ensureImage(ctx, j.sb, c)
	sp.End()
	if !ok {
		return false
	}
	sp = trace.Start(ctx, "resolve")
	req, err := s.request(c, img, j.sb, j.restarts[c])
	sp.End()
	if err != nil {
		s.rec.record(c, warning, "Failed", "Error: %v", err)
		s.send(evStartFailed{c: c, reason: reasonCreateConfig, message: err.Error()})
		return false
	}
	sp = trace.Start(ctx, "container")
	var h Container
	if pc := s.takePrepared(c, img, j.restarts[c]); pc != nil {
		h, err = pc.Start(ctx)
	} else {
		h, err = s.o.Host.StartContainer(ctx, req)
	}
	sp.End()
	if err != nil {
		s.rec.record(c, warning, "Failed", "Error: %v", err)
		if se, ok := asStartError(err); ok {
			s.send(evStartFailed{c: c, reason: se.Reason, message: err.Error()})
			return false
		}
		// The container existed and could not run: it shows as terminated
		// with StartError, like containerd reports it.
		failed := &instance{state: instStartFailed, exitCode: 128, reason: reasonStartError, message: err.Error(), finishedAt: time.Now(), hash: specHash(c.spec)}
		s.send(evStartFailed{c: c, reason: reasonRunContainer, message: err.Error(), failed: failed})
		return false
	}
	postStart := c.spec.Lifecycle != nil && c.spec.Lifecycle.PostStart != nil
	inst := &instance{id: h.ID(), hash: specHash(c.spec), handle: h, env: req.Env, startedAt: h.StartedAt(),
		removed: make(chan struct{}), applied: make(chan struct{}),
		readiness: probes.Failure, liveness: probes.Success, startup: probes.Unknown, stopSignal: img.Config.StopSignal,
		inHook: postStart}
	s.rec.record(c, normal, "Created", "Created container: %s", c.spec.Name)
	s.rec.record(c, normal, "Started", "Started container %s", c.spec.Name)
	s.send(evStarted{c: c, inst: inst, ref: img.Ref, id: imageID(img)})

	if postStart {
		if err := s.runHook(ctx, j.sb, c, inst, c.spec.Lifecycle.PostStart); err != nil {
			s.log.Info("postStart hook failed", "container", c.spec.Name, "err", err)
			msg := hookMessage(err, c, pod)
			s.rec.record(c, warning, "FailedPostStartHook", "%s", msg)
			s.killContainer(j.sb, c, inst, s.grace(nil, nil), nil, "FailedPostStartHook")
			s.send(evStartFailed{c: c, reason: reasonPostStartHook, message: msg})
			return false
		}
		s.send(evHookDone{c: c, inst: inst})
	}
	return true
}

// hookMessage is the handler runner's message for a failed hook: the
// text of the FailedPostStartHook / FailedPreStopHook events and of the
// PostStartHookError waiting message.
func hookMessage(err error, c *ctr, pod *corev1.Pod) string {
	var he *probes.HookError
	if errors.As(err, &he) {
		return he.Message(c.spec.Name, Desc(pod))
	}
	return err.Error()
}

func imageID(img *image.Image) string {
	if img.RepoDigest != "" {
		return img.RepoDigest
	}
	return img.ID
}

// Desc is the kubelet's format.Pod: name_namespace(uid).
func Desc(p *corev1.Pod) string { return fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID) }

// crashKey is the kubelet's GetBackoffKey: a change of image or resources
// starts a fresh back-off.
func crashKey(p *corev1.Pod, c *corev1.Container) string {
	return fmt.Sprintf("%s_%s_%s_%s_%s_%v", p.Name, p.Namespace, p.UID, c.Name, c.Image, c.Resources.String())
}

// ensureImage is the kubelet's EnsureImageExists with its events, reasons
// and pull back-off.
func (s *Supervisor) ensureImage(ctx context.Context, sb *Sandbox, c *ctr) (*image.Image, bool) {
	pod, ref := s.st.pod, c.spec.Image
	fail := func(reason, msg string, retry time.Time) (*image.Image, bool) {
		// startContainer's event for every EnsureImageExists error.
		s.rec.record(c, warning, "Failed", "Error: %s", reason)
		s.send(evStartFailed{c: c, reason: reason, message: msg, retryAt: retry})
		return nil, false
	}
	if _, err := image.Normalize(ref); err != nil {
		s.rec.record(c, warning, "InspectFailed", "Failed to apply default image tag %q: %v", ref, err)
		return fail("InvalidImageName", fmt.Sprintf("Failed to apply default image tag %q: %v", ref, err), time.Time{})
	}
	img, err := s.o.Host.LookupImage(ref)
	present := err == nil
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		return fail("ImageInspectError", fmt.Sprintf("Failed to inspect image %q: %v", ref, err), time.Time{})
	}
	policy := c.spec.ImagePullPolicy
	if policy == corev1.PullNever || (policy == corev1.PullIfNotPresent && present) {
		if !present {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", ref)
			s.rec.record(c, warning, "ErrImageNeverPull", "%s", msg)
			return fail("ErrImageNeverPull", msg, time.Time{})
		}
		s.rec.record(c, normal, "Pulled", "Container image %q already present on machine", ref)
		return img, true
	}
	key := string(pod.UID) + "_" + ref
	now := time.Now()
	s.boffMu.Lock()
	until, in := s.pulls.inBackoffSinceUpdate(key, now)
	s.boffMu.Unlock()
	if in {
		s.rec.record(c, normal, "BackOff", "Back-off pulling image %q", ref)
		return fail(reasonImagePullBackOff, fmt.Sprintf("Back-off pulling image %q", ref), until)
	}
	s.rec.record(c, normal, "Pulling", "Pulling image %q", ref)
	img, err = s.o.Host.PullImage(ctx, pod, ref)
	if err != nil {
		s.boffMu.Lock()
		s.pulls.next(key, now, time.Now())
		until, _ = s.pulls.inBackoffSinceUpdate(key, time.Now())
		s.boffMu.Unlock()
		msg := fmt.Sprintf("Failed to pull image %q: %v", ref, err)
		s.rec.record(c, warning, "Failed", "%s", msg)
		return fail(reasonErrImagePull, msg, until)
	}
	s.boffMu.Lock()
	s.pulls.reset(key)
	s.boffMu.Unlock()
	d := time.Since(now)
	s.rec.record(c, normal, "Pulled", "Successfully pulled image %q in %s (%s including waiting). Image size: %d bytes.", ref, d.Round(time.Millisecond), d.Round(time.Millisecond), img.Size)
	return img, true
}

// runHook runs a lifecycle handler against one container instance.
func (s *Supervisor) runHook(ctx context.Context, sb *Sandbox, c *ctr, inst *instance, h *corev1.LifecycleHandler) error {
	fallback, err := probes.RunHook(ctx, h, probeTarget(sb, c, inst))
	if fallback != "" {
		s.rec.record(c, warning, "LifecycleHTTPFallback", "%s", fallback)
	}
	return err
}
