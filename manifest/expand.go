package manifest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// maxGeneratedNameLength leaves room for the 5 random characters the API
// server appends to a generateName (names.SimpleNameGenerator).
const maxGeneratedNameLength = 63 - 5

// generateName is the API server's name generator: the base cut to 58
// characters plus 5 from the alphabet "bcdfghjklmnpqrstvwxz2456789".
func generateName(base string) string {
	if len(base) > maxGeneratedNameLength {
		base = base[:maxGeneratedNameLength]
	}
	return base + rand.String(5)
}

// podsPrefix is the controllers' generateName for their pods: "<owner>-",
// or the owner's name alone when the dash would make it invalid.
func podsPrefix(owner string) string {
	prefix := owner + "-"
	if len(apivalidation.NameIsDNSSubdomain(prefix, true)) != 0 {
		return owner
	}
	return prefix
}

// now is when objects are created: the API server stores whole seconds.
func now() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

// create fills what the API server sets on create: the name from
// generateName, a fresh UID and the creation time.
func create(m *metav1.ObjectMeta) {
	if m.Name == "" && m.GenerateName != "" {
		m.Name = generateName(m.GenerateName)
	}
	m.UID = uuid.NewUUID()
	m.CreationTimestamp = now()
	m.ResourceVersion = ""
}

// createPod makes a pod what the API server stores: created, defaulted,
// status Pending. The QoS class is left to the cgroups package, which owns it.
func createPod(p *corev1.Pod) {
	create(&p.ObjectMeta)
	p.APIVersion, p.Kind = "v1", "Pod"
	p.Generation = 1
	defaultPod(p)
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
}

// podFromTemplate is the controllers' GetPodFromTemplate.
func podFromTemplate(t *corev1.PodTemplateSpec, namespace, owner string, ref metav1.OwnerReference) *corev1.Pod {
	t = t.DeepCopy()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    podsPrefix(owner),
			Namespace:       namespace,
			Labels:          t.Labels,
			Annotations:     t.Annotations,
			Finalizers:      t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{ref},
		},
		Spec: t.Spec,
	}
}

func controllerRef(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid,
		Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}
}

// templateHash is the pod-template-hash of a Deployment's template: an FNV-32a
// of the template, printed in decimal and encoded with the API's safe
// alphabet, as the Deployment controller's ComputeHash does. The controller
// feeds the hash a go-spew dump of its own Go structs, so the value differs
// from a cluster's; it is stable for the same template.
func templateHash(t *corev1.PodTemplateSpec) string {
	h := fnv.New32a()
	b, _ := json.Marshal(t) // a PodTemplateSpec always marshals
	h.Write(b)
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}

// TemplateHash is the pod-template-hash of a Deployment's template, as
// the pods of its first ReplicaSet have it.
func TemplateHash(t *corev1.PodTemplateSpec) string { return templateHash(t) }

// deploymentPods makes the pods a Deployment's first ReplicaSet would:
// spec.replicas of them (none while paused), named
// <deployment>-<pod-template-hash>-<5 random>, owned by the ReplicaSet.
func deploymentPods(d *appsv1.Deployment) []*corev1.Pod {
	if d.Spec.Paused || d.Spec.Replicas == nil {
		return nil
	}
	hash := templateHash(&d.Spec.Template)
	rsName := d.Name + "-" + hash
	rsUID := uuid.NewUUID() // one ReplicaSet owns all the pods
	t := d.Spec.Template.DeepCopy()
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
	var pods []*corev1.Pod
	for range *d.Spec.Replicas {
		p := podFromTemplate(t, d.Namespace, rsName, controllerRef("apps/v1", "ReplicaSet", rsName, rsUID))
		createPod(p)
		pods = append(pods, p)
	}
	return pods
}

// jobPods makes the pods a Job's controller starts with: parallelism of
// them, at most completions, none while suspended. An Indexed Job's first
// pods have the indexes 0, 1, ...
func jobPods(j *batchv1.Job) []*corev1.Pod {
	if j.Spec.Suspend != nil && *j.Spec.Suspend || j.Spec.Parallelism == nil {
		return nil
	}
	n := *j.Spec.Parallelism
	if j.Spec.Completions != nil {
		n = min(n, *j.Spec.Completions)
	}
	var pods []*corev1.Pod
	for i := range n {
		ix := -1
		if isIndexed(j) {
			ix = int(i)
		}
		pods = append(pods, NewJobPod(j, ix))
	}
	return pods
}

func isIndexed(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
}

// completionIndexEnv is the variable an Indexed Job's containers get.
const completionIndexEnv = "JOB_COMPLETION_INDEX"

// NewJobPod makes one more pod of a loaded Job, as its controller would for
// a first start or a replacement: from the template (which carries the
// job-name and controller-uid labels), named <job>-<5 random>, owned by the
// Job, with a fresh UID and creation time, defaulted, status Pending.
//
// For an Indexed Job, index is the pod's completion index (ignored
// otherwise; pass -1): as the Job controller does, the pod is named
// <job>-<index>-<5 random>, carries the index in the
// batch.kubernetes.io/job-completion-index annotation and label, every
// container and init container gets JOB_COMPLETION_INDEX from that label
// (unless it sets the variable itself), and the hostname is <job>-<index>
// unless the template sets one. The subdomain stays what the template says.
func NewJobPod(job *batchv1.Job, index int) *corev1.Pod {
	t := &job.Spec.Template
	if isIndexed(job) {
		t = indexedTemplate(job, index)
	}
	p := podFromTemplate(t, job.Namespace, job.Name, controllerRef("batch/v1", "Job", job.Name, job.UID))
	if isIndexed(job) {
		p.GenerateName = indexedGenerateName(job.Name, index)
	}
	createPod(p)
	return p
}

func indexedTemplate(job *batchv1.Job, index int) *corev1.PodTemplateSpec {
	t := job.Spec.Template.DeepCopy()
	ix := strconv.Itoa(index)
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	if t.Labels == nil {
		t.Labels = map[string]string{}
	}
	t.Annotations[batchv1.JobCompletionIndexAnnotation] = ix
	t.Labels[batchv1.JobCompletionIndexAnnotation] = ix
	env := corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{
		APIVersion: "v1", FieldPath: fmt.Sprintf("metadata.labels['%s']", batchv1.JobCompletionIndexAnnotation)}}}
	for _, cs := range [][]corev1.Container{t.Spec.InitContainers, t.Spec.Containers} {
		for i := range cs {
			if !slices.ContainsFunc(cs[i].Env, func(e corev1.EnvVar) bool { return e.Name == completionIndexEnv }) {
				cs[i].Env = append(cs[i].Env, env)
			}
		}
	}
	if t.Spec.Hostname == "" {
		t.Spec.Hostname = job.Name + "-" + ix
	}
	return t
}

// indexedGenerateName is "<job>-<index>-", the job name cut so that the
// whole fits the generated-name limit.
func indexedGenerateName(job string, index int) string {
	suffix := "-" + strconv.Itoa(index) + "-"
	if len(job)+len(suffix) > maxGeneratedNameLength {
		job = job[:maxGeneratedNameLength-len(suffix)]
	}
	return job + suffix
}
