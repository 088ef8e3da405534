// Package deployment holds the pure decisions of kube-controller-manager's
// Deployment controller (v1.34): which ReplicaSet is new, how far a
// RollingUpdate or Recreate rollout may scale each ReplicaSet at this
// step, which old ReplicaSets revisionHistoryLimit removes, the revision
// annotations and the Deployment's status and conditions. The daemon keeps
// the ReplicaSets and their pods and calls Sync after every change; no
// function here touches a pod.
package deployment

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The annotations the controller sets.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
)

// Plan is one step of a Deployment's reconciliation.
type Plan struct {
	// Create is a new ReplicaSet to create (its spec.replicas set), nil if
	// none.
	Create *appsv1.ReplicaSet
	// Scale gives ReplicaSets (by name) a new spec.replicas.
	Scale map[string]int32
	// Delete names old ReplicaSets beyond revisionHistoryLimit.
	Delete []string
	// Revision is the revision annotation of the Deployment and of its
	// new ReplicaSet.
	Revision string
}

// Sync decides one step for Deployment d whose pod template hashes to hash,
// given its ReplicaSets (status counted from their pods) and whether any
// pod of an old ReplicaSet has not terminated yet (for Recreate).
func Sync(d *appsv1.Deployment, hash string, sets []*appsv1.ReplicaSet, oldPodsRunning bool) Plan {
	p := Plan{Scale: map[string]int32{}}
	newRS, old := split(d, hash, sets)
	maxRev := int64(0)
	for _, rs := range old {
		maxRev = max(maxRev, Revision(rs))
	}
	// The new ReplicaSet's revision is above every old one's (a template
	// rolled back to gets a new revision).
	rev := maxRev + 1
	if newRS != nil && Revision(newRS) > maxRev {
		rev = Revision(newRS)
	}
	p.Revision = strconv.FormatInt(rev, 10)
	want := replicas(d)
	if d.Spec.Paused {
		// A paused Deployment only scales: no new ReplicaSet, no rollout.
		if newRS != nil && *newRS.Spec.Replicas != want && len(active(old)) == 0 {
			p.Scale[newRS.Name] = want
		}
		return p
	}
	switch d.Spec.Strategy.Type {
	case appsv1.RecreateDeploymentStrategyType:
		p.recreate(d, hash, newRS, old, oldPodsRunning)
	default:
		p.rolling(d, hash, newRS, old)
	}
	if newRS != nil && len(p.Scale) == 0 && p.Create == nil && complete(d, newRS, old) {
		p.Delete = cleanup(d, old)
	}
	return p
}

// split finds the ReplicaSet of the current template (by its
// pod-template-hash) and the others, oldest first.
func split(d *appsv1.Deployment, hash string, sets []*appsv1.ReplicaSet) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	var newRS *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	for _, rs := range sets {
		if rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hash && newRS == nil {
			newRS = rs
		} else {
			old = append(old, rs)
		}
	}
	sort.SliceStable(old, func(i, j int) bool { return old[i].CreationTimestamp.Before(&old[j].CreationTimestamp) })
	return newRS, old
}

func active(sets []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range sets {
		if *rs.Spec.Replicas > 0 {
			out = append(out, rs)
		}
	}
	return out
}

// NewReplicaSet is the ReplicaSet the controller creates for d's current
// template: named <deployment>-<hash>, the hash in its labels, selector
// and template, owned by d, with the revision and replica annotations.
func NewReplicaSet(d *appsv1.Deployment, hash, revision string, replicas int32) *appsv1.ReplicaSet {
	t := d.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	sel := d.Spec.Selector.DeepCopy()
	if sel.MatchLabels == nil {
		sel.MatchLabels = map[string]string{}
	}
	sel.MatchLabels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	ann := map[string]string{}
	for k, v := range d.Annotations {
		if k != corev1.LastAppliedConfigAnnotation && k != RevisionAnnotation {
			ann[k] = v
		}
	}
	ann[RevisionAnnotation] = revision
	ann[DesiredReplicasAnnotation] = strconv.Itoa(int(*d.Spec.Replicas))
	ann[MaxReplicasAnnotation] = strconv.Itoa(int(*d.Spec.Replicas + maxSurge(d)))
	yes := true
	return &appsv1.ReplicaSet{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "ReplicaSet"},
		ObjectMeta: metav1.ObjectMeta{
			Name: d.Name + "-" + hash, Namespace: d.Namespace, Labels: t.Labels, Annotations: ann,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: d.Name, UID: d.UID, Controller: &yes, BlockOwnerDeletion: &yes}},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: &replicas, MinReadySeconds: d.Spec.MinReadySeconds, Selector: sel, Template: *t},
	}
}

// rolling is rolloutRolling: scale the new ReplicaSet up within maxSurge,
// else scale old ones down within maxUnavailable (unhealthy pods first).
func (p *Plan) rolling(d *appsv1.Deployment, hash string, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) {
	want := replicas(d)
	all := append(append([]*appsv1.ReplicaSet{}, old...), newRS)
	if newRS == nil {
		all = old
		// A new ReplicaSet starts at what maxSurge leaves room for (all of
		// the replicas when there is no old one).
		n := newReplicas(d, all, 0)
		p.Create = NewReplicaSet(d, hash, p.Revision, n)
		return
	}
	if cur := *newRS.Spec.Replicas; cur != want {
		n := want
		if cur < want {
			n = newReplicas(d, all, cur)
		}
		if n != cur {
			p.Scale[newRS.Name] = n
			return
		}
	}
	// Scale old ReplicaSets down.
	oldTotal := total(old)
	if oldTotal == 0 {
		return
	}
	minAvailable := want - maxUnavailable(d)
	newUnavailable := *newRS.Spec.Replicas - newRS.Status.AvailableReplicas
	budget := total(all) - minAvailable - newUnavailable
	if budget <= 0 {
		return
	}
	spec := map[string]int32{}
	for _, rs := range old {
		spec[rs.Name] = *rs.Spec.Replicas
	}
	// First the unhealthy pods of old ReplicaSets, oldest ReplicaSet first.
	cleaned := int32(0)
	for _, rs := range old {
		if cleaned >= budget {
			break
		}
		unhealthy := spec[rs.Name] - rs.Status.AvailableReplicas
		if unhealthy <= 0 {
			continue
		}
		n := min(budget-cleaned, unhealthy)
		spec[rs.Name] -= n
		cleaned += n
	}
	// Then available pods, while enough stay available.
	available := newRS.Status.AvailableReplicas
	for _, rs := range old {
		available += min(rs.Status.AvailableReplicas, spec[rs.Name])
	}
	if room := min(available-minAvailable, budget-cleaned); room > 0 {
		for _, rs := range old {
			if room == 0 {
				break
			}
			n := min(spec[rs.Name], room)
			spec[rs.Name] -= n
			room -= n
		}
	}
	for _, rs := range old {
		if spec[rs.Name] != *rs.Spec.Replicas {
			p.Scale[rs.Name] = spec[rs.Name]
		}
	}
}

// newReplicas is NewRSNewReplicas for RollingUpdate: as many more pods as
// maxSurge allows over all ReplicaSets, up to the replicas wanted.
func newReplicas(d *appsv1.Deployment, all []*appsv1.ReplicaSet, cur int32) int32 {
	want := replicas(d)
	maxTotal := want + maxSurge(d)
	count := total(all)
	if count >= maxTotal {
		return cur
	}
	return cur + min(maxTotal-count, want-cur)
}

// recreate is rolloutRecreate: old ReplicaSets to 0, then once none of
// their pods runs, the new one to the replicas wanted.
func (p *Plan) recreate(d *appsv1.Deployment, hash string, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet, oldPodsRunning bool) {
	for _, rs := range active(old) {
		p.Scale[rs.Name] = 0
	}
	if len(p.Scale) > 0 || oldPodsRunning {
		return
	}
	if newRS == nil {
		p.Create = NewReplicaSet(d, hash, p.Revision, replicas(d))
		return
	}
	if *newRS.Spec.Replicas != replicas(d) {
		p.Scale[newRS.Name] = replicas(d)
	}
}

// cleanup names the old ReplicaSets without pods beyond
// revisionHistoryLimit (default 10), oldest first.
func cleanup(d *appsv1.Deployment, old []*appsv1.ReplicaSet) []string {
	limit := int32(10)
	if d.Spec.RevisionHistoryLimit != nil {
		limit = *d.Spec.RevisionHistoryLimit
	}
	var idle []*appsv1.ReplicaSet
	for _, rs := range old {
		if *rs.Spec.Replicas == 0 && rs.Status.Replicas == 0 {
			idle = append(idle, rs)
		}
	}
	sort.SliceStable(idle, func(i, j int) bool { return Revision(idle[i]) < Revision(idle[j]) })
	var out []string
	for i := 0; i < len(idle)-int(limit); i++ {
		out = append(out, idle[i].Name)
	}
	return out
}

// complete is DeploymentComplete: every replica updated and available, no
// old pod left.
func complete(d *appsv1.Deployment, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) bool {
	want := replicas(d)
	var all int32
	for _, rs := range old {
		all += rs.Status.Replicas
	}
	return newRS.Status.Replicas == want && newRS.Status.AvailableReplicas == want && all == 0
}

// Revision is a ReplicaSet's revision annotation, 0 without one.
func Revision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations[RevisionAnnotation], 10, 64)
	return n
}

func total(sets []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range sets {
		if rs != nil {
			n += *rs.Spec.Replicas
		}
	}
	return n
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// maxSurge and maxUnavailable are ResolveFenceposts: percentages of the
// replicas, surge rounded up and unavailability down; both 0 makes
// unavailability 1. Recreate has neither.
func maxSurge(d *appsv1.Deployment) int32 {
	s, _ := fenceposts(d)
	return s
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	_, u := fenceposts(d)
	return u
}

func fenceposts(d *appsv1.Deployment) (int32, int32) {
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil {
		return 0, 0
	}
	n := int(replicas(d))
	q := intstr.FromString("25%")
	surgeV, unavailV := ru.MaxSurge, ru.MaxUnavailable
	if surgeV == nil {
		surgeV = &q
	}
	if unavailV == nil {
		unavailV = &q
	}
	surge, _ := intstr.GetScaledValueFromIntOrPercent(surgeV, n, true)
	unavail, _ := intstr.GetScaledValueFromIntOrPercent(unavailV, n, false)
	if surge == 0 && unavail == 0 {
		unavail = 1
	}
	return int32(surge), int32(min(unavail, n))
}

// The Progressing and Available conditions' reasons.
const (
	ReasonNewRSCreated      = "NewReplicaSetCreated"
	ReasonFoundNewRS        = "FoundNewReplicaSet"
	ReasonRSUpdated         = "ReplicaSetUpdated"
	ReasonNewRSAvailable    = "NewReplicaSetAvailable"
	ReasonTimedOut          = "ProgressDeadlineExceeded"
	ReasonPaused            = "DeploymentPaused"
	ReasonResumed           = "DeploymentResumed"
	ReasonMinimumAvailable  = "MinimumReplicasAvailable"
	ReasonMinimumUnavailble = "MinimumReplicasUnavailable"
)

// Status is syncRolloutStatus: the counts over every ReplicaSet, Available
// by maxUnavailable, Progressing by the rollout's state. created says the
// new ReplicaSet was created in this step; now is the time of this sync.
func Status(d *appsv1.Deployment, hash string, sets []*appsv1.ReplicaSet, created bool, now time.Time) appsv1.DeploymentStatus {
	newRS, old := split(d, hash, sets)
	prev := d.Status
	st := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, CollisionCount: prev.CollisionCount}
	for _, rs := range sets {
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	want := replicas(d)
	st.UnavailableReplicas = max(0, want-st.AvailableReplicas)
	conds := append([]appsv1.DeploymentCondition{}, prev.Conditions...)
	if st.AvailableReplicas >= want-maxUnavailable(d) {
		conds = setCondition(conds, appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumAvailable, "Deployment has minimum availability.", now)
	} else {
		conds = setCondition(conds, appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumUnavailble, "Deployment does not have minimum availability.", now)
	}
	prog := findCondition(conds, appsv1.DeploymentProgressing)
	switch {
	case d.Spec.Paused:
		if prog == nil || prog.Reason != ReasonPaused {
			conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonPaused, "Deployment is paused", now)
		}
	case prog != nil && prog.Reason == ReasonPaused:
		conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonResumed, "Deployment is resumed", now)
	case newRS == nil:
	case created:
		conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSCreated, fmt.Sprintf("Created new replica set %q", newRS.Name), now)
	case complete(d, newRS, old) && st.UpdatedReplicas == want:
		conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewRSAvailable, fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name), now)
	case prog == nil:
		conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewRS, fmt.Sprintf("Found new replica set %q", newRS.Name), now)
	case progressed(prev, st):
		conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonRSUpdated, fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name), now)
	case timedOut(d, prog, now):
		conds = setCondition(conds, appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonTimedOut, fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name), now)
	}
	st.Conditions = conds
	return st
}

// progressed is DeploymentProgressing: more updated, ready or available
// replicas, or fewer old ones.
func progressed(prev, cur appsv1.DeploymentStatus) bool {
	oldBefore, oldNow := prev.Replicas-prev.UpdatedReplicas, cur.Replicas-cur.UpdatedReplicas
	return cur.UpdatedReplicas > prev.UpdatedReplicas || oldNow < oldBefore ||
		cur.ReadyReplicas > prev.ReadyReplicas || cur.AvailableReplicas > prev.AvailableReplicas
}

func timedOut(d *appsv1.Deployment, prog *appsv1.DeploymentCondition, now time.Time) bool {
	pd := d.Spec.ProgressDeadlineSeconds
	if pd == nil || *pd == 1<<31-1 || prog.Reason == ReasonNewRSAvailable {
		return false
	}
	return prog.Reason == ReasonTimedOut || prog.LastUpdateTime.Add(time.Duration(*pd)*time.Second).Before(now)
}

func findCondition(conds []appsv1.DeploymentCondition, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// setCondition is SetDeploymentCondition: the transition time stays while
// the status holds; the update time moves with a new reason or message.
func setCondition(conds []appsv1.DeploymentCondition, typ appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string, now time.Time) []appsv1.DeploymentCondition {
	t := metav1.NewTime(now)
	c := appsv1.DeploymentCondition{Type: typ, Status: status, Reason: reason, Message: msg, LastUpdateTime: t, LastTransitionTime: t}
	if old := findCondition(conds, typ); old != nil {
		if old.Status == status && old.Reason == reason && old.Message == msg {
			return conds
		}
		if old.Status == status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		*old = c
		return conds
	}
	return append(conds, c)
}

// Equal says whether two statuses are the same.
func Equal(a, b appsv1.DeploymentStatus) bool { return apiequality.Semantic.DeepEqual(a, b) }
