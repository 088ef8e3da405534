package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/controller/job"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/manifest"
)

// A Deployment's ReplicaSets and rollouts are in replicasets.go.

// owns says whether pod p belongs to Deployment dep: created by one of
// its ReplicaSets and selected by it.
func owns(dep *appsv1.Deployment, p *corev1.Pod) bool {
	if p.Namespace != dep.Namespace {
		return false
	}
	ref := metav1.GetControllerOf(p)
	if ref == nil || ref.Kind != "ReplicaSet" || !strings.HasPrefix(ref.Name, dep.Name+"-") {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels))
}

// deploymentOf is the Deployment that owns p, if any (d.mu held).
func (d *Daemon) deploymentOf(p *corev1.Pod) *key {
	for k, dep := range d.deployments {
		if owns(dep, p) {
			return &k
		}
	}
	return nil
}

func podReady(p *corev1.Pod) bool { return podspec.Ready(p) }

func replicas(dep *appsv1.Deployment) int32 {
	if dep.Spec.Replicas == nil {
		return 1
	}
	return *dep.Spec.Replicas
}

// refreshDeployments has the namespace's Deployments reconciled after a
// change of one of their pods (d.mu held): their ReplicaSets' counts, the
// next rollout step and their status follow from it.
func (d *Daemon) refreshDeployments(ns string) {
	for k := range d.deployments {
		if k.ns == ns {
			go d.reconcile(k)
		}
	}
}

// deploymentPod makes one more pod of dep the way manifest makes its first
// ones (named <rs>-<5 random>, defaulted, validated against the stored
// ConfigMaps and Secrets), owned by ref when its ReplicaSet is known.
func (d *Daemon) deploymentPod(dep *appsv1.Deployment, ref *metav1.OwnerReference) (*corev1.Pod, error) {
	one := int32(1)
	c := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: dep.Name, Namespace: dep.Namespace, Labels: dep.Labels, Annotations: dep.Annotations},
		Spec:       *dep.Spec.DeepCopy(),
	}
	c.Spec.Replicas, c.Spec.Paused = &one, false
	data, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	b, err := d.parse("deployment/"+dep.Name, data)
	if err != nil {
		return nil, err
	}
	if len(b.Pods) != 1 {
		return nil, fmt.Errorf("expected one pod of deployment %s, got %d", dep.Name, len(b.Pods))
	}
	p := b.Pods[0].Pod
	if ref != nil {
		p.OwnerReferences = []metav1.OwnerReference{*ref}
	}
	return p, nil
}

// deleteDeployment removes a Deployment and deletes its pods.
func (d *Daemon) deleteDeployment(ns, name string) (*appsv1.Deployment, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := keyOf(ns, name)
	dep := d.deployments[k]
	if dep == nil {
		return nil, notFound(api.Deployments, name)
	}
	delete(d.deployments, k)
	d.forget(api.Deployments, ns, name)
	gone := dep.DeepCopy()
	now := metav1.Now()
	gone.DeletionTimestamp = &now
	d.emit(api.Deployments, "DELETED", gone) // at a new resourceVersion
	for _, rec := range d.pods {
		if owns(dep, rec.pod) {
			d.deleteRec(rec, nil)
		}
	}
	for _, rs := range d.setsOf(dep) {
		d.dropSet(rs)
	}
	return gone, nil
}

// jobRec is a Job and its controller.
type jobRec struct {
	// guarded by d.mu:
	job      *batchv1.Job
	deleting bool
	running  bool // a controller runs
	cancel   context.CancelFunc
	resume   chan struct{} // closed to un-suspend the running controller
	resumed  bool
}

// ownedByJob says whether p is a pod of job.
func ownedByJob(job *batchv1.Job, p *corev1.Pod) bool {
	ref := metav1.GetControllerOf(p)
	return ref != nil && ref.Kind == "Job" && ref.UID == job.UID
}

func jobFinished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// startJob runs rec's Job controller. initial are its first pods: new
// ones from the manifest, or after a daemon restart the pods still running
// and those that finished while the daemon was down (not counted yet).
// Its context ends only when the Job is deleted: a daemon that stops
// leaves the Job's pods running.
func (d *Daemon) startJob(rec *jobRec, initial []*corev1.Pod) {
	ctx, cancel := context.WithCancel(context.Background())
	d.mu.Lock()
	rec.cancel, rec.running = cancel, true
	rec.resume, rec.resumed = make(chan struct{}), false
	j := rec.job
	d.mu.Unlock()
	jc := &job.Controller{
		Job:      j,
		Pods:     initial,
		NewPod:   func(ix int) *corev1.Pod { return manifest.NewJobPod(j, ix) },
		Start:    d.jobPod,
		OnStatus: func(j *batchv1.Job) { d.jobStatus(rec, j) },
		Resume:   rec.resume,
	}
	go func() {
		final := jc.Run(ctx)
		d.jobStatus(rec, final)
		d.jobEnded(rec)
	}()
}

// jobPod runs a pod for a Job controller, or hands it the pod it already
// has (after a restart).
func (d *Daemon) jobPod(p *corev1.Pod) job.PodHandle {
	d.mu.Lock()
	rec := d.pods[keyOf(p.Namespace, p.Name)]
	if rec != nil {
		rec.uncounted = false
	}
	d.mu.Unlock()
	if rec != nil {
		return podHandle{d, rec}
	}
	rec, err := d.createPod(p)
	if err != nil {
		// Another pod took the name: this one failed to start.
		d.log.Error("creating a Job's pod", "pod", p.Namespace+"/"+p.Name, "err", err)
		p = p.DeepCopy()
		p.Status.Phase, p.Status.Reason, p.Status.Message = corev1.PodFailed, "CreateFailed", err.Error()
		rec = newPodRec(p, "")
		rec.finished = true
		close(rec.gone)
	}
	return podHandle{d, rec}
}

// jobStatus records a Job's status from its controller.
func (d *Daemon) jobStatus(rec *jobRec, j *batchv1.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := rec.job.DeepCopy()
	start := n.Status.StartTime
	n.Status = *j.Status.DeepCopy()
	if start != nil { // a resumed controller started again; the Job did not
		n.Status.StartTime = start
	}
	if equality.Semantic.DeepEqual(n.Status, rec.job.Status) {
		return
	}
	n.ResourceVersion = d.nextRV()
	rec.job = n
	if d.jobs[keyOf(n.Namespace, n.Name)] == rec {
		d.saveObject(api.Jobs, n)
		d.emit(api.Jobs, "MODIFIED", n)
	}
}

// jobEnded is called when a Job's controller returned: the Job completed
// or failed, or it was deleted (then it goes, with its pods).
func (d *Daemon) jobEnded(rec *jobRec) {
	d.mu.Lock()
	defer d.mu.Unlock()
	rec.running = false
	if rec.deleting {
		d.removeJob(rec)
		return
	}
	d.expireJob(rec)
}

// unsuspend resumes a suspended Job whose apply set spec.suspend to false
// (d.mu held).
func (d *Daemon) unsuspend(rec *jobRec) {
	j := rec.job.DeepCopy()
	j.Spec.Suspend = ptrTo(false)
	j.ResourceVersion = d.nextRV()
	rec.job = j
	d.saveObject(api.Jobs, j)
	d.emit(api.Jobs, "MODIFIED", j)
	if rec.running && !rec.resumed {
		rec.resumed = true
		close(rec.resume)
	}
}

// jobFinishedAt is when a finished Job got its Complete or Failed condition.
func jobFinishedAt(j *batchv1.Job) (time.Time, bool) {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// expireJob deletes a finished Job with ttlSecondsAfterFinished, and its
// pods, once the TTL has passed since it finished, as the TTL-after-finished
// controller does (d.mu held).
func (d *Daemon) expireJob(rec *jobRec) {
	ttl := rec.job.Spec.TTLSecondsAfterFinished
	at, finished := jobFinishedAt(rec.job)
	if ttl == nil || !finished {
		return
	}
	wait := time.Until(at.Add(time.Duration(*ttl) * time.Second))
	time.AfterFunc(max(0, wait), func() {
		d.mu.Lock()
		j := rec.job
		current := d.jobs[keyOf(j.Namespace, j.Name)] == rec
		d.mu.Unlock()
		if current {
			d.log.Info("deleting a finished Job after its ttlSecondsAfterFinished", "job", keyOf(j.Namespace, j.Name), "ttl", *ttl)
			if _, err := d.deleteJob(j.Namespace, j.Name); err != nil {
				d.log.Warn("deleting an expired Job", "job", keyOf(j.Namespace, j.Name), "err", err)
			}
		}
	})
}

// removeJob forgets a Job and deletes its pods (d.mu held).
func (d *Daemon) removeJob(rec *jobRec) {
	j := rec.job
	k := keyOf(j.Namespace, j.Name)
	if d.jobs[k] == rec {
		delete(d.jobs, k)
		d.forget(api.Jobs, k.ns, k.name)
		d.emit(api.Jobs, "DELETED", j)
	}
	for _, p := range d.pods {
		if ownedByJob(j, p.pod) {
			d.deleteRec(p, nil)
		}
	}
}

// deleteJob deletes a Job: its controller deletes the running pods, then
// the Job goes with the rest of its pods.
func (d *Daemon) deleteJob(ns, name string) (*batchv1.Job, error) {
	d.mu.Lock()
	rec := d.jobs[keyOf(ns, name)]
	if rec == nil {
		d.mu.Unlock()
		return nil, notFound(api.Jobs, name)
	}
	if !rec.deleting {
		rec.deleting = true
		j := rec.job.DeepCopy()
		now := metav1.Now()
		j.DeletionTimestamp = &now
		j.ResourceVersion = d.nextRV()
		rec.job = j
		d.saveObject(api.Jobs, j)
		d.emit(api.Jobs, "MODIFIED", j)
	}
	j, cancel := rec.job, rec.cancel
	if !rec.running {
		d.removeJob(rec)
		cancel = nil
	}
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return j, nil
}

func ptrTo[T any](v T) *T { return &v }
