package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/controller/job"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/shim"
)

// podRec is the daemon's record of one pod. Its shim is the truth about
// the running pod; the record keeps what the API shows and what the user
// asked for, and one owner goroutine (runPod) talks to the shim.
type podRec struct {
	dir  shim.Dir      // run directory, <run-root>/pods/<uid>
	gone chan struct{} // closed once finished
	kick chan struct{} // the wanted state changed: the owner tells the shim

	// guarded by d.mu:
	pod       *corev1.Pod // the API object: spec as applied, status as reported
	events    []pod.Event
	eventRVs  map[string]string // an event's name → the resourceVersion of its last change
	loadedRV  string            // the resourceVersion of the events loaded at the daemon's start
	finished  bool              // the shim ended; pod holds the final status
	deleting  bool              // deletion requested, with grace
	grace     *int64            //
	uncounted bool              // finished while the daemon was down: its Job has yet to count it
	owned     bool              // an owner goroutine runs
	shimPod   *corev1.Pod       // the pod as the shim last reported it
	sentPod   *corev1.Pod       // the pod last sent to this shim process as an update
	sentDel   bool              // the deletion was sent to this shim process
	objsStale bool              // the namespace's ConfigMaps or Secrets changed since the shim was told
	shimGen   *shimGen          // the shim process the owner follows now, or waits for
}

// shimGen is one shim process as the owner goroutine sees it: up closes
// once it answers, down once the owner lost it (it died, or the pod ended).
type shimGen struct{ up, down chan struct{} }

func newShimGen() *shimGen { return &shimGen{up: make(chan struct{}), down: make(chan struct{})} }

func newPodRec(p *corev1.Pod, dir shim.Dir) *podRec {
	return &podRec{pod: p, dir: dir, gone: make(chan struct{}), kick: make(chan struct{}, 1), shimGen: newShimGen()}
}

func (r *podRec) key() key { return keyOf(r.pod.Namespace, r.pod.Name) }

func (d *Daemon) podDir(uid string) shim.Dir { return shim.DirOf(d.cfg.Node.RunRoot, uid) }

// createPod records a new pod and starts its shim. The pod is as manifest
// made it (named, defaulted, validated).
func (d *Daemon) createPod(p *corev1.Pod) (*podRec, error) {
	p = p.DeepCopy()
	p.APIVersion, p.Kind = "v1", "Pod"
	if p.Spec.NodeName == "" {
		p.Spec.NodeName = pod.NodeName()
	}
	rec := newPodRec(p, d.podDir(string(p.UID)))
	d.mu.Lock()
	k := rec.key()
	if _, ok := d.pods[k]; ok {
		d.mu.Unlock()
		return nil, apierrors.NewAlreadyExists(api.Pods.GroupResource(), p.Name)
	}
	p.ResourceVersion = d.nextRV()
	d.pods[k] = rec
	d.savePod(rec)
	d.emit(api.Pods, "ADDED", p)
	d.mu.Unlock()
	d.log.Info("pod created", "pod", k, "podUID", p.UID)
	d.own(rec)
	return rec, nil
}

// own starts the owner goroutine of rec unless one runs.
func (d *Daemon) own(rec *podRec) {
	d.mu.Lock()
	start := !rec.owned && !rec.finished
	rec.owned = true
	d.mu.Unlock()
	if start {
		go d.runPod(rec)
	}
}

// Back-off of restarting a shim that died: the first restart is quick,
// a shim that keeps dying is restarted less and less often.
const (
	shimRestartInitial = 200 * time.Millisecond
	shimRestartMax     = 30 * time.Second
	shimStable         = time.Minute      // running this long resets the back-off
	shimSpawnAttempts  = 5                // failed spawns in a row before the pod is given up
	shimExitLimit      = 10 * time.Second // a finished shim's exit, awaited before the pod is gone
)

// runPod is the owner of one pod: it starts its shim (or finds it
// running), follows its state, passes deletions and updates on, restarts
// the shim in restore mode if it dies, and records the final state once
// the pod finished.
func (d *Daemon) runPod(rec *podRec) {
	log := d.log.With("pod", rec.key(), "podUID", rec.pod.UID)
	delay := shimRestartInitial
	failures := 0
	for {
		if final, err := rec.dir.ReadFinal(); err == nil {
			if !rec.dir.WaitExited(shimExitLimit) {
				log.Warn("the pod shim wrote its final state but has not exited", "after", shimExitLimit)
			}
			d.podFinished(rec, final)
			return
		}
		sp := trace.Start(trace.With(context.Background(), d.trace, rec.key().String()), "shim spawn")
		started, err := d.spawnShim(rec)
		sp.End()
		if err != nil {
			failures++
			log.Error("starting the pod shim", "err", err, "attempt", failures)
			if failures >= shimSpawnAttempts || d.isDeleting(rec) {
				d.abandon(rec, err)
				return
			}
			time.Sleep(delay)
			delay = min(2*delay, shimRestartMax)
			continue
		}
		failures = 0
		if started {
			log.Debug("pod shim started")
		}
		t0 := time.Now()
		if err := d.follow(rec); err != nil {
			log.Warn("lost the pod shim", "err", err)
		}
		if time.Since(t0) > shimStable {
			delay = shimRestartInitial
		}
		if rec.dir.Finished() {
			continue // finished: recorded on the next turn
		}
		if rec.dir.Alive() {
			time.Sleep(shimRestartInitial) // alive but unreachable for a moment
			continue
		}
		log.Warn("the pod shim died; starting a new one to take the pod over", "after", delay, "shimLog", rec.dir.LogTail(2048))
		time.Sleep(delay)
		delay = min(2*delay, shimRestartMax)
	}
}

// spawnShim starts a detached shim for rec unless one is alive. The shim
// gets the liveness lock as fd 3, its own session (no terminal's signals)
// and its output in shim.log; the daemon is never its container's parent.
func (d *Daemon) spawnShim(rec *podRec) (started bool, retErr error) {
	if err := os.MkdirAll(string(rec.dir), 0o700); err != nil {
		return false, err
	}
	lock, ok, err := rec.dir.Lock()
	if err != nil || !ok {
		return false, err
	}
	defer lock.Close()
	if err := rec.dir.WriteSpec(d.shimSpec(rec)); err != nil {
		return false, err
	}
	out, err := rec.dir.OpenLog()
	if err != nil {
		return false, err
	}
	defer out.Close()
	level := d.cfg.LogLevel
	if level == "" {
		level = "info"
	}
	cmd := exec.Command(d.cfg.Exe, "--log-level", level, "shim", "--dir", string(rec.dir))
	cmd.Stdout, cmd.Stderr = out, out
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		// One P: a shim mostly waits, and each P's caches and each extra
		// thread's stacks cost it ~0.5 MB (RssAnon 5.3 -> 4.8 MB measured).
		// It has to be in the environment from the process's start.
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	cmd.ExtraFiles = []*os.File{lock}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("starting %s shim: %w", d.cfg.Exe, err)
	}
	go func() { _ = cmd.Wait() }() // reap it; a restarted daemon is not its parent
	return true, nil
}

// shimSpec is what a new shim of rec gets: the pod and its namespace's
// ConfigMaps and Secrets as they are now.
func (d *Daemon) shimSpec(rec *podRec) *shim.Spec {
	d.mu.Lock()
	defer d.mu.Unlock()
	o := d.namespaceObjects(rec.pod.Namespace)
	return &shim.Spec{Pod: rec.pod, Node: d.cfg.Node, ConfigMaps: o.ConfigMaps, Secrets: o.Secrets}
}

// follow connects to rec's shim and follows its state until the stream
// ends (the pod finished, or the shim died).
func (d *Daemon) follow(rec *podRec) error {
	sc := rec.dir.Connect()
	defer sc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A new shim opens its socket once it has the pod in hand: milliseconds.
	sp := trace.Start(trace.With(ctx, d.trace, rec.key().String()), "shim answers")
	deadline := time.Now().Add(time.Minute)
	for {
		err := sc.Ping(ctx)
		if err == nil {
			break
		}
		if !rec.dir.Alive() {
			return fmt.Errorf("the shim is not running: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the shim does not answer: %w", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	sp.End()
	d.mu.Lock()
	rec.sentPod, rec.sentDel = nil, false // a new shim process knows nothing yet
	gen := rec.shimGen
	d.mu.Unlock()
	close(gen.up)
	defer func() {
		d.mu.Lock()
		rec.shimGen = newShimGen()
		d.mu.Unlock()
		close(gen.down)
	}()

	errc := make(chan error, 1)
	go func() { errc <- sc.Watch(ctx, func(st *shim.State) { d.updatePod(rec, st) }) }()
	d.sendWanted(ctx, rec, sc)
	for {
		select {
		case <-rec.kick:
			d.sendWanted(ctx, rec, sc)
		case err := <-errc:
			return err
		}
	}
}

// sendWanted tells the shim what the user asked for that it does not
// know yet: the deletion, or images other than those it reported, or the
// namespace's ConfigMaps and Secrets once they changed.
func (d *Daemon) sendWanted(ctx context.Context, rec *podRec, sc *shim.Client) {
	d.mu.Lock()
	del := rec.deleting && !rec.sentDel
	grace := rec.grace
	want := rec.pod
	update := !rec.deleting && want != rec.sentPod && rec.shimPod != nil && imagesDiffer(want, rec.shimPod)
	var objs *shim.Objects
	if !rec.deleting && rec.objsStale {
		objs = d.namespaceObjects(want.Namespace)
		rec.objsStale = false
	}
	d.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch {
	case del:
		if err = sc.Delete(ctx, grace); err == nil {
			d.mu.Lock()
			rec.sentDel = true
			d.mu.Unlock()
		}
	case update:
		if err = sc.Update(ctx, want); err == nil {
			d.mu.Lock()
			rec.sentPod = want
			d.mu.Unlock()
		}
	}
	if err != nil {
		d.log.Warn("telling the pod shim", "pod", rec.key(), "err", err)
	}
	if objs != nil && !del {
		if err := sc.UpdateObjects(ctx, objs); err != nil {
			d.log.Warn("telling the pod shim its namespace's ConfigMaps and Secrets", "pod", rec.key(), "err", err)
			d.mu.Lock()
			rec.objsStale = true // sent again at the next change, or to its next shim
			d.mu.Unlock()
		}
	}
}

// namespaceObjects is every ConfigMap and Secret of ns (d.mu held).
func (d *Daemon) namespaceObjects(ns string) *shim.Objects {
	o := &shim.Objects{}
	for k, c := range d.configMaps {
		if k.ns == ns {
			o.ConfigMaps = append(o.ConfigMaps, c)
		}
	}
	for k, c := range d.secrets {
		if k.ns == ns {
			o.Secrets = append(o.Secrets, c)
		}
	}
	return o
}

// objectsChanged has every running pod of ns told of its namespace's
// ConfigMaps and Secrets, which changed (d.mu held): the kubelet refreshes
// a running pod's configMap, secret and projected volumes.
func (d *Daemon) objectsChanged(ns string) {
	for _, rec := range d.pods {
		if rec.pod.Namespace != ns || rec.finished {
			continue
		}
		rec.objsStale = true
		select {
		case rec.kick <- struct{}{}:
		default:
		}
	}
}

func imagesDiffer(a, b *corev1.Pod) bool {
	img := func(p *corev1.Pod) map[string]string {
		m := map[string]string{}
		for _, c := range podspec.Containers(&p.Spec) {
			m[c.Name] = c.Image
		}
		return m
	}
	ia, ib := img(a), img(b)
	for n, i := range ia {
		if ib[n] != i {
			return true
		}
	}
	return false
}

// withStatus is the API object: what was applied, with the shim's status
// and deletion.
func withStatus(want, reported *corev1.Pod) *corev1.Pod {
	p := want.DeepCopy()
	p.Status = *reported.Status.DeepCopy()
	if reported.DeletionTimestamp != nil {
		p.DeletionTimestamp = reported.DeletionTimestamp.DeepCopy()
		p.DeletionGracePeriodSeconds = reported.DeletionGracePeriodSeconds
	}
	return p
}

// updatePod takes a state the shim reported.
func (d *Daemon) updatePod(rec *podRec, st *shim.State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rec.finished || st.Pod == nil {
		return
	}
	rec.shimPod = st.Pod
	d.setEvents(rec, st.Events)
	if !rec.deleting && rec.sentPod != rec.pod && imagesDiffer(rec.pod, st.Pod) {
		select { // the shim runs other images than applied: tell it
		case rec.kick <- struct{}{}:
		default:
		}
	}
	p := withStatus(rec.pod, st.Pod)
	if equality.Semantic.DeepEqual(p.Status, rec.pod.Status) && p.DeletionTimestamp.Equal(rec.pod.DeletionTimestamp) {
		return
	}
	p.ResourceVersion = d.nextRV()
	rec.pod = p
	d.emit(api.Pods, "MODIFIED", p)
	d.refreshDeployments(p.Namespace)
}

// podFinished records a pod's final state: kept until deleted, or gone
// now if its deletion was asked for.
func (d *Daemon) podFinished(rec *podRec, st *shim.State) {
	d.mu.Lock()
	if rec.finished {
		d.mu.Unlock()
		return
	}
	p := withStatus(rec.pod, st.Pod)
	p.ResourceVersion = d.nextRV()
	rec.pod, rec.finished, rec.shimPod = p, true, nil
	d.setEvents(rec, st.Events)
	k := rec.key()
	if rec.deleting {
		if d.pods[k] == rec {
			delete(d.pods, k)
			d.dropEvents(rec)
			d.forget(api.Pods, k.ns, k.name)
			go d.dropLogs(p)
		}
		d.emit(api.Pods, "DELETED", p)
	} else {
		d.savePod(rec)
		d.emit(api.Pods, "MODIFIED", p)
	}
	d.refreshDeployments(p.Namespace)
	owner := d.deploymentOf(p)
	close(rec.gone)
	d.mu.Unlock()
	d.log.Info("pod finished", "pod", k, "phase", p.Status.Phase, "deleted", rec.deleting)
	if err := os.RemoveAll(string(rec.dir)); err != nil {
		d.log.Warn("removing the pod's run directory", "pod", k, "err", err)
	}
	if owner != nil {
		go d.reconcile(*owner)
	}
}

// abandon ends a pod whose shim cannot be started: what may exist of it
// is removed and it is reported Failed.
func (d *Daemon) abandon(rec *podRec, cause error) {
	d.mu.Lock()
	p := rec.pod.DeepCopy()
	d.mu.Unlock()
	if err := d.node.DestroySandbox(context.Background(), p); err != nil {
		d.log.Error("removing what is left of the pod", "pod", rec.key(), "err", err)
	}
	p.Status.Phase = corev1.PodFailed
	p.Status.Reason = "ShimFailed"
	p.Status.Message = fmt.Sprintf("podrun could not start the pod's shim: %v", cause)
	d.podFinished(rec, &shim.State{Pod: p, Final: true})
}

func (d *Daemon) isDeleting(rec *podRec) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return rec.deleting
}

// deletePod starts a pod's deletion. A running pod is terminated the
// kubelet's way (ordered, within grace) and disappears once done; a
// finished pod disappears now.
func (d *Daemon) deletePod(ns, name string, grace *int64) (*corev1.Pod, error) {
	d.mu.Lock()
	rec := d.pods[keyOf(ns, name)]
	if rec == nil {
		d.mu.Unlock()
		return nil, apierrors.NewNotFound(api.Pods.GroupResource(), name)
	}
	p := d.deleteRec(rec, grace)
	owner := d.deploymentOf(p)
	d.mu.Unlock()
	if owner != nil && rec.finished {
		go d.reconcile(*owner)
	}
	return p, nil
}

// deleteRec is deletePod of a record (d.mu held); it returns the pod as
// it is now.
func (d *Daemon) deleteRec(rec *podRec, grace *int64) *corev1.Pod {
	k := rec.key()
	if rec.finished {
		if d.pods[k] == rec {
			delete(d.pods, k)
			d.dropEvents(rec)
			d.forget(api.Pods, k.ns, k.name)
			d.emit(api.Pods, "DELETED", rec.pod)
			go d.dropLogs(rec.pod)
		}
		return rec.pod
	}
	if rec.deleting {
		return rec.pod // the supervisor's budget only shrinks on its own
	}
	if grace != nil && *grace < 0 {
		grace = nil
	}
	rec.deleting, rec.grace = true, grace
	p := rec.pod.DeepCopy()
	now := metav1.Now()
	g := pod.DeletionGrace(p, grace)
	p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &g
	d.replacePod(rec, p)
	d.log.Info("pod deletion requested", "pod", k, "grace", g)
	return p
}

// dropLogs removes a deleted pod's logs, as the kubelet does once the
// pod is gone.
func (d *Daemon) dropLogs(p *corev1.Pod) {
	if err := os.RemoveAll(d.node.LogDir(p)); err != nil {
		d.log.Warn("removing a deleted pod's logs", "pod", p.Namespace+"/"+p.Name, "err", err)
	}
}

// podHandle is a pod of the daemon as job.Controller sees it.
type podHandle struct {
	d   *Daemon
	rec *podRec
}

func (h podHandle) Pod() *corev1.Pod {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	return h.rec.pod
}

func (h podHandle) Done() <-chan struct{} { return h.rec.gone }

func (h podHandle) Delete(grace *int64) {
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	h.d.deleteRec(h.rec, grace)
}

var _ job.PodHandle = podHandle{}

// replacePod records a new version of rec's pod (d.mu held): stored,
// announced to watchers, and the owner woken to pass it on to the shim.
func (d *Daemon) replacePod(rec *podRec, p *corev1.Pod) {
	p.ResourceVersion = d.nextRV()
	rec.pod = p
	d.savePod(rec)
	d.emit(api.Pods, "MODIFIED", p)
	select {
	case rec.kick <- struct{}{}:
	default:
	}
}
