package daemon

import (
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/controller/deployment"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/manifest"
)

// A Deployment runs as the Deployment controller runs it: ReplicaSets
// (API objects, named by pod-template-hash) step by step toward the
// current template, decided by controller/deployment, each ReplicaSet's
// pods kept at its spec.replicas as the ReplicaSet controller keeps them.

// setsOf returns dep's ReplicaSets (d.mu held).
func (d *Daemon) setsOf(dep *appsv1.Deployment) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for k, rs := range d.replicaSets {
		if ref := metav1.GetControllerOf(rs); k.ns == dep.Namespace && ref != nil && ref.UID == dep.UID {
			out = append(out, rs)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// podsOfSet returns the pods rs controls (d.mu held).
func (d *Daemon) podsOfSet(rs *appsv1.ReplicaSet) []*podRec {
	var out []*podRec
	for k, rec := range d.pods {
		if ref := metav1.GetControllerOf(rec.pod); k.ns == rs.Namespace && ref != nil && ref.UID == rs.UID {
			out = append(out, rec)
		}
	}
	return out
}

func activeRec(rec *podRec) bool {
	return !rec.finished && !rec.deleting && rec.pod.DeletionTimestamp == nil
}

// adopt makes ReplicaSet objects for pods of dep whose ReplicaSet has none:
// the first pods of an applied Deployment (manifest made them) and those a
// daemon of an earlier version kept (d.mu held).
func (d *Daemon) adoptSets(dep *appsv1.Deployment) {
	known := map[string]bool{}
	for _, rs := range d.setsOf(dep) {
		known[string(rs.UID)] = true
	}
	for _, rec := range d.pods {
		ref := metav1.GetControllerOf(rec.pod)
		if ref == nil || known[string(ref.UID)] || !owns(dep, rec.pod) {
			continue
		}
		known[string(ref.UID)] = true
		hash := rec.pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		var n int32
		for _, r := range d.pods {
			if o := metav1.GetControllerOf(r.pod); o != nil && o.UID == ref.UID && activeRec(r) {
				n++
			}
		}
		src := dep
		if hash != manifest.TemplateHash(&dep.Spec.Template) {
			// An old template: take it from the pod.
			src = dep.DeepCopy()
			src.Spec.Template = corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: rec.pod.Labels, Annotations: rec.pod.Annotations}, Spec: rec.pod.Spec}
			delete(src.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
		}
		rev := "1"
		if r := dep.Annotations[deployment.RevisionAnnotation]; r != "" {
			rev = r
		}
		rs := deployment.NewReplicaSet(src, hash, rev, n)
		rs.Name, rs.UID = ref.Name, ref.UID
		rs.CreationTimestamp = rec.pod.CreationTimestamp
		d.putSet(rs, "ADDED")
	}
}

// putSet stores and announces a ReplicaSet (d.mu held).
func (d *Daemon) putSet(rs *appsv1.ReplicaSet, event string) {
	rs.ResourceVersion = d.nextRV()
	d.replicaSets[keyOf(rs.Namespace, rs.Name)] = rs
	d.saveObject(api.ReplicaSets, rs)
	d.emit(api.ReplicaSets, event, rs)
}

func (d *Daemon) dropSet(rs *appsv1.ReplicaSet) {
	delete(d.replicaSets, keyOf(rs.Namespace, rs.Name))
	d.forget(api.ReplicaSets, rs.Namespace, rs.Name)
	d.emit(api.ReplicaSets, "DELETED", rs) // at a new resourceVersion
}

// countSets recomputes each ReplicaSet's status from its pods: replicas
// (active pods), ready, and available (ready for minReadySeconds). It
// returns when a ready pod next becomes available (0: none waits) (d.mu
// held).
func (d *Daemon) countSets(dep *appsv1.Deployment, now time.Time) ([]*appsv1.ReplicaSet, time.Duration) {
	var next time.Duration
	sets := d.setsOf(dep)
	minReady := time.Duration(dep.Spec.MinReadySeconds) * time.Second
	for i, rs := range sets {
		st := appsv1.ReplicaSetStatus{ObservedGeneration: rs.Generation}
		for _, rec := range d.podsOfSet(rs) {
			if !activeRec(rec) {
				continue
			}
			st.Replicas++
			since, ready := readySince(rec.pod)
			if !ready {
				continue
			}
			st.ReadyReplicas++
			if wait := since.Add(minReady).Sub(now); minReady == 0 || wait <= 0 {
				st.AvailableReplicas++
			} else if next == 0 || wait < next {
				next = wait
			}
		}
		st.FullyLabeledReplicas = st.Replicas
		if !equality.Semantic.DeepEqual(st, rs.Status) {
			n := rs.DeepCopy()
			n.Status = st
			d.putSet(n, "MODIFIED")
			sets[i] = n
		}
	}
	return sets, next
}

func readySince(p *corev1.Pod) (time.Time, bool) {
	if c := podspec.Condition(&p.Status, corev1.PodReady); c != nil {
		return c.LastTransitionTime.Time, c.Status == corev1.ConditionTrue
	}
	return time.Time{}, false
}

// reconcile is one sync of a Deployment: its ReplicaSets counted, one step
// of the rollout decided and taken, each ReplicaSet's pods brought to its
// replicas, the status recomputed.
func (d *Daemon) reconcile(k key) {
	d.ctrlMu.Lock()
	defer d.ctrlMu.Unlock()
	d.mu.Lock()
	dep := d.deployments[k]
	if dep == nil {
		d.mu.Unlock()
		return
	}
	now := time.Now()
	d.adoptSets(dep)
	hash := manifest.TemplateHash(&dep.Spec.Template)
	sets, _ := d.countSets(dep, now)
	oldRunning := false
	for _, rs := range sets {
		if rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash {
			continue
		}
		for _, rec := range d.podsOfSet(rs) {
			oldRunning = oldRunning || !rec.finished
		}
	}
	plan := deployment.Sync(dep, hash, sets, oldRunning)
	changed := plan.Create != nil || len(plan.Scale) > 0
	if rs := plan.Create; rs != nil {
		rs.UID, rs.CreationTimestamp, rs.Generation = uuid.NewUUID(), metav1.NewTime(now.Truncate(time.Second)), 1
		d.putSet(rs, "ADDED")
		d.log.Info("created a ReplicaSet", "deployment", k, "replicaset", rs.Name, "replicas", *rs.Spec.Replicas)
	}
	for name, n := range plan.Scale {
		if cur := d.replicaSets[keyOf(k.ns, name)]; cur != nil {
			rs := cur.DeepCopy()
			rs.Spec.Replicas = &n
			rs.Generation++
			d.putSet(rs, "MODIFIED")
		}
	}
	for _, name := range plan.Delete {
		if rs := d.replicaSets[keyOf(k.ns, name)]; rs != nil && len(d.podsOfSet(rs)) == 0 {
			d.dropSet(rs)
		}
	}
	if cur := d.replicaSets[keyOf(k.ns, dep.Name+"-"+hash)]; cur != nil && cur.Annotations[deployment.RevisionAnnotation] != plan.Revision {
		rs := cur.DeepCopy()
		rs.Annotations[deployment.RevisionAnnotation] = plan.Revision
		d.putSet(rs, "MODIFIED")
	}
	toCreate := d.syncSets(dep)
	sets, next := d.countSets(dep, now)
	st := deployment.Status(dep, hash, sets, plan.Create != nil, now)
	if !deployment.Equal(st, dep.Status) || dep.Annotations[deployment.RevisionAnnotation] != plan.Revision {
		n := dep.DeepCopy()
		n.Status = st
		if n.Annotations == nil {
			n.Annotations = map[string]string{}
		}
		n.Annotations[deployment.RevisionAnnotation] = plan.Revision
		n.ResourceVersion = d.nextRV()
		d.deployments[k] = n
		d.saveObject(api.Deployments, n)
		d.emit(api.Deployments, "MODIFIED", n)
		dep = n
	}
	d.mu.Unlock()
	for _, rs := range toCreate {
		p, err := d.setPod(dep, rs)
		if err != nil {
			d.log.Error("making a pod for a ReplicaSet", "replicaset", rs.Name, "err", err)
			continue
		}
		if _, err := d.createPod(p); err != nil {
			d.log.Error("creating a pod for a ReplicaSet", "replicaset", rs.Name, "err", err)
		}
	}
	// A step taken may allow the next at once; a pod that becomes
	// available with time (minReadySeconds) needs a later look.
	switch {
	case changed:
		go d.reconcile(k)
	case next > 0:
		time.AfterFunc(next, func() { d.reconcile(k) })
	}
}

// syncSets is the ReplicaSet controller's part (d.mu held): it deletes the
// surplus pods of dep's ReplicaSets, in the ReplicaSet controller's order,
// and returns one ReplicaSet per pod to create.
func (d *Daemon) syncSets(dep *appsv1.Deployment) []*appsv1.ReplicaSet {
	var toCreate []*appsv1.ReplicaSet
	for _, rs := range d.setsOf(dep) {
		var active []*podRec
		for _, rec := range d.podsOfSet(rs) {
			if activeRec(rec) {
				active = append(active, rec)
			}
		}
		want := int(*rs.Spec.Replicas)
		if surplus := len(active) - want; surplus > 0 {
			sort.SliceStable(active, func(i, j int) bool { return deleteFirst(active[i].pod, active[j].pod) })
			for _, rec := range active[:surplus] {
				d.deleteRec(rec, nil)
			}
		}
		for range want - len(active) {
			toCreate = append(toCreate, rs)
		}
	}
	return toCreate
}

// setPod makes one more pod of rs: from its template, named
// <rs>-<5 random>, owned by it.
func (d *Daemon) setPod(dep *appsv1.Deployment, rs *appsv1.ReplicaSet) (*corev1.Pod, error) {
	c := dep.DeepCopy()
	c.Spec.Template = *rs.Spec.Template.DeepCopy()
	delete(c.Spec.Template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	ref := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}
	p, err := d.deploymentPod(c, &ref)
	if err != nil {
		return nil, err
	}
	// The template's hash, as the ReplicaSet has it (an adopted old
	// ReplicaSet's template is the pod's, whose hash may differ).
	p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	return p, nil
}

// deleteFirst is the ReplicaSet controller's order of pods to delete on a
// scale-down: pending before running, not ready before ready, ready for
// less time before longer, more restarts before fewer, newer before older.
func deleteFirst(a, b *corev1.Pod) bool {
	pa, pb := a.Status.Phase == corev1.PodPending, b.Status.Phase == corev1.PodPending
	if pa != pb {
		return pa
	}
	ta, ra := readySince(a)
	tb, rb := readySince(b)
	if ra != rb {
		return !ra
	}
	if ra && !ta.Equal(tb) {
		return ta.After(tb)
	}
	if na, nb := restartsOf(a), restartsOf(b); na != nb {
		return na > nb
	}
	return b.CreationTimestamp.Before(&a.CreationTimestamp)
}

func restartsOf(p *corev1.Pod) int32 {
	var n int32
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		n += cs.RestartCount
	}
	return n
}
