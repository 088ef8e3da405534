package manifest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bundle is everything one Load read: the objects, defaulted and validated,
// and the pods they stand for.
type Bundle struct {
	Pods        []*Pod // every pod to run: bare pods plus expansions, defaulted and validated
	Deployments []*appsv1.Deployment
	Jobs        []*batchv1.Job
	ConfigMaps  []*corev1.ConfigMap
	Secrets     []*corev1.Secret
	Objects     []Object // every object read, in input order

	objs []*object
}

// Pod is one pod to run and where it came from.
type Pod struct {
	*corev1.Pod
	Source     Source
	Job        *batchv1.Job       // owner, nil for bare pods
	Deployment *appsv1.Deployment // owner, nil for bare pods
}

// Object names one object of the input.
type Object struct {
	Kind      string
	Namespace string
	Name      string
	Source    Source
}

// Load reads, decodes, defaults and validates the objects in paths ("-" is
// standard input; a directory stands for its .yaml, .yml and .json files)
// and expands Deployments and Jobs into pods. On failure the error is an
// Errors holding every problem found.
func Load(paths ...string) (*Bundle, error) {
	return load(paths, os.Stdin)
}

// Parse is Load for a manifest already in memory; file names it in errors.
func Parse(file string, data []byte) (*Bundle, error) {
	ins, errs := splitDocs(file, data)
	return build(ins, errs)
}

func load(paths []string, stdin io.Reader) (*Bundle, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("no manifest files given")
	}
	ins, errs := readInputs(paths, stdin)
	return build(ins, errs)
}

func build(ins []input, errs []error) (*Bundle, error) {
	b := &Bundle{}
	for _, in := range ins {
		objs, derrs := decodeInput(in)
		errs = append(errs, derrs...)
		b.objs = append(b.objs, objs...)
	}
	seen := map[string]*object{}
	for _, o := range b.objs {
		m := o.createAndDefault()
		o.name = m.Name
		b.Objects = append(b.Objects, Object{Kind: o.kind, Namespace: m.Namespace, Name: m.Name, Source: o.src})
		if m.Name != "" {
			key := o.kind + "/" + m.Namespace + "/" + m.Name
			if first, ok := seen[key]; ok {
				errs = append(errs, o.wrap(&field.Error{Type: field.ErrorTypeDuplicate, Field: "metadata.name", BadValue: m.Name,
					Detail: fmt.Sprintf("another %s of that name in namespace %q is at %s", o.kind, m.Namespace, first.src)}))
			}
			seen[key] = o
		}
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			b.ConfigMaps = append(b.ConfigMaps, v)
		case *corev1.Secret:
			b.Secrets = append(b.Secrets, v)
		}
	}
	// A ConfigMap or Secret that failed to decode is missing from b, so
	// references are resolved only when every document decoded: otherwise
	// each pod using it would also report it "not found".
	refsKnown := len(errs) == 0
	for _, o := range b.objs {
		errs = append(errs, o.wrapAll(fieldErrs(o.validate(b, refsKnown)))...)
	}
	if len(errs) > 0 {
		sortBySource(errs)
		return nil, Errors(errs)
	}
	for _, o := range b.objs {
		switch v := o.obj.(type) {
		case *corev1.Pod:
			b.Pods = append(b.Pods, &Pod{Pod: v, Source: o.src})
		case *appsv1.Deployment:
			b.Deployments = append(b.Deployments, v)
			for _, p := range deploymentPods(v) {
				b.Pods = append(b.Pods, &Pod{Pod: p, Source: o.src, Deployment: v})
			}
		case *batchv1.Job:
			b.Jobs = append(b.Jobs, v)
			for _, p := range jobPods(v) {
				b.Pods = append(b.Pods, &Pod{Pod: p, Source: o.src, Job: v})
			}
		}
	}
	return b, nil
}

// sortBySource orders errors by file (in the order files were read) and
// document, keeping the order within a document: decoding problems come
// sorted by line, validation errors in the API server's order.
func sortBySource(errs []error) {
	rank := map[string]int{}
	key := func(e error) (int, int) {
		var me *Error
		if !errors.As(e, &me) {
			return -1, 0
		}
		if _, ok := rank[me.Source.File]; !ok {
			rank[me.Source.File] = len(rank)
		}
		return rank[me.Source.File], me.Source.Doc
	}
	for _, e := range errs {
		key(e)
	}
	sort.SliceStable(errs, func(i, j int) bool {
		fi, di := key(errs[i])
		fj, dj := key(errs[j])
		return fi < fj || fi == fj && di < dj
	})
}

// createAndDefault does to the object what the API server does on create
// before validating it: system fields, then defaults.
func (o *object) createAndDefault() *metav1.ObjectMeta {
	switch v := o.obj.(type) {
	case *corev1.Pod:
		createPod(v)
		return &v.ObjectMeta
	case *appsv1.Deployment:
		create(&v.ObjectMeta)
		defaultDeployment(v)
		return &v.ObjectMeta
	case *batchv1.Job:
		create(&v.ObjectMeta)
		defaultJob(v)
		return &v.ObjectMeta
	case *corev1.ConfigMap:
		create(&v.ObjectMeta)
		defaultConfigMap(v)
		return &v.ObjectMeta
	case *corev1.Secret:
		create(&v.ObjectMeta)
		defaultSecret(v)
		return &v.ObjectMeta
	}
	panic(fmt.Sprintf("manifest: unexpected object %T", o.obj))
}

func (o *object) validate(b *Bundle, refsKnown bool) field.ErrorList {
	refs := func(spec *corev1.PodSpec, ns string, p *field.Path) field.ErrorList {
		if !refsKnown {
			return nil
		}
		return checkRefs(spec, ns, p, b)
	}
	switch v := o.obj.(type) {
	case *corev1.Pod:
		return append(validatePod(v), refs(&v.Spec, v.Namespace, field.NewPath("spec"))...)
	case *appsv1.Deployment:
		return append(validateDeployment(v), refs(&v.Spec.Template.Spec, v.Namespace, field.NewPath("spec", "template", "spec"))...)
	case *batchv1.Job:
		return append(validateJob(v), refs(&v.Spec.Template.Spec, v.Namespace, field.NewPath("spec", "template", "spec"))...)
	case *corev1.ConfigMap:
		return validateConfigMap(v)
	case *corev1.Secret:
		return validateSecret(v)
	}
	return nil
}

// ConfigMap returns the ConfigMap of that namespace and name, nil if the
// input had none.
func (b *Bundle) ConfigMap(namespace, name string) *corev1.ConfigMap {
	for _, c := range b.ConfigMaps {
		if c.Namespace == namespace && c.Name == name {
			return c
		}
	}
	return nil
}

// Secret returns the Secret of that namespace and name, nil if the input had
// none.
func (b *Bundle) Secret(namespace, name string) *corev1.Secret {
	for _, s := range b.Secrets {
		if s.Namespace == namespace && s.Name == name {
			return s
		}
	}
	return nil
}

// Unsupported returns, as an Errors, every use of a feature the API server
// accepts but podrun cannot run (see Unsupported), with the file and line of
// each; nil when there is none. Templates of Deployments and Jobs are
// checked once, not per pod.
func (b *Bundle) Unsupported() error {
	var errs []error
	for _, o := range b.objs {
		var list field.ErrorList
		switch v := o.obj.(type) {
		case *corev1.Pod:
			list = Unsupported(v)
		case *appsv1.Deployment:
			list = unsupportedSpec(&v.Spec.Template.Spec, field.NewPath("spec", "template", "spec"))
		case *batchv1.Job:
			// Another controller's Job would never run here.
			if m := v.Spec.ManagedBy; m != nil && *m != batchv1.JobControllerName {
				list = append(list, field.NotSupported(field.NewPath("spec", "managedBy"), *m, []string{batchv1.JobControllerName}))
			}
			list = append(list, unsupportedSpec(&v.Spec.Template.Spec, field.NewPath("spec", "template", "spec"))...)
		}
		errs = append(errs, o.wrapAll(fieldErrs(list))...)
	}
	if len(errs) == 0 {
		return nil
	}
	return Errors(errs)
}
