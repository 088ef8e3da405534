package pod

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/probes"
	"github.com/podrun/podrun/runtime"
)

// Objects finds the ConfigMaps and Secrets a pod refers to.
type Objects interface {
	ConfigMap(namespace, name string) *corev1.ConfigMap
	Secret(namespace, name string) *corev1.Secret
}

// Options configure a Supervisor.
type Options struct {
	Host    Host
	Objects Objects
	Log     *slog.Logger
	// OnEvent sees every event as it is recorded (any goroutine).
	OnEvent func(p *corev1.Pod, e Event)
	// OnStatus sees the pod after each status change (owner goroutine; do not block).
	OnStatus func(p *corev1.Pod)
	// Output sees each line a container writes (copier goroutines).
	Output func(p *corev1.Pod, container, stream, line string)
	// Raw sees a container's output as it is read, before it is cut into
	// log lines (copier goroutines; do not block, do not keep p).
	Raw func(container, stream string, p []byte)
	// Checkpoint receives the supervisor's state after each change (owner
	// goroutine), for Restore after a crash of the hosting process.
	Checkpoint func(cp *Checkpoint)
	// AllowedUnsafeSysctls is the kubelet's --allowed-unsafe-sysctls:
	// sysctls (or prefixes ending in '*') admitted beyond the safe ones.
	AllowedUnsafeSysctls []string
	// Trace records the pod's phases (nil: none).
	Trace *trace.Recorder
}

// Supervisor runs one pod with the kubelet's rules. Run is its owner
// goroutine: every event (container exit, probe result, sync step, delete,
// timer) reaches it through one channel and only it touches the pod's state.
// Each sync (what decide returns) runs on its own goroutine, one at a time,
// so the owner stays responsive while a sync waits for a pull, a hook or a
// grace period, exactly as the kubelet's pod worker serialises SyncPod.
type Supervisor struct {
	o    Options
	log  *slog.Logger
	rec  recorder
	tctx context.Context // carries o.Trace for this pod: the syncs' parent

	st      *podState // owner goroutine only
	crash   *backoff  // crash-loop back-off, keyed as the kubelet keys it
	pulls   *backoff  // image pull back-off, keyed pod UID + image
	boffMu  sync.Mutex
	prepMu  sync.Mutex
	prep    map[*ctr]*preparedCtr // containers prepared ahead of their start
	events  chan any
	deletes chan *int64
	updates chan *corev1.Pod
	objects chan Objects
	snap    atomic.Pointer[corev1.Pod]
	running atomic.Pointer[map[string]Container] // running instances by container name
	done    chan struct{}

	// owner goroutine only:
	sb         *Sandbox
	syncing    bool
	dirty      bool // something happened that the last sync did not see
	cancelSync context.CancelFunc
	workers    map[*instance]map[probes.Kind]*probes.Worker
	wake       *time.Timer
	wakeAt     time.Time
	lastStatus *corev1.PodStatus
	restored   []target    // running instances Restore re-attached
	pending    *corev1.Pod // an update waiting for the running sync to end
	newObjects Objects     // objects waiting for the running sync to end
}

// New returns the supervisor of p; it does nothing until Run.
func New(p *corev1.Pod, o Options) *Supervisor {
	p = p.DeepCopy()
	s := &Supervisor{
		o:       o,
		st:      newPodState(p),
		crash:   newBackoff(),
		pulls:   newBackoff(),
		events:  make(chan any, 64),
		deletes: make(chan *int64, 4),
		updates: make(chan *corev1.Pod, 4),
		objects: make(chan Objects, 4),
		done:    make(chan struct{}),
		workers: map[*instance]map[probes.Kind]*probes.Worker{},
	}
	s.log = o.Log
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("pod", p.Namespace+"/"+p.Name)
	s.tctx = trace.With(context.Background(), o.Trace, p.Namespace+"/"+p.Name)
	if o.OnEvent != nil {
		s.rec.notify = func(e Event) { o.OnEvent(s.Pod(), e) }
	}
	s.st.qos = cgroups.QOSClass(p)
	s.snap.Store(p.DeepCopy())
	return s
}

// Pod returns the latest pod with its status; safe from any goroutine.
func (s *Supervisor) Pod() *corev1.Pod { return s.snap.Load() }

// Events returns the pod's events so far.
func (s *Supervisor) Events() []Event { return s.rec.list() }

// Done is closed when Run has returned.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Delete asks for the pod's termination with the given grace period
// (nil: the pod's terminationGracePeriodSeconds).
func (s *Supervisor) Delete(grace *int64) {
	select {
	case s.deletes <- grace:
	case <-s.done:
	}
}

// Exec runs a process in a running container of the pod.
func (s *Supervisor) Exec(ctx context.Context, container string, e runtime.ExecSpec) (int, error) {
	c, ok := s.Running(container)
	if !ok {
		return 0, fmt.Errorf("container %s is not running", container)
	}
	return c.Exec(ctx, e)
}

// Running returns the running instance of a container of the pod.
func (s *Supervisor) Running(container string) (Container, bool) {
	m := s.running.Load()
	if m == nil || (*m)[container] == nil {
		return nil, false
	}
	return (*m)[container], true
}

// Update applies a new version of the pod. As on a node, only a container
// image may change; a running container whose image changed is restarted
// (whatever the restart policy). The caller validates the rest.
func (s *Supervisor) Update(p *corev1.Pod) {
	select {
	case s.updates <- p.DeepCopy():
	case <-s.done:
	}
}

// Refresh hands the supervisor new ConfigMaps and Secrets: the running
// pod's configMap, secret and projected volumes are brought up to date
// (the kubelet's remount of those volumes; containers keep running) and
// containers started from now on take their env from them, as on a node.
// It happens between syncs, as the supervisor applies an update.
func (s *Supervisor) Refresh(objs Objects) {
	select {
	case s.objects <- objs:
	case <-s.done:
	}
}

// events the owner goroutine reacts to
type (
	evSandbox struct {
		sb  *Sandbox
		err error
	}
	evStarted struct {
		c    *ctr
		inst *instance
		ref  string // image as shown in status
		id   string // image ID for status
	}
	evStartFailed struct {
		c               *ctr
		reason, message string
		retryAt         time.Time // when a back-off ends; zero if none
		failed          *instance // a created container that failed to start
	}
	evExited struct {
		c    *ctr
		inst *instance
		exit runtime.Exit
		msg  string
	}
	evProbe struct {
		c      *ctr
		inst   *instance
		kind   probes.Kind
		result probes.Result
	}
	// evHookDone: the postStart hook of inst returned successfully.
	evHookDone struct {
		c    *ctr
		inst *instance
	}
	evSyncDone struct{}
)

// send hands an event to the owner; after Run returned it is dropped.
func (s *Supervisor) send(ev any) {
	select {
	case s.events <- ev:
	case <-s.done:
	}
}

// Run supervises the pod until it is finished (terminal, every container
// stopped, sandbox removed). Cancelling ctx is a deletion with the pod's
// grace period.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.done)
	if s.st.startTime.IsZero() {
		s.st.startTime = time.Now()
	}
	if s.st.life == creating && !s.st.sandbox {
		if reason, msg, ok := admit(s.st.pod, s.o.AllowedUnsafeSysctls); !ok {
			s.reject(reason, msg)
			return nil
		}
	}
	for _, t := range s.restored {
		s.watch(t.c, t.inst)
	}
	var deadline <-chan time.Time
	if ads := s.st.pod.Spec.ActiveDeadlineSeconds; ads != nil {
		t := time.NewTimer(time.Duration(*ads) * time.Second)
		defer t.Stop()
		deadline = t.C
	}
	resync := time.NewTicker(10 * time.Second)
	defer resync.Stop()
	s.wake = time.NewTimer(time.Hour)
	defer s.wake.Stop()
	ctxDone := ctx.Done()
	s.dirty = true
	for {
		// The status is rendered once per event; sync reads that one and
		// only a sync that changed the pod's state has it rendered again.
		s.publish()
		if s.sync() {
			s.publish()
		}
		if s.st.life == finished {
			break
		}
		select {
		case ev := <-s.events:
			s.apply(ev)
		case g := <-s.deletes:
			s.delete(g, "")
			s.dirty = true
		case p := <-s.updates:
			s.pending = p
			s.dirty = true
		case o := <-s.objects:
			s.newObjects = o
			s.dirty = true
		case <-ctxDone:
			ctxDone = nil
			s.delete(nil, "")
			s.dirty = true
		case <-deadline:
			s.delete(nil, "DeadlineExceeded")
			s.dirty = true
		case <-s.wake.C:
			s.wakeAt = time.Time{}
			s.dirty = true
		case <-resync.C:
			s.dirty = true
		}
	}
	s.publish()
	return nil
}

// reject is the kubelet's rejectPod: the pod fails at admission, nothing
// of it is created.
func (s *Supervisor) reject(reason, msg string) {
	s.rec.record(nil, warning, reason, "%s", msg)
	st := s.st
	st.life, st.rejected = finished, true
	st.reason, st.msg = reason, "Pod was rejected: "+msg
	s.publish()
}

// sync starts the next sync when none runs and something changed since
// the last one (the kubelet syncs on container events and timers, never in
// a loop: a start refused by a back-off waits for the back-off's end), or
// finishes the pod. It reports whether it changed the pod's state (which
// the status then shows): an update applied, the pod finished or killed.
func (s *Supervisor) sync() (changed bool) {
	if s.syncing || s.st.life == finished || !s.dirty {
		return false
	}
	if s.pending != nil {
		s.applyUpdate(s.pending)
		s.pending = nil
		changed = true
	}
	if s.newObjects != nil {
		s.refresh(s.newObjects)
		s.newObjects = nil
	}
	s.dirty = false
	st := s.st
	if !st.anyRunning() && (st.ending.deletion() || terminal(s.lastStatus.Phase)) {
		s.finish()
		return true
	}
	p := decide(st)
	if p.empty() {
		return changed
	}
	if p.killPod && st.life != terminating {
		st.life, st.ending = terminating, p.ending
		s.stopAppLivenessAndStartup()
		changed = true
	}
	j := &syncWork{plan: p, sb: s.sb, lastExit: map[*ctr]time.Time{}, restarts: map[*ctr]int32{}, prev: map[*ctr]*instance{},
		grace: st.pod.DeletionGracePeriodSeconds}
	for _, c := range st.all() {
		if c.cur != nil {
			j.restarts[c] = c.restarts + 1
			j.prev[c] = c.cur
		}
		if c.cur.running() {
			j.running = append(j.running, target{c, c.cur})
		}
		if e := c.lastExited(); e != nil {
			j.lastExit[c] = e.finishedAt
		}
	}
	ctx, cancel := context.WithCancel(s.tctx)
	s.syncing, s.cancelSync = true, cancel
	go func() {
		defer cancel()
		s.execute(ctx, j)
		s.send(evSyncDone{})
	}()
	return changed
}

// finish tears the pod down once nothing runs any more.
func (s *Supervisor) finish() {
	s.stopProbes(probes.Liveness, probes.Readiness, probes.Startup)
	s.discardPrepared()
	for _, c := range s.st.all() {
		if c.cur != nil && c.cur.removed != nil {
			<-c.cur.removed
		}
	}
	if s.sb != nil {
		sp := trace.Start(s.tctx, "sandbox teardown")
		err := s.o.Host.DestroySandbox(s.tctx, s.st.pod)
		sp.End()
		if err != nil {
			s.log.Error("removing the pod sandbox", "err", err)
		}
		s.sb = nil
	}
	s.st.sandbox = false
	s.st.life = finished
}

func (s *Supervisor) delete(grace *int64, reason string) {
	st := s.st
	if st.ending.deletion() || st.life == finished {
		return
	}
	st.life = terminating
	if reason != "" {
		st.ending = endDeadline
		st.reason = reason
		st.msg = "Pod was active on the node longer than the specified deadline"
		s.rec.record(nil, normal, reason, "%s", st.msg) // active_deadline.go: a Normal event
	} else {
		st.ending = endDeleted
		now := metav1.Now()
		st.pod.DeletionTimestamp = &now
		g := DeletionGrace(st.pod, grace)
		st.pod.DeletionGracePeriodSeconds = &g
	}
	// The apps' liveness and startup stop at termination; readiness and
	// the sidecars' probes go on (§5.5).
	s.stopAppLivenessAndStartup()
	if s.cancelSync != nil {
		s.cancelSync()
	}
}

// apply records one event in the pod's state.
func (s *Supervisor) apply(ev any) {
	st := s.st
	switch e := ev.(type) {
	case evSyncDone:
		s.syncing, s.cancelSync = false, nil
		s.showNet()
		return
	case evStartFailed:
		// A refused start is retried when its back-off ends, or like the
		// kubelet's pod worker after an error, 10 s later; only a container
		// that was created and failed is a change to act on now.
		s.startFailed(e)
		s.showNet()
		s.dirty = s.dirty || e.failed != nil
		return
	case evSandbox:
		if e.err != nil {
			s.rec.record(nil, warning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", e.err)
			s.wakeUp(time.Now().Add(backoffInitial))
			return
		}
	}
	s.dirty = true
	switch e := ev.(type) {
	case evSandbox:
		s.sb, st.sandbox = e.sb, true
		if st.life == creating {
			st.life = running
		}
		st.podIP, st.hostIP = e.sb.PodIP, e.sb.HostIP
		for _, w := range e.sb.Warnings {
			s.rec.record(nil, w.Type, w.Reason, "%s", w.Message)
		}
	case evStarted:
		c := e.c
		if c.cur != nil {
			e.inst.before = c.prev
			c.prev = c.cur
			c.restarts++
		}
		c.cur = e.inst
		if !e.inst.inHook {
			c.waiting = nil
		}
		c.imageRef, c.imageID = e.ref, e.id
		trace.Mark(s.tctx, "running", c.spec.Name)
		s.watch(c, e.inst)
		if !e.inst.inHook {
			s.showNet()
		}
	case evHookDone:
		if e.inst != e.c.cur || !e.inst.running() {
			return
		}
		e.inst.inHook, e.inst.before, e.c.waiting = false, nil, nil
		s.startProbes(e.c, e.inst)
		s.showNet()
	case evExited:
		s.showNet()
		i := e.inst
		i.state, i.finishedAt, i.message = instExited, e.exit.FinishedAt, e.msg
		i.exitCode = int32(e.exit.Code)
		switch {
		case e.exit.Unknown:
			i.lose()
		case e.exit.OOMKilled:
			i.reason = reasonOOMKilled
		case i.exitCode == 0:
			i.reason = reasonCompleted
		default:
			i.reason = reasonError
		}
		if e.exit.OOMKilled {
			s.rec.record(e.c, warning, "OOMKilling", "Memory cgroup out of memory: killed container %s", e.c.spec.Name)
		}
		s.log.Debug("container exited", "container", e.c.spec.Name, "exitCode", i.exitCode, "reason", i.reason)
		s.stopInstanceProbes(i)
		close(i.applied)
	case evProbe:
		if e.inst != e.c.cur || e.inst.exited() {
			return // a result about an earlier instance
		}
		switch e.kind {
		case probes.Startup:
			e.inst.startup = e.result
			if e.result == probes.Success && (st.life < terminating || e.c.role != roleApp) {
				s.startWorker(e.c, e.inst, probes.Readiness)
				s.startWorker(e.c, e.inst, probes.Liveness)
			}
		case probes.Liveness:
			e.inst.liveness = e.result
		case probes.Readiness:
			e.inst.readiness = e.result
		}
	}
}

// showNet shows the pod IP and PodReadyToStartContainers once the sandbox
// exists and the sync that made it has shown anything else: the kubelet's
// first status after the sandbox shows them together with the containers
// that sync started (after their postStart hooks), the sync's failures, or
// its end.
func (s *Supervisor) showNet() {
	if s.sb != nil && !s.st.netShown {
		s.st.netShown = true
		s.dirty = true
	}
}

// applyUpdate takes the new images of p. It runs between syncs, when no
// executor goroutine reads the spec. A terminating pod ignores updates (§5.5).
func (s *Supervisor) applyUpdate(p *corev1.Pod) {
	if s.st.life >= terminating {
		return
	}
	podspec.SetImages(&s.st.pod.Spec, &p.Spec)
}

// refresh takes objs for the pod and projects them into its volumes. It
// runs between syncs, when no executor goroutine reads the objects. A
// terminating pod's volumes are left as they are, as on the kubelet.
func (s *Supervisor) refresh(objs Objects) {
	s.o.Objects = objs
	if s.sb == nil || s.st.life >= terminating {
		return
	}
	changed, err := s.o.Host.RefreshVolumes(s.st.pod, objs)
	if len(changed) > 0 {
		s.log.Debug("volumes refreshed", "volumes", changed)
	}
	if err != nil {
		s.rec.record(nil, warning, "FailedMount", "MountVolume.SetUp failed: %v", err)
	}
}

// publishRunning hands out the running instances for Exec.
func (s *Supervisor) publishRunning() {
	m := map[string]Container{}
	for _, c := range s.st.all() {
		if c.cur.running() && c.cur.handle != nil {
			m[c.spec.Name] = c.cur.handle
		}
	}
	s.running.Store(&m)
}

// watch reports the instance's exit, then removes it, and starts its
// probes. The removal is off the pod's critical path: the next init
// container starts meanwhile; a restart of this one and the sandbox's
// teardown wait for it (removed).
func (s *Supervisor) watch(c *ctr, inst *instance) {
	go func() {
		h := inst.handle
		<-h.Done()
		exit := h.Exit()
		trace.Mark(s.tctx, "exited", c.spec.Name)
		s.send(evExited{c: c, inst: inst, exit: exit, msg: h.TerminationMessage()})
		sp := trace.Start(trace.Container(s.tctx, c.spec.Name), "remove")
		if err := h.Remove(); err != nil {
			s.log.Error("removing container", "container", c.spec.Name, "err", err)
		}
		sp.End()
		close(inst.removed)
	}()
	if !inst.inHook {
		s.startProbes(c, inst)
	}
}

// startProbes starts the probe workers of a running instance whose
// postStart hook is done: the startup probe first, if it has one.
func (s *Supervisor) startProbes(c *ctr, inst *instance) {
	switch {
	case c.role == roleInit:
	case c.spec.StartupProbe != nil && inst.startup != probes.Success:
		s.startWorker(c, inst, probes.Startup)
	default:
		s.startWorker(c, inst, probes.Readiness)
		s.startWorker(c, inst, probes.Liveness)
	}
}

func (s *Supervisor) startFailed(e evStartFailed) {
	c := e.c
	c.waiting = &waitReason{reason: e.reason, message: e.message}
	if e.failed != nil {
		if c.cur != nil {
			c.prev = c.cur
			c.restarts++
		}
		c.cur = e.failed
	}
	if e.retryAt.IsZero() {
		e.retryAt = time.Now().Add(backoffInitial)
	}
	s.wakeUp(e.retryAt)
}

// wakeUp makes the owner look again at t (the end of a back-off).
func (s *Supervisor) wakeUp(t time.Time) {
	if !s.wakeAt.IsZero() && !t.Before(s.wakeAt) && s.wakeAt.After(time.Now()) {
		return
	}
	s.wakeAt = t
	s.wake.Reset(time.Until(t))
}

// publish renders the status and hands out a new snapshot when it changed.
func (s *Supervisor) publish() {
	st := s.st.status()
	if s.lastStatus != nil && reflect.DeepEqual(*s.lastStatus, st) && s.snap.Load().DeletionTimestamp.Equal(s.st.pod.DeletionTimestamp) {
		return
	}
	sp := trace.Start(s.tctx, "status")
	s.st.prevConditions = st.Conditions
	s.st.prevPhase = st.Phase
	s.lastStatus = &st
	p := s.st.pod.DeepCopy()
	p.Status = s.st.apiView(st, &s.snap.Load().Status)
	// The running instances first: whoever sees a running container in
	// Pod() can Exec in it.
	s.publishRunning()
	s.snap.Store(p)
	if s.o.Checkpoint != nil {
		s.o.Checkpoint(s.checkpoint())
	}
	if s.o.OnStatus != nil {
		s.o.OnStatus(p)
	}
	sp.End()
}
