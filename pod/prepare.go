package pod

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/trace"
)

// Preparing ahead: the kubelet creates and starts the pod's containers one
// after the other, each once the one before it has started (a sidecar) or
// succeeded (an init container). Most of a start is the runtime's create
// (runc init setting up the namespaces and the root filesystem), which
// runs no code of the container. So when an init container starts, the
// containers that follow it are created meanwhile, their processes held
// at runc's exec fifo; each is started, the kubelet's way, when its turn
// comes. What the container could observe is the same: its process runs
// only then, its events and status are those of a normal start.
//
// A container is prepared only when nothing its start reads can change
// while it waits: a first start (no restart), its image present and not
// to be pulled, no environment from configMaps, secrets or the downward
// API (resolved at the start), no subPath (the kubelet creates it at the
// start, often after an init container wrote it), no terminal or stdin,
// no shared PID namespace (the waiting runc init would show in ps), and
// no limit on the pod's memory or pids (the waiting runc init would take
// from them).

// preparedCtr is a container prepared ahead of its start.
type preparedCtr struct {
	done    chan struct{} // closed once pc or err is set
	pc      Prepared
	err     error
	hash    string // specHash at preparation
	imageID string
}

// prepareAhead prepares, in the background, the containers that come
// after the first init container this sync starts.
func (s *Supervisor) prepareAhead(j *syncWork) {
	if len(j.plan.startInit) == 0 || j.sb == nil || s.st.pod.Spec.ShareProcessNamespace != nil && *s.st.pod.Spec.ShareProcessNamespace {
		return
	}
	// A waiting runc init holds ~4 MB of its own: charged to a pod cgroup
	// with a memory limit, it would take from what the running containers
	// may use.
	if _, limited := cgroups.PodLimits(s.st.pod)[corev1.ResourceMemory]; limited {
		return
	}
	next := append(slices.Clone(s.st.init[j.plan.startInit[0]+1:]), s.st.apps...)
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if s.prep == nil {
		s.prep = map[*ctr]*preparedCtr{}
	}
	for _, c := range next {
		if _, started := j.prev[c]; started || s.prep[c] != nil || !preparable(c.spec) {
			continue
		}
		policy := c.spec.ImagePullPolicy
		if policy != corev1.PullNever && policy != corev1.PullIfNotPresent {
			continue // the start may pull
		}
		img, err := s.o.Host.LookupImage(c.spec.Image)
		if err != nil {
			continue
		}
		if _, err := image.Normalize(c.spec.Image); err != nil {
			continue
		}
		req, err := s.request(c, img, j.sb, 0)
		if err != nil {
			continue
		}
		pr := &preparedCtr{done: make(chan struct{}), hash: specHash(c.spec), imageID: img.ID}
		s.prep[c] = pr
		go func() {
			defer close(pr.done)
			ctx := trace.Container(s.tctx, c.spec.Name)
			sp := trace.Start(ctx, "prepare")
			pr.pc, pr.err = s.o.Host.PrepareContainer(ctx, req)
			sp.End()
		}()
	}
}

// preparable: nothing the container's start reads can change while it
// waits (see above), but its image, checked apart.
func preparable(c *corev1.Container) bool {
	if c.Stdin || c.TTY || len(c.EnvFrom) > 0 {
		return false
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			return false
		}
	}
	for _, m := range c.VolumeMounts {
		if m.SubPath != "" || m.SubPathExpr != "" {
			return false
		}
	}
	return true
}

// takePrepared returns c's prepared container if it is still what a start
// of c with img would create, else nil (discarding it).
func (s *Supervisor) takePrepared(c *ctr, img *image.Image, restart int32) Prepared {
	s.prepMu.Lock()
	pr := s.prep[c]
	delete(s.prep, c)
	s.prepMu.Unlock()
	if pr == nil {
		return nil
	}
	<-pr.done
	if pr.err != nil {
		// The start makes it again, and reports what fails as a start would.
		s.log.Debug("preparing the container failed", "container", c.spec.Name, "err", pr.err)
		return nil
	}
	if restart != 0 || pr.hash != specHash(c.spec) || pr.imageID != img.ID {
		s.discard(c, pr)
		return nil
	}
	return pr.pc
}

// discardPrepared discards what was prepared and not started.
func (s *Supervisor) discardPrepared() {
	s.prepMu.Lock()
	prep := s.prep
	s.prep = nil
	s.prepMu.Unlock()
	for c, pr := range prep {
		<-pr.done
		if pr.err == nil {
			s.discard(c, pr)
		}
	}
}

func (s *Supervisor) discard(c *ctr, pr *preparedCtr) {
	if err := pr.pc.Discard(); err != nil {
		s.log.Warn("discarding a prepared container", "container", c.spec.Name, "err", err)
	}
}

// request is the ContainerRequest of a start of c with img.
func (s *Supervisor) request(c *ctr, img *image.Image, sb *Sandbox, restart int32) (*ContainerRequest, error) {
	pod := s.st.pod
	args, env, specEnv, err := resolveContainer(pod, c.spec, img, sb, s.o.Objects)
	if err != nil {
		return nil, err
	}
	req := &ContainerRequest{Pod: pod, Container: c.spec, Image: img, Args: args, Env: env, SpecEnv: specEnv, RestartCount: restart}
	if out := s.o.Output; out != nil {
		req.Output = func(stream, line string) { out(s.Pod(), c.spec.Name, stream, line) }
	}
	if raw := s.o.Raw; raw != nil {
		req.Raw = func(stream string, p []byte) { raw(c.spec.Name, stream, p) }
	}
	return req, nil
}
