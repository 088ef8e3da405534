package daemon

import (
	"context"
	"os"

	"github.com/podrun/podrun/shim"
	corev1 "k8s.io/api/core/v1"
)

// recover takes the pods over after a (re)start. Every run directory is a
// pod some shim ran: a live shim is followed again; a shim that died is
// replaced by one that restores the pod from its checkpoint (or, if it
// finished meanwhile, its final state is recorded); a directory of a pod
// the daemon no longer knows is cleaned away. Pods the store has but no
// run directory (the machine restarted) start again. Then what dead pods
// left in the kernel is collected, and the controllers resume.
func (d *Daemon) recover(ctx context.Context) {
	byUID := map[string]*podRec{}
	d.mu.Lock()
	for _, rec := range d.pods {
		byUID[string(rec.pod.UID)] = rec
	}
	d.mu.Unlock()

	entries, err := os.ReadDir(shim.PodsDir(d.cfg.Node.RunRoot))
	if err != nil {
		d.log.Error("listing the pods' run directories", "err", err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		uid := e.Name()
		dir := shim.DirOf(d.cfg.Node.RunRoot, uid)
		if !e.IsDir() {
			continue
		}
		seen[uid] = true
		rec := byUID[uid]
		live := dir.Alive()
		switch {
		case rec != nil && !rec.finished:
			if dir.Finished() {
				d.mu.Lock()
				rec.uncounted = true // finished while the daemon was down
				d.mu.Unlock()
			}
			d.log.Info("taking over a pod", "pod", rec.key(), "shimAlive", live)
			d.own(rec)
		case live:
			// A shim of a pod the store lost, or a pod another process
			// (podrun run) holds: follow the former, leave the latter.
			spec, err := dir.ReadSpec()
			if err != nil {
				continue
			}
			d.adopt(spec.Pod, dir)
		default:
			d.collect(dir)
		}
	}
	d.mu.Lock()
	var restart []*podRec
	for uid, rec := range byUID {
		if !seen[uid] && !rec.finished {
			restart = append(restart, rec)
		}
	}
	d.mu.Unlock()
	for _, rec := range restart {
		// Its run directory is gone (a reboot): nothing of it runs any more.
		d.log.Info("starting a pod again after its state was lost", "pod", rec.key())
		d.own(rec)
	}

	go func() {
		if err := d.gc(context.WithoutCancel(ctx)); err != nil {
			d.log.Warn("collecting what dead pods left", "err", err)
		}
	}()

	d.mu.Lock()
	var deps []key
	for k := range d.deployments {
		deps = append(deps, k)
	}
	type resume struct {
		rec  *jobRec
		pods []*corev1.Pod
	}
	var jobs []resume
	for _, jr := range d.jobs {
		if jobFinished(jr.job) && !jr.deleting {
			d.expireJob(jr)
			continue
		}
		// Its pods still running, and those that finished unseen.
		var pods []*corev1.Pod
		for _, rec := range d.pods {
			if ownedByJob(jr.job, rec.pod) && (!rec.finished || rec.uncounted) {
				pods = append(pods, rec.pod)
			}
		}
		jobs = append(jobs, resume{jr, pods})
	}
	d.mu.Unlock()
	for _, k := range deps {
		go d.reconcile(k)
	}
	for _, j := range jobs {
		d.resumeJob(j.rec, j.pods)
	}
}

// resumeJob restarts a Job's controller after a daemon restart; a Job
// whose deletion was under way is deleted.
func (d *Daemon) resumeJob(rec *jobRec, pods []*corev1.Pod) {
	d.mu.Lock()
	deleting, job := rec.deleting, rec.job
	d.mu.Unlock()
	if deleting {
		d.mu.Lock()
		d.removeJob(rec)
		d.mu.Unlock()
		return
	}
	// Running pods first: the controller starts at most parallelism of them.
	var first, rest []*corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			rest = append(rest, p)
		} else {
			first = append(first, p)
		}
	}
	d.log.Info("resuming a Job", "job", keyOf(job.Namespace, job.Name), "pods", len(pods))
	d.startJob(rec, append(first, rest...))
}

// adopt follows a live shim whose pod the store does not have.
func (d *Daemon) adopt(p *corev1.Pod, dir shim.Dir) {
	rec := newPodRec(p.DeepCopy(), dir)
	d.mu.Lock()
	k := rec.key()
	if d.pods[k] != nil {
		d.mu.Unlock()
		d.log.Warn("a shim runs a pod whose name another pod has; leaving it alone", "pod", k, "dir", dir)
		return
	}
	rec.pod.ResourceVersion = d.nextRV()
	d.pods[k] = rec
	d.savePod(rec)
	d.mu.Unlock()
	d.log.Info("adopting a running pod the store did not know", "pod", k)
	d.own(rec)
}

// collect removes the run directory of a dead pod the daemon does not
// know any more; gc removes the rest of it.
func (d *Daemon) collect(dir shim.Dir) {
	d.log.Info("removing what a dead pod left", "dir", dir)
	if err := os.RemoveAll(string(dir)); err != nil {
		d.log.Warn("removing a dead pod's run directory", "dir", dir, "err", err)
	}
}

// gc removes what belongs to no live pod across the node (node.Node.GC:
// containers, sandboxes, root filesystems, volumes, network, cgroups),
// sparing the pods the daemon runs: their shim may be about to restore
// them.
func (d *Daemon) gc(ctx context.Context) error {
	return d.node.GC(ctx, func(uid string) bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, rec := range d.pods {
			if string(rec.pod.UID) == uid && !rec.finished {
				return true
			}
		}
		return false
	})
}
