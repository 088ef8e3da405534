package manifest

import (
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateDeployment is the apps/v1 ValidateDeployment of v1.34.
func validateDeployment(d *appsv1.Deployment) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&d.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	s, sp := &d.Spec, field.NewPath("spec")
	if s.Replicas != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.Replicas), sp.Child("replicas"))...)
	}
	errs = append(errs, validateSelector(s.Selector, "deployment", sp.Child("selector"))...)
	selector, err := metav1.LabelSelectorAsSelector(s.Selector)
	if err != nil {
		errs = append(errs, field.Invalid(sp.Child("selector"), s.Selector, "invalid label selector"))
	} else {
		tp := sp.Child("template")
		if !selector.Empty() && !selector.Matches(labels.Set(s.Template.Labels)) {
			errs = append(errs, field.Invalid(tp.Child("metadata", "labels"), s.Template.Labels, "`selector` does not match template `labels`"))
		}
		errs = append(errs, validatePodTemplate(&s.Template, tp)...)
		if rp := s.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyAlways {
			errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), rp, []string{string(corev1.RestartPolicyAlways)}))
		}
		if s.Template.Spec.ActiveDeadlineSeconds != nil {
			errs = append(errs, field.Forbidden(tp.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicaSet is not Supported"))
		}
	}
	errs = append(errs, validateStrategy(&s.Strategy, sp.Child("strategy"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), sp.Child("minReadySeconds"))...)
	if s.RevisionHistoryLimit != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.RevisionHistoryLimit), sp.Child("revisionHistoryLimit"))...)
	}
	if pd := s.ProgressDeadlineSeconds; pd != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*pd), sp.Child("progressDeadlineSeconds"))...)
		if *pd <= s.MinReadySeconds {
			errs = append(errs, field.Invalid(sp.Child("progressDeadlineSeconds"), *pd, "must be greater than minReadySeconds"))
		}
	}
	return errs
}

func validateSelector(sel *metav1.LabelSelector, what string, p *field.Path) field.ErrorList {
	if sel == nil {
		return field.ErrorList{field.Required(p, "")}
	}
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p)
	if what != "" && len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 {
		errs = append(errs, field.Invalid(p, sel, "empty selector is invalid for "+what))
	}
	return errs
}

func validateStrategy(st *appsv1.DeploymentStrategy, p *field.Path) field.ErrorList {
	switch st.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(p.Child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")}
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		ru, rp := st.RollingUpdate, p.Child("rollingUpdate")
		if ru == nil || ru.MaxUnavailable == nil || ru.MaxSurge == nil {
			return nil // defaulted
		}
		errs := intOrPercent(*ru.MaxUnavailable, rp.Child("maxUnavailable"))
		errs = append(errs, intOrPercent(*ru.MaxSurge, rp.Child("maxSurge"))...)
		if percentOrInt(*ru.MaxUnavailable) == 0 && percentOrInt(*ru.MaxSurge) == 0 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable, "may not be 0 when `maxSurge` is 0"))
		}
		if ru.MaxUnavailable.Type == intstr.String && percentOrInt(*ru.MaxUnavailable) > 100 {
			errs = append(errs, field.Invalid(rp.Child("maxUnavailable"), ru.MaxUnavailable, "must not be greater than 100%"))
		}
		return errs
	default:
		return field.ErrorList{field.NotSupported(p.Child("type"), st.Type, []string{string(appsv1.RecreateDeploymentStrategyType), string(appsv1.RollingUpdateDeploymentStrategyType)})}
	}
	return nil
}

func intOrPercent(v intstr.IntOrString, p *field.Path) field.ErrorList {
	if v.Type == intstr.String {
		var errs field.ErrorList
		for _, m := range validation.IsValidPercent(v.StrVal) {
			errs = append(errs, field.Invalid(p, v, m))
		}
		return errs
	}
	return apivalidation.ValidateNonnegativeField(int64(v.IntValue()), p)
}

func percentOrInt(v intstr.IntOrString) int {
	if v.Type == intstr.String {
		if len(validation.IsValidPercent(v.StrVal)) != 0 {
			return 0
		}
		n, _ := strconv.Atoi(v.StrVal[:len(v.StrVal)-1])
		return n
	}
	return v.IntValue()
}

// validateJob is the batch/v1 ValidateJob of v1.34, after the selector has
// been generated (defaultJob).
func validateJob(j *batchv1.Job) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&j.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	s, sp := &j.Spec, field.NewPath("spec")
	if s.ManualSelector == nil || !*s.ManualSelector {
		tm := sp.Child("template", "metadata")
		for _, l := range []struct{ key, want string }{
			{legacyControllerUIDLabel, string(j.UID)}, {legacyJobNameLabel, j.Name},
			{batchv1.ControllerUidLabel, string(j.UID)}, {batchv1.JobNameLabel, j.Name},
		} {
			if got, ok := s.Template.Labels[l.key]; !ok {
				errs = append(errs, field.Required(tm.Child("labels").Key(l.key), fmt.Sprintf("must be '%s'", l.want)))
			} else if got != l.want {
				errs = append(errs, field.Invalid(tm.Child("labels").Key(l.key), s.Template.Labels, fmt.Sprintf("must be '%s'", l.want)))
			}
		}
		want := labels.Set{legacyControllerUIDLabel: string(j.UID), legacyJobNameLabel: j.Name, batchv1.ControllerUidLabel: string(j.UID), batchv1.JobNameLabel: j.Name}
		if sel, err := metav1.LabelSelectorAsSelector(s.Selector); err == nil && !sel.Matches(want) {
			errs = append(errs, field.Invalid(sp.Child("selector"), s.Selector, "`selector` not auto-generated"))
		}
	}
	for _, f := range []struct {
		v    *int32
		name string
	}{{s.Parallelism, "parallelism"}, {s.Completions, "completions"}, {s.BackoffLimit, "backoffLimit"},
		{s.TTLSecondsAfterFinished, "ttlSecondsAfterFinished"}, {s.BackoffLimitPerIndex, "backoffLimitPerIndex"}, {s.MaxFailedIndexes, "maxFailedIndexes"}} {
		if f.v != nil {
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*f.v), sp.Child(f.name))...)
		}
	}
	if s.ActiveDeadlineSeconds != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(*s.ActiveDeadlineSeconds, sp.Child("activeDeadlineSeconds"))...)
	}
	if s.MaxFailedIndexes != nil && s.BackoffLimitPerIndex == nil {
		errs = append(errs, field.Required(sp.Child("backoffLimitPerIndex"), "when maxFailedIndexes is specified"))
	}
	indexed := s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion
	if s.CompletionMode != nil {
		errs = append(errs, validateEnum(sp.Child("completionMode"), *s.CompletionMode, batchv1.NonIndexedCompletion, batchv1.IndexedCompletion)...)
	}
	if indexed {
		if s.Completions == nil {
			errs = append(errs, field.Required(sp.Child("completions"), "when completion mode is Indexed"))
		} else if *s.Completions > 0 {
			host := fmt.Sprintf("%s-%d", j.Name, *s.Completions-1)
			if len(validation.IsDNS1123Label(host)) > 0 {
				errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), j.Name, "will not able to create pod with invalid DNS label: "+host))
			}
		}
		if s.Parallelism != nil && *s.Parallelism > 100000 {
			errs = append(errs, field.Invalid(sp.Child("parallelism"), *s.Parallelism, "must be less than or equal to 100000 when completion mode is Indexed"))
		}
	} else {
		if s.BackoffLimitPerIndex != nil {
			errs = append(errs, field.Invalid(sp.Child("backoffLimitPerIndex"), *s.BackoffLimitPerIndex, "requires indexed completion mode"))
		}
		if s.MaxFailedIndexes != nil {
			errs = append(errs, field.Invalid(sp.Child("maxFailedIndexes"), *s.MaxFailedIndexes, "requires indexed completion mode"))
		}
		if s.SuccessPolicy != nil {
			errs = append(errs, field.Invalid(sp.Child("successPolicy"), field.OmitValueType{}, "requires indexed completion mode"))
		}
	}
	if s.PodFailurePolicy != nil {
		errs = append(errs, validatePodFailurePolicy(s, sp.Child("podFailurePolicy"))...)
	}
	if indexed && s.SuccessPolicy != nil {
		errs = append(errs, validateSuccessPolicy(s, sp.Child("successPolicy"))...)
	}
	if rp := s.PodReplacementPolicy; rp != nil {
		if s.PodFailurePolicy != nil && *rp != batchv1.Failed {
			errs = append(errs, field.NotSupported(sp.Child("podReplacementPolicy"), *rp, []batchv1.PodReplacementPolicy{batchv1.Failed}))
		} else if *rp != batchv1.Failed && *rp != batchv1.TerminatingOrFailed {
			errs = append(errs, field.NotSupported(sp.Child("podReplacementPolicy"), *rp, []batchv1.PodReplacementPolicy{batchv1.Failed, batchv1.TerminatingOrFailed}))
		}
	}
	tp := sp.Child("template")
	errs = append(errs, validatePodTemplate(&s.Template, tp)...)
	switch rp := s.Template.Spec.RestartPolicy; {
	case rp == corev1.RestartPolicyAlways || rp == "":
		errs = append(errs, field.Required(tp.Child("spec", "restartPolicy"), `valid values: "OnFailure", "Never"`))
	case rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.NotSupported(tp.Child("spec", "restartPolicy"), rp, []corev1.RestartPolicy{corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	case s.PodFailurePolicy != nil && rp != corev1.RestartPolicyNever:
		errs = append(errs, field.Invalid(tp.Child("spec", "restartPolicy"), rp, `only "Never" is supported when podFailurePolicy is specified`))
	}
	errs = append(errs, validateSelector(s.Selector, "", sp.Child("selector"))...)
	if sel, err := metav1.LabelSelectorAsSelector(s.Selector); err == nil && !sel.Matches(labels.Set(s.Template.Labels)) {
		errs = append(errs, field.Invalid(tp.Child("metadata", "labels"), s.Template.Labels, "`selector` does not match template `labels`"))
	}
	return errs
}

// maxConfigSize is the API server's limit on the data of one ConfigMap or Secret.
const maxConfigSize = 1 << 20

func validateConfigMap(c *corev1.ConfigMap) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&c.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	size := 0
	for _, k := range sortedKeys(c.Data) {
		p := field.NewPath("data").Key(k)
		for _, m := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(p, k, m))
		}
		if _, ok := c.BinaryData[k]; ok {
			errs = append(errs, field.Invalid(p, k, "duplicate of key present in binaryData"))
		}
		size += len(c.Data[k])
	}
	for _, k := range sortedKeys(c.BinaryData) {
		for _, m := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(k), k, m))
		}
		size += len(c.BinaryData[k])
	}
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(field.NewPath(""), "", maxConfigSize))
	}
	return errs
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	dp := field.NewPath("data")
	size := 0
	for _, k := range sortedKeys(s.Data) {
		for _, m := range validation.IsConfigMapKey(k) {
			errs = append(errs, field.Invalid(dp.Key(k), k, m))
		}
		size += len(s.Data[k])
	}
	if size > maxConfigSize {
		errs = append(errs, field.TooLong(dp, "", maxConfigSize))
	}
	need := func(keys ...string) {
		for _, k := range keys {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(dp.Key(k), ""))
			}
		}
	}
	jsonKey := func(k string) {
		v, ok := s.Data[k]
		if !ok {
			need(k)
			return
		}
		if err := json.Unmarshal(v, &map[string]any{}); err != nil {
			errs = append(errs, field.Invalid(dp.Key(k), "<secret contents redacted>", err.Error()))
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(field.NewPath("metadata", "annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		jsonKey(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		jsonKey(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, u := s.Data[corev1.BasicAuthUsernameKey]
		_, pw := s.Data[corev1.BasicAuthPasswordKey]
		if !u && !pw {
			need(corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey)
		}
	case corev1.SecretTypeSSHAuth:
		if len(s.Data[corev1.SSHAuthPrivateKey]) == 0 {
			errs = append(errs, field.Required(dp.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		need(corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
	}
	return errs
}

// refs resolves the ConfigMaps and Secrets a pod spec names against the
// input, the way the kubelet would against the API: a missing object or key
// is an error unless the reference is optional. imagePullSecrets cannot be
// optional. This is podrun's check, not the API server's.
type refs interface {
	ConfigMap(namespace, name string) *corev1.ConfigMap
	Secret(namespace, name string) *corev1.Secret
}

func checkRefs(spec *corev1.PodSpec, ns string, fldPath *field.Path, b refs) field.ErrorList {
	rc := &refChecker{ns: ns, b: b}
	for i, v := range spec.Volumes {
		rc.volume(&v, fldPath.Child("volumes").Index(i))
	}
	visitContainers(spec, fldPath, rc.env)
	for i, ps := range spec.ImagePullSecrets {
		if ps.Name != "" && b.Secret(ns, ps.Name) == nil {
			rc.missing(fldPath.Child("imagePullSecrets").Index(i).Child("name"), "Secret", ps.Name, false)
		}
	}
	return rc.errs
}

// refChecker collects the errors of a pod's references to ConfigMaps and
// Secrets of namespace ns among the inputs b.
type refChecker struct {
	ns   string
	b    refs
	errs field.ErrorList
}

func (rc *refChecker) missing(p *field.Path, kind, name string, optionalOK bool) {
	detail := fmt.Sprintf("no %s %q in namespace %q among the inputs", kind, name, rc.ns)
	if optionalOK {
		detail += " (add it, or mark the reference optional: true)"
	}
	rc.errs = append(rc.errs, &field.Error{Type: field.ErrorTypeNotFound, Field: p.String(), BadValue: name, Detail: detail})
}

func (rc *refChecker) noKey(p *field.Path, kind, name, key string) {
	rc.errs = append(rc.errs, &field.Error{Type: field.ErrorTypeNotFound, Field: p.String(), BadValue: key,
		Detail: fmt.Sprintf("%s %q has no such key (add it, or mark the reference optional: true)", kind, name)})
}

func (rc *refChecker) configMap(name string, optional *bool, items []corev1.KeyToPath, namePath, itemsPath *field.Path) {
	if name == "" || optional != nil && *optional {
		return
	}
	cm := rc.b.ConfigMap(rc.ns, name)
	if cm == nil {
		rc.missing(namePath, "ConfigMap", name, true)
		return
	}
	for i, it := range items {
		_, d := cm.Data[it.Key]
		_, bd := cm.BinaryData[it.Key]
		if !d && !bd {
			rc.noKey(itemsPath.Index(i).Child("key"), "ConfigMap", name, it.Key)
		}
	}
}

func (rc *refChecker) secret(name string, optional *bool, items []corev1.KeyToPath, namePath, itemsPath *field.Path) {
	if name == "" || optional != nil && *optional {
		return
	}
	s := rc.b.Secret(rc.ns, name)
	if s == nil {
		rc.missing(namePath, "Secret", name, true)
		return
	}
	for i, it := range items {
		if _, ok := s.Data[it.Key]; !ok {
			rc.noKey(itemsPath.Index(i).Child("key"), "Secret", name, it.Key)
		}
	}
}

func (rc *refChecker) volume(v *corev1.Volume, vp *field.Path) {
	if c := v.ConfigMap; c != nil {
		rc.configMap(c.Name, c.Optional, c.Items, vp.Child("configMap", "name"), vp.Child("configMap", "items"))
	}
	if s := v.Secret; s != nil {
		rc.secret(s.SecretName, s.Optional, s.Items, vp.Child("secret", "secretName"), vp.Child("secret", "items"))
	}
	if v.Projected != nil {
		for j, src := range v.Projected.Sources {
			sp := vp.Child("projected", "sources").Index(j)
			if c := src.ConfigMap; c != nil {
				rc.configMap(c.Name, c.Optional, c.Items, sp.Child("configMap", "name"), sp.Child("configMap", "items"))
			}
			if s := src.Secret; s != nil {
				rc.secret(s.Name, s.Optional, s.Items, sp.Child("secret", "name"), sp.Child("secret", "items"))
			}
		}
	}
}

func (rc *refChecker) env(c *corev1.Container, cp *field.Path) {
	ns, b := rc.ns, rc.b
	for j, ev := range c.Env {
		if ev.ValueFrom == nil {
			continue
		}
		vp := cp.Child("env").Index(j).Child("valueFrom")
		if r := ev.ValueFrom.ConfigMapKeyRef; r != nil && (r.Optional == nil || !*r.Optional) && r.Name != "" {
			// The kubelet reads env values from data only, never binaryData.
			if cm := b.ConfigMap(ns, r.Name); cm == nil {
				rc.missing(vp.Child("configMapKeyRef", "name"), "ConfigMap", r.Name, true)
			} else if _, ok := cm.Data[r.Key]; !ok {
				rc.noKey(vp.Child("configMapKeyRef", "key"), "ConfigMap", r.Name, r.Key)
			}
		}
		if r := ev.ValueFrom.SecretKeyRef; r != nil && (r.Optional == nil || !*r.Optional) && r.Name != "" {
			if s := b.Secret(ns, r.Name); s == nil {
				rc.missing(vp.Child("secretKeyRef", "name"), "Secret", r.Name, true)
			} else if _, ok := s.Data[r.Key]; !ok {
				rc.noKey(vp.Child("secretKeyRef", "key"), "Secret", r.Name, r.Key)
			}
		}
	}
	for j, ef := range c.EnvFrom {
		ep := cp.Child("envFrom").Index(j)
		if r := ef.ConfigMapRef; r != nil && (r.Optional == nil || !*r.Optional) && r.Name != "" && b.ConfigMap(ns, r.Name) == nil {
			rc.missing(ep.Child("configMapRef", "name"), "ConfigMap", r.Name, true)
		}
		if r := ef.SecretRef; r != nil && (r.Optional == nil || !*r.Optional) && r.Name != "" && b.Secret(ns, r.Name) == nil {
			rc.missing(ep.Child("secretRef", "name"), "Secret", r.Name, true)
		}
	}
}
