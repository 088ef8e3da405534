package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/podrun/podrun/api"
	"github.com/podrun/podrun/controller/deployment"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/manifest"
)

// Apply creates or updates every object of a manifest, as "kubectl apply"
// would with a cluster, within what one node can do: a pod's images,
// labels and annotations may change (a changed image restarts that
// container); a Deployment may be scaled; ConfigMaps and Secrets may be
// replaced (the running pods of the namespace get them in their volumes). Anything else is
// refused, and then nothing of the manifest is applied.
func (d *Daemon) Apply(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	defer d.store.flush() // answered once what changed is on disk
	return d.apply(file, data, false, false)
}

// ApplyForce is Apply that replaces a bare pod it cannot update (kubectl
// apply --force): the old pod is deleted with its grace period and the new
// one created once the old is gone, as a pod spec is immutable.
func (d *Daemon) ApplyForce(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	defer d.store.flush()
	return d.apply(file, data, false, true)
}

// ApplyDryRun is Apply that only plans: the same answer, refusals
// included, and nothing changed (the Kubernetes API's dryRun=All).
func (d *Daemon) ApplyDryRun(ctx context.Context, file string, data []byte) ([]api.Applied, error) {
	return d.apply(file, data, true, false)
}

func (d *Daemon) apply(file string, data []byte, dry, force bool) ([]api.Applied, error) {
	b, err := d.parse(file, data)
	if err != nil {
		return nil, invalid(err, "")
	}
	if err := b.Unsupported(); err != nil {
		return nil, invalid(err, "podrun cannot run this: ")
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()

	var pl applyPlan
	for _, cm := range b.ConfigMaps {
		d.mu.Lock()
		old := d.configMaps[keyOf(cm.Namespace, cm.Name)]
		d.mu.Unlock()
		pl.add("ConfigMap", cm.Namespace, cm.Name)(planReplace("configmap", cm.Name, old == nil, old != nil && sameConfigMap(old, cm),
			old != nil && old.Immutable != nil && *old.Immutable, func() {
				if old != nil {
					cm.UID, cm.CreationTimestamp = old.UID, old.CreationTimestamp
				}
				d.putConfigMap(cm)
			}))
	}
	for _, sec := range b.Secrets {
		d.mu.Lock()
		old := d.secrets[keyOf(sec.Namespace, sec.Name)]
		d.mu.Unlock()
		pl.add("Secret", sec.Namespace, sec.Name)(planReplace("secret", sec.Name, old == nil, old != nil && sameSecret(old, sec),
			old != nil && old.Immutable != nil && *old.Immutable, func() {
				if old != nil {
					sec.UID, sec.CreationTimestamp = old.UID, old.CreationTimestamp
				}
				d.putSecret(sec)
			}))
	}
	for _, dep := range b.Deployments {
		var pods []*corev1.Pod
		for _, p := range b.Pods {
			if p.Deployment == dep {
				pods = append(pods, p.Pod)
			}
		}
		pl.add("Deployment", dep.Namespace, dep.Name)(d.planDeployment(dep, pods))
	}
	for _, j := range b.Jobs {
		var pods []*corev1.Pod
		for _, p := range b.Pods {
			if p.Job == j {
				pods = append(pods, p.Pod)
			}
		}
		pl.add("Job", j.Namespace, j.Name)(d.planJob(j, pods))
	}
	for _, p := range b.Pods {
		if p.Job == nil && p.Deployment == nil {
			pl.add("Pod", p.Namespace, p.Name)(d.planPod(p.Pod, force))
		}
	}
	if len(pl.problems) > 0 {
		return nil, api.InvalidManifest(pl.problems)
	}
	for _, step := range pl.steps {
		if !dry {
			step()
		}
	}
	var out []api.Applied
	for _, o := range b.Objects {
		out = append(out, api.Applied{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name,
			Action: pl.actions[o.Kind+"/"+o.Namespace+"/"+o.Name]})
	}
	return out, nil
}

// applyPlan is what applying a manifest will do: each object's action
// (created, configured, unchanged), the steps that do it, and the
// problems that refuse the whole manifest.
type applyPlan struct {
	problems []string
	steps    []func()
	actions  map[string]string // kind/ns/name -> action
}

// add records one object's plan (what the plan* functions return).
func (pl *applyPlan) add(kind, ns, name string) func(action string, step func(), problem string) {
	return func(action string, step func(), problem string) {
		if pl.actions == nil {
			pl.actions = map[string]string{}
		}
		pl.actions[kind+"/"+ns+"/"+name] = action
		switch {
		case problem != "":
			pl.problems = append(pl.problems, problem)
		case step != nil:
			pl.steps = append(pl.steps, step)
		}
	}
}

// planReplace plans a ConfigMap or Secret: created, unchanged, refused
// when immutable, else replaced.
func planReplace(kind, name string, isNew, same, immutable bool, put func()) (string, func(), string) {
	switch {
	case isNew:
		return "created", put, ""
	case same:
		return "unchanged", nil, ""
	case immutable:
		return "", nil, fmt.Sprintf("%s %q: it is immutable; delete it and apply it again", kind, name)
	}
	return "configured", put, ""
}

// invalid is the API's 422 for manifest errors, one cause per problem.
func invalid(err error, prefix string) error {
	var errs manifest.Errors
	if !errors.As(err, &errs) {
		return api.InvalidManifest([]string{prefix + err.Error()})
	}
	var problems []string
	for _, e := range errs {
		problems = append(problems, prefix+e.Error())
	}
	return api.InvalidManifest(problems)
}

// parse loads a manifest. Pods may refer to ConfigMaps and Secrets applied
// earlier: when the manifest alone does not validate, it is parsed again
// with the stored ones it does not define appended (after it, so the
// positions in its errors stay right), and those are dropped again.
func (d *Daemon) parse(file string, data []byte) (*manifest.Bundle, error) {
	b, err := manifest.Parse(file, data)
	if err == nil {
		return b, nil
	}
	refs, rerr := api.Refs(data)
	if rerr != nil {
		return nil, err
	}
	defined := map[string]bool{}
	for _, r := range refs {
		ns := r.Namespace
		if ns == "" {
			ns = corev1.NamespaceDefault
		}
		defined[r.Kind+"/"+ns+"/"+r.Name] = true
	}
	var extra []any
	d.mu.Lock()
	for k, c := range d.configMaps {
		if !defined["ConfigMap/"+k.ns+"/"+k.name] {
			c = c.DeepCopy()
			c.APIVersion, c.Kind = "v1", "ConfigMap"
			extra = append(extra, withoutSystemFields(c))
		}
	}
	for k, s := range d.secrets {
		if !defined["Secret/"+k.ns+"/"+k.name] {
			s = s.DeepCopy()
			s.APIVersion, s.Kind = "v1", "Secret"
			extra = append(extra, withoutSystemFields(s))
		}
	}
	d.mu.Unlock()
	if len(extra) == 0 {
		return nil, err
	}
	sep := []byte("\n---\n")
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n\ufeff"), []byte("{")) {
		sep = []byte("\n") // a JSON stream
	}
	all := append([]byte{}, data...)
	for _, o := range extra {
		j, jerr := json.Marshal(o)
		if jerr != nil {
			return nil, err
		}
		all = append(append(all, sep...), j...)
	}
	all = append(all, '\n')
	b, err = manifest.Parse(file, all)
	if err != nil {
		return nil, err
	}
	keep := func(kind, ns, name string) bool { return defined[kind+"/"+ns+"/"+name] }
	b.ConfigMaps = filter(b.ConfigMaps, func(c *corev1.ConfigMap) bool { return keep("ConfigMap", c.Namespace, c.Name) })
	b.Secrets = filter(b.Secrets, func(s *corev1.Secret) bool { return keep("Secret", s.Namespace, s.Name) })
	b.Objects = filter(b.Objects, func(o manifest.Object) bool { return keep(o.Kind, o.Namespace, o.Name) })
	return b, nil
}

// withoutSystemFields is a stored object (a copy) as a manifest would have it.
func withoutSystemFields(o api.Object) api.Object {
	o.SetUID("")
	o.SetResourceVersion("")
	o.SetCreationTimestamp(metav1.Time{})
	return o
}

func filter[T any](in []T, keep func(T) bool) []T {
	var out []T
	for _, v := range in {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// sameManaged: b (a manifest) keeps a's metadata.managedFields, the ones
// kubeapi's field manager writes. A manifest without any (podrun apply, a
// client that knows nothing of them) keeps the stored ones: keepManaged.
func sameManaged(a, b metav1.Object) bool {
	return len(b.GetManagedFields()) == 0 || equality.Semantic.DeepEqual(a.GetManagedFields(), b.GetManagedFields())
}

// keepManaged gives n the managedFields of old when its manifest has none.
func keepManaged(old, n metav1.Object) {
	if len(n.GetManagedFields()) == 0 && old != nil {
		n.SetManagedFields(old.GetManagedFields())
	}
}

func sameConfigMap(a, b *corev1.ConfigMap) bool {
	return equality.Semantic.DeepEqual(a.Data, b.Data) && equality.Semantic.DeepEqual(a.BinaryData, b.BinaryData) &&
		equality.Semantic.DeepEqual(a.Labels, b.Labels) && equality.Semantic.DeepEqual(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.Immutable, b.Immutable) && sameManaged(a, b)
}

func sameSecret(a, b *corev1.Secret) bool {
	return equality.Semantic.DeepEqual(a.Data, b.Data) && a.Type == b.Type &&
		equality.Semantic.DeepEqual(a.Labels, b.Labels) && equality.Semantic.DeepEqual(a.Annotations, b.Annotations) &&
		equality.Semantic.DeepEqual(a.Immutable, b.Immutable) && sameManaged(a, b)
}

func (d *Daemon) putConfigMap(cm *corev1.ConfigMap) {
	cm = cm.DeepCopy()
	cm.APIVersion, cm.Kind = "v1", "ConfigMap"
	d.mu.Lock()
	defer d.mu.Unlock()
	k := keyOf(cm.Namespace, cm.Name)
	typ := "MODIFIED"
	if d.configMaps[k] == nil {
		typ = "ADDED"
	} else {
		keepManaged(d.configMaps[k], cm)
	}
	cm.ResourceVersion = d.nextRV()
	d.configMaps[k] = cm
	d.saveObject(api.ConfigMaps, cm)
	d.emit(api.ConfigMaps, typ, cm)
	d.objectsChanged(cm.Namespace)
}

func (d *Daemon) putSecret(s *corev1.Secret) {
	s = s.DeepCopy()
	s.APIVersion, s.Kind = "v1", "Secret"
	d.mu.Lock()
	defer d.mu.Unlock()
	k := keyOf(s.Namespace, s.Name)
	typ := "MODIFIED"
	if d.secrets[k] == nil {
		typ = "ADDED"
	} else {
		keepManaged(d.secrets[k], s)
	}
	s.ResourceVersion = d.nextRV()
	d.secrets[k] = s
	d.saveObject(api.Secrets, s)
	d.emit(api.Secrets, typ, s)
	d.objectsChanged(s.Namespace)
}

// planPod decides what applying a bare pod does; with force, a pod that
// cannot be updated is replaced.
func (d *Daemon) planPod(p *corev1.Pod, force bool) (action string, step func(), problem string) {
	d.mu.Lock()
	rec := d.pods[keyOf(p.Namespace, p.Name)]
	var old *corev1.Pod
	var finished, deleting bool
	if rec != nil {
		old, finished, deleting = rec.pod, rec.finished, rec.deleting
	}
	d.mu.Unlock()
	if old == nil {
		return "created", func() {
			if _, err := d.createPod(p); err != nil {
				d.log.Error("creating a pod", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
		}, ""
	}
	replace := func() { d.replacePodWith(rec, p) }
	if deleting && force {
		return "replaced", replace, ""
	}
	if deleting {
		return "", nil, fmt.Sprintf("pod %q is being deleted; apply it again once it is gone", p.Name)
	}
	n := p.DeepCopy()
	n.Spec.NodeName = old.Spec.NodeName
	diffs := specDiff(withoutImages(&old.Spec), withoutImages(&n.Spec))
	if force && (len(diffs) > 0 || finished && imagesDiffer(old, n)) {
		return "replaced", replace, ""
	}
	if len(diffs) > 0 {
		return "", nil, fmt.Sprintf("pod %q: podrun can change only the images, labels and annotations of an existing pod, not %s; delete the pod and apply it again",
			p.Name, strings.Join(diffs, ", "))
	}
	images := imagesDiffer(old, n)
	meta := !equality.Semantic.DeepEqual(old.Labels, n.Labels) || !equality.Semantic.DeepEqual(old.Annotations, n.Annotations) ||
		!sameManaged(old, n)
	switch {
	case !images && !meta:
		return "unchanged", nil, ""
	case images && finished:
		return "", nil, fmt.Sprintf("pod %q has finished: its images cannot change; delete it and apply it again", p.Name)
	}
	return "configured", func() { d.updatePodSpec(rec, n) }, ""
}

// replacePodWith deletes rec's pod (its own grace period) and creates p
// once it is gone.
func (d *Daemon) replacePodWith(rec *podRec, p *corev1.Pod) {
	d.mu.Lock()
	d.deleteRec(rec, nil)
	d.mu.Unlock()
	go func() {
		<-rec.gone
		if _, err := d.createPod(p); err != nil {
			d.log.Error("creating the pod that replaces another", "pod", p.Namespace+"/"+p.Name, "err", err)
		}
	}()
}

// withoutImages is a pod spec with what an update may change blanked.
func withoutImages(s *corev1.PodSpec) *corev1.PodSpec {
	s = s.DeepCopy()
	for _, c := range podspec.Containers(s) {
		c.Image, c.ImagePullPolicy = "", ""
	}
	return s
}

// updatePodSpec takes a pod's new images, labels and annotations; the
// owner passes the images to the shim.
func (d *Daemon) updatePodSpec(rec *podRec, n *corev1.Pod) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := rec.pod.DeepCopy()
	p.Labels, p.Annotations = n.Labels, n.Annotations
	if len(n.ManagedFields) > 0 {
		p.ManagedFields = n.ManagedFields
	}
	podspec.SetImages(&p.Spec, &n.Spec)
	d.replacePod(rec, p)
	d.log.Info("pod updated", "pod", rec.key())
}

// planDeployment decides what applying a Deployment does; pods are the
// ones manifest made for it.
func (d *Daemon) planDeployment(dep *appsv1.Deployment, pods []*corev1.Pod) (action string, step func(), problem string) {
	k := keyOf(dep.Namespace, dep.Name)
	d.mu.Lock()
	old := d.deployments[k]
	d.mu.Unlock()
	if old == nil {
		return "created", func() {
			dep := dep.DeepCopy()
			dep.APIVersion, dep.Kind = "apps/v1", "Deployment"
			d.mu.Lock()
			dep.ResourceVersion = d.nextRV()
			d.deployments[k] = dep
			d.saveObject(api.Deployments, dep)
			d.emit(api.Deployments, "ADDED", dep)
			d.mu.Unlock()
			for _, p := range pods {
				if _, err := d.createPod(p); err != nil {
					d.log.Error("creating a pod of a Deployment", "deployment", k, "err", err)
				}
			}
			d.reconcile(k)
		}, ""
	}
	// apps/v1 selectors are immutable; the rest of the spec rolls out.
	if !equality.Semantic.DeepEqual(old.Spec.Selector, dep.Spec.Selector) {
		return "", nil, fmt.Sprintf("deployment.apps %q: spec.selector: field is immutable", dep.Name)
	}
	// The controller's revision annotation is not the file's to drop.
	ann := dep.Annotations
	if rev, ok := old.Annotations[deployment.RevisionAnnotation]; ok {
		ann = maps.Clone(ann)
		if ann == nil {
			ann = map[string]string{}
		}
		ann[deployment.RevisionAnnotation] = rev
	}
	specChanged := len(specDiff(old.Spec, dep.Spec)) > 0
	if !specChanged && equality.Semantic.DeepEqual(old.Labels, dep.Labels) && equality.Semantic.DeepEqual(old.Annotations, ann) &&
		sameManaged(old, dep) {
		return "unchanged", nil, ""
	}
	return "configured", func() {
		d.mu.Lock()
		if cur := d.deployments[k]; cur != nil {
			n := cur.DeepCopy()
			n.Spec, n.Labels, n.Annotations = *dep.Spec.DeepCopy(), dep.Labels, ann
			if len(dep.ManagedFields) > 0 {
				n.ManagedFields = dep.ManagedFields
			}
			if specChanged {
				n.Generation++
			}
			n.ResourceVersion = d.nextRV()
			d.deployments[k] = n
			d.saveObject(api.Deployments, n)
			d.emit(api.Deployments, "MODIFIED", n)
		}
		d.mu.Unlock()
		d.reconcile(k)
	}, ""
}

// planJob decides what applying a Job does; a Job's spec is immutable.
func (d *Daemon) planJob(j *batchv1.Job, pods []*corev1.Pod) (action string, step func(), problem string) {
	k := keyOf(j.Namespace, j.Name)
	d.mu.Lock()
	old := d.jobs[k]
	var oldJob *batchv1.Job
	if old != nil {
		oldJob = old.job
	}
	d.mu.Unlock()
	if old == nil {
		return "created", func() {
			j := j.DeepCopy()
			j.APIVersion, j.Kind = "batch/v1", "Job"
			rec := &jobRec{job: j}
			d.mu.Lock()
			j.ResourceVersion = d.nextRV()
			d.jobs[k] = rec
			d.saveObject(api.Jobs, j)
			d.emit(api.Jobs, "ADDED", j)
			d.mu.Unlock()
			d.startJob(rec, pods)
		}, ""
	}
	if oldJob.DeletionTimestamp != nil {
		return "", nil, fmt.Sprintf("job.batch %q is being deleted; apply it again once it is gone", j.Name)
	}
	// The controller-uid labels and selector are the Job's UID: new at
	// every parse.
	a, b := jobIntent(oldJob), jobIntent(j)
	// The one change a Job takes here: un-suspending it.
	if a.Suspend != nil && *a.Suspend && b.Suspend != nil && !*b.Suspend && !jobFinished(oldJob) {
		a.Suspend = b.Suspend
		if diffs := specDiff(a, b); len(diffs) == 0 {
			return "configured", func() {
				d.mu.Lock()
				defer d.mu.Unlock()
				if d.jobs[k] == old {
					d.unsuspend(old)
				}
			}, ""
		}
		a.Suspend = ptrTo(true)
	}
	if diffs := specDiff(a, b); len(diffs) > 0 {
		return "", nil, fmt.Sprintf("job.batch %q: a Job's spec cannot change (%s); delete it and apply it again", j.Name, strings.Join(diffs, ", "))
	}
	return "unchanged", nil, ""
}

func jobIntent(j *batchv1.Job) *batchv1.JobSpec {
	s := j.Spec.DeepCopy()
	for _, m := range []map[string]string{s.Template.Labels, selectorLabels(s)} {
		delete(m, batchv1.ControllerUidLabel)
		delete(m, "controller-uid")
	}
	return s
}

func selectorLabels(s *batchv1.JobSpec) map[string]string {
	if s.Selector == nil {
		return nil
	}
	return s.Selector.MatchLabels
}

// specDiff names the fields where a and b differ (at most a few), as JSON
// paths such as spec.containers[0].command.
func specDiff(a, b any) []string {
	var ma, mb any
	for _, p := range []struct {
		v   any
		dst *any
	}{{a, &ma}, {b, &mb}} {
		j, err := json.Marshal(p.v)
		if err != nil {
			return []string{"spec"}
		}
		if err := json.Unmarshal(j, p.dst); err != nil {
			return []string{"spec"}
		}
	}
	var out []string
	diffInto(&out, "spec", ma, mb)
	const most = 5
	if len(out) > most {
		out = append(out[:most], fmt.Sprintf("and %d more", len(out)-most))
	}
	return out
}

func diffInto(out *[]string, path string, a, b any) {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			*out = append(*out, path)
			return
		}
		var keys []string
		for k := range av {
			keys = append(keys, k)
		}
		for k := range bv {
			if _, ok := av[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			diffInto(out, path+"."+k, av[k], bv[k])
		}
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			*out = append(*out, path)
			return
		}
		for i := range av {
			diffInto(out, fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])
		}
	default:
		if !reflect.DeepEqual(a, b) {
			*out = append(*out, path)
		}
	}
}

// Create makes one object from its manifest (POST of a collection).
func (d *Daemon) Create(ctx context.Context, r api.Resource, ns string, data []byte) (api.Object, error) {
	defer d.store.flush()
	refs, err := api.Refs(data)
	if err != nil || len(refs) != 1 || refs[0].Kind != r.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the body must be one %s", r.Kind))
	}
	ref := refs[0]
	switch {
	case ref.Namespace != "" && ref.Namespace != ns:
		return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	case ref.Namespace == "":
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
		meta, _ := m["metadata"].(map[string]any)
		if meta == nil {
			meta = map[string]any{}
			m["metadata"] = meta
		}
		meta["namespace"] = ns
		if data, err = json.Marshal(m); err != nil {
			return nil, err
		}
	}
	if ref.Name != "" {
		if _, err := d.Get(r, ns, ref.Name); err == nil {
			return nil, apierrors.NewAlreadyExists(r.GroupResource(), ref.Name)
		}
	}
	applied, err := d.Apply(ctx, r.Name, data)
	if err != nil {
		return nil, err
	}
	return d.Get(r, ns, applied[0].Name)
}
