package manifest

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// These checks follow the API server's pod validation of v1.34
// (pkg/apis/core/validation/validation.go, ValidatePodCreate and
// ValidatePodTemplateSpec) with the feature gates at their 1.34 defaults,
// written over the v1 types: same rules, same messages, same field paths.
// Where upstream names a path without its list index (subPath,
// mountPropagation) podrun names the index.
//
// Left out, because they only matter to a scheduler or to cluster objects:
// affinity, tolerations, topology spread constraints, priority classes,
// resource claims, seccomp/AppArmor annotations, sysctl names and the
// Windows-only options.

// validatePod is ValidatePodCreate. Its check that a serviceAccountToken
// projection needs a serviceAccountName is left out: on a cluster the
// ServiceAccount admission plugin always sets the name first.
func validatePod(p *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := apivalidation.ValidateObjectMeta(&p.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	errs = append(errs, validatePodSpec(&p.Spec, &p.ObjectMeta, specPath, true)...)
	if len(p.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	if p.Spec.NodeName != "" && len(p.Spec.SchedulingGates) != 0 {
		errs = append(errs, field.Forbidden(specPath.Child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
	}
	return errs
}

// validatePodTemplate is ValidatePodTemplateSpec.
func validatePodTemplate(t *corev1.PodTemplateSpec, fldPath *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabels(t.Labels, fldPath.Child("labels"))
	errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, fldPath.Child("annotations"))...)
	errs = append(errs, validatePodSpec(&t.Spec, nil, fldPath.Child("spec"), false)...)
	if len(t.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(fldPath.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	return errs
}

func validatePodSpec(spec *corev1.PodSpec, meta *metav1.ObjectMeta, fldPath *field.Path, isPod bool) field.ErrorList {
	var errs field.ErrorList
	if spec.TerminationGracePeriodSeconds == nil {
		errs = append(errs, field.Required(fldPath.Child("terminationGracePeriodSeconds"), ""))
	}
	grace := spec.TerminationGracePeriodSeconds
	hostUsers := spec.HostUsers == nil || *spec.HostUsers

	vols, vErrs := validateVolumes(spec.Volumes, meta, fldPath.Child("volumes"))
	errs = append(errs, vErrs...)
	c := containerCtx{vols: vols, grace: grace, os: spec.OS, restartPolicy: spec.RestartPolicy, hostUsers: hostUsers}
	errs = append(errs, validateContainers(spec.Containers, c, fldPath.Child("containers"))...)
	errs = append(errs, validateInitContainers(spec.InitContainers, spec.Containers, c, fldPath.Child("initContainers"))...)
	if spec.Resources != nil {
		errs = append(errs, validateResources(spec.Resources, fldPath.Child("resources"))...)
	}

	if spec.HostNetwork {
		for i, ctr := range spec.Containers {
			for j, port := range ctr.Ports {
				if hp, cp := port.HostPort, port.ContainerPort; (isPod || hp != 0) && hp != cp {
					errs = append(errs, field.Invalid(fldPath.Child("containers").Index(i).Child("ports").Index(j).Child("hostPort"),
						port.HostPort, "must match `containerPort` when `hostNetwork` is true"))
				}
			}
		}
	}
	errs = append(errs, validateEnum(fldPath.Child("restartPolicy"), spec.RestartPolicy,
		corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever)...)
	errs = append(errs, validateEnum(fldPath.Child("dnsPolicy"), spec.DNSPolicy,
		corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone)...)
	errs = append(errs, metav1validation.ValidateLabels(spec.NodeSelector, fldPath.Child("nodeSelector"))...)
	errs = append(errs, validatePodSecurityContext(spec, fldPath)...)
	errs = append(errs, validateDNSConfig(spec.DNSConfig, spec.DNSPolicy, fldPath.Child("dnsConfig"))...)
	for i, g := range spec.ReadinessGates {
		errs = append(errs, qualifiedName(string(g.ConditionType), fldPath.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	seenGates := sets.New[string]()
	for i, g := range spec.SchedulingGates {
		errs = append(errs, qualifiedName(g.Name, fldPath.Child("schedulingGates").Index(i))...)
		if seenGates.Has(g.Name) {
			errs = append(errs, field.Duplicate(fldPath.Child("schedulingGates").Index(i), g.Name))
		}
		seenGates.Insert(g.Name)
	}
	if !hostUsers {
		for _, f := range []struct {
			set  bool
			name string
		}{{spec.HostNetwork, "hostNetwork"}, {spec.HostPID, "hostPID"}, {spec.HostIPC, "hostIPC"}} {
			if f.set {
				errs = append(errs, field.Forbidden(fldPath.Child(f.name), "when `hostUsers` is false"))
			}
		}
	}
	if spec.HostnameOverride != nil {
		errs = append(errs, validateHostnameOverride(spec, fldPath)...)
	}
	if spec.ServiceAccountName != "" {
		errs = append(errs, dnsSubdomain(spec.ServiceAccountName, fldPath.Child("serviceAccountName"))...)
	}
	if spec.NodeName != "" {
		errs = append(errs, dnsSubdomain(spec.NodeName, fldPath.Child("nodeName"))...)
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && (*d < 1 || *d > math.MaxInt32) {
		errs = append(errs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), *d, validation.InclusiveRangeError(1, math.MaxInt32)))
	}
	if spec.Hostname != "" {
		errs = append(errs, dnsLabel(spec.Hostname, fldPath.Child("hostname"))...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, dnsLabel(spec.Subdomain, fldPath.Child("subdomain"))...)
	}
	for i, ha := range spec.HostAliases {
		p := fldPath.Child("hostAliases").Index(i)
		errs = append(errs, validation.IsValidIPForLegacyField(p.Child("ip"), ha.IP, false, nil)...)
		for j, h := range ha.Hostnames {
			errs = append(errs, dnsSubdomain(h, p.Child("hostnames").Index(j))...)
		}
	}
	if spec.RuntimeClassName != nil {
		errs = append(errs, dnsSubdomain(*spec.RuntimeClassName, fldPath.Child("runtimeClassName"))...)
	}
	if spec.Overhead != nil {
		errs = append(errs, validateResources(&corev1.ResourceRequirements{Limits: spec.Overhead}, fldPath.Child("overhead"))...)
	}
	if spec.OS != nil {
		switch spec.OS.Name {
		case "":
			errs = append(errs, field.Required(fldPath.Child("os", "name"), ""))
		case corev1.Linux, corev1.Windows:
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("os"), spec.OS.Name, []corev1.OSName{corev1.Linux, corev1.Windows}))
		}
	}
	errs = append(errs, validateFileKeyRefVolumes(spec, fldPath)...)
	return errs
}

type containerCtx struct {
	vols          map[string]corev1.VolumeSource
	grace         *int64
	os            *corev1.PodOS
	restartPolicy corev1.RestartPolicy
	hostUsers     bool
}

func validateContainers(cs []corev1.Container, c containerCtx, fldPath *field.Path) field.ErrorList {
	if len(cs) == 0 {
		return field.ErrorList{field.Required(fldPath, "")}
	}
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range cs {
		ctr := &cs[i]
		p := fldPath.Index(i)
		errs = append(errs, validateContainerCommon(ctr, c, p)...)
		if names.Has(ctr.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), ctr.Name))
		} else {
			names.Insert(ctr.Name)
		}
		if ctr.Lifecycle != nil {
			errs = append(errs, validateLifecycle(ctr.Lifecycle, c, p.Child("lifecycle"))...)
		}
		errs = append(errs, validateProbes(ctr, c.grace, p)...)
		// ContainerRestartRules is alpha and off in 1.34.
		if ctr.RestartPolicy != nil {
			msg := "may not be set for non-init containers"
			if *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				msg += " (a sidecar is an initContainers entry with restartPolicy: Always)"
			}
			errs = append(errs, field.Forbidden(p.Child("restartPolicy"), msg))
		}
	}
	return append(errs, hostPortConflicts(cs, fldPath)...)
}

func validateInitContainers(inits, apps []corev1.Container, c containerCtx, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for _, ctr := range apps {
		names.Insert(ctr.Name)
	}
	for i := range inits {
		ctr := &inits[i]
		p := fldPath.Index(i)
		errs = append(errs, validateContainerCommon(ctr, c, p)...)
		sidecar := false
		if ctr.RestartPolicy != nil {
			if *ctr.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				sidecar = true
			} else {
				errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *ctr.RestartPolicy, []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
			}
		}
		if names.Has(ctr.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), ctr.Name))
		} else if ctr.Name != "" {
			names.Insert(ctr.Name)
		}
		// Init containers run one at a time: host ports only clash within one.
		errs = append(errs, hostPortConflicts([]corev1.Container{*ctr}, fldPath)...)
		if sidecar {
			if ctr.Lifecycle != nil {
				errs = append(errs, validateLifecycle(ctr.Lifecycle, c, p.Child("lifecycle"))...)
			}
			errs = append(errs, validateProbes(ctr, c.grace, p)...)
		} else {
			const msg = "may not be set for init containers without restartPolicy=Always"
			if ctr.Lifecycle != nil {
				errs = append(errs, field.Forbidden(p.Child("lifecycle"), msg))
			}
			if ctr.LivenessProbe != nil {
				errs = append(errs, field.Forbidden(p.Child("livenessProbe"), msg))
			}
			if ctr.ReadinessProbe != nil {
				errs = append(errs, field.Forbidden(p.Child("readinessProbe"), msg))
			}
			if ctr.StartupProbe != nil {
				errs = append(errs, field.Forbidden(p.Child("startupProbe"), msg))
			}
		}
	}
	return errs
}

func validateContainerCommon(ctr *corev1.Container, c containerCtx, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ctr.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, dnsLabel(ctr.Name, p.Child("name"))...)
	}
	if ctr.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	}
	errs = append(errs, validateEnum(p.Child("terminationMessagePolicy"), ctr.TerminationMessagePolicy,
		corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError)...)
	errs = append(errs, validatePorts(ctr.Ports, p.Child("ports"))...)
	errs = append(errs, validateEnv(ctr.Env, p.Child("env"))...)
	errs = append(errs, validateEnvFrom(ctr.EnvFrom, p.Child("envFrom"))...)
	errs = append(errs, validateVolumeMounts(ctr, c.vols, p.Child("volumeMounts"))...)
	errs = append(errs, validateVolumeDevices(ctr, c.vols, p.Child("volumeDevices"))...)
	errs = append(errs, validateEnum(p.Child("imagePullPolicy"), ctr.ImagePullPolicy, corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever)...)
	errs = append(errs, validateResources(&ctr.Resources, p.Child("resources"))...)
	errs = append(errs, validateResizePolicy(ctr.ResizePolicy, c.restartPolicy, p.Child("resizePolicy"))...)
	errs = append(errs, validateSecurityContext(ctr.SecurityContext, c.hostUsers, p.Child("securityContext"))...)
	return errs
}

// validateEnum reports an empty value as Required and anything outside
// allowed as NotSupported, listing the allowed values.
func validateEnum[T ~string](p *field.Path, v T, allowed ...T) field.ErrorList {
	if v == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, allowed)}
}

var supportedProtocols = []corev1.Protocol{corev1.ProtocolSCTP, corev1.ProtocolTCP, corev1.ProtocolUDP}

func validatePorts(ports []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, port := range ports {
		p := fldPath.Index(i)
		if port.Name != "" {
			if msgs := validation.IsValidPortName(port.Name); len(msgs) != 0 {
				for _, m := range msgs {
					errs = append(errs, field.Invalid(p.Child("name"), port.Name, m))
				}
			} else if names.Has(port.Name) {
				errs = append(errs, field.Duplicate(p.Child("name"), port.Name))
			} else {
				names.Insert(port.Name)
			}
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(p.Child("containerPort"), ""))
		} else {
			for _, m := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(p.Child("containerPort"), port.ContainerPort, m))
			}
		}
		if port.HostPort != 0 {
			for _, m := range validation.IsValidPortNum(int(port.HostPort)) {
				errs = append(errs, field.Invalid(p.Child("hostPort"), port.HostPort, m))
			}
		}
		errs = append(errs, validateEnum(p.Child("protocol"), port.Protocol, supportedProtocols...)...)
	}
	return errs
}

func hostPortConflicts(cs []corev1.Container, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[string]()
	for ci, ctr := range cs {
		for pi, port := range ctr.Ports {
			if port.HostPort == 0 {
				continue
			}
			key := fmt.Sprintf("%s/%s/%d", port.Protocol, port.HostIP, port.HostPort)
			if seen.Has(key) {
				errs = append(errs, field.Duplicate(fldPath.Index(ci).Child("ports").Index(pi).Child("hostPort"), key))
			}
			seen.Insert(key)
		}
	}
	return errs
}

var validEnvFieldPaths = sets.New("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
	"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")

var validVolumeFieldPaths = sets.New("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")

var validResourceFieldPaths = sets.New("limits.cpu", "limits.memory", "limits.ephemeral-storage",
	"requests.cpu", "requests.memory", "requests.ephemeral-storage")

func validateEnv(vars []corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range vars {
		p := fldPath.Index(i)
		if ev.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else {
			for _, m := range validation.IsRelaxedEnvVarName(ev.Name) {
				errs = append(errs, field.Invalid(p.Child("name"), ev.Name, m))
			}
		}
		errs = append(errs, validateEnvValueFrom(ev, p.Child("valueFrom"))...)
	}
	return errs
}

func validateEnvValueFrom(ev corev1.EnvVar, p *field.Path) field.ErrorList {
	vf := ev.ValueFrom
	if vf == nil {
		return nil
	}
	var errs field.ErrorList
	n := 0
	if vf.FieldRef != nil {
		n++
		errs = append(errs, validateObjectFieldSelector(vf.FieldRef, validEnvFieldPaths, p.Child("fieldRef"))...)
	}
	if vf.ResourceFieldRef != nil {
		n++
		errs = append(errs, validateResourceFieldSelector(vf.ResourceFieldRef, false, p.Child("resourceFieldRef"))...)
	}
	if vf.ConfigMapKeyRef != nil {
		n++
		errs = append(errs, validateKeySelector(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, p.Child("configMapKeyRef"))...)
	}
	if vf.SecretKeyRef != nil {
		n++
		errs = append(errs, validateKeySelector(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, p.Child("secretKeyRef"))...)
	}
	if vf.FileKeyRef != nil {
		n++
		errs = append(errs, validateFileKeySelector(vf.FileKeyRef, p.Child("fileKeyRef"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Invalid(p, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
	case ev.Value != "":
		errs = append(errs, field.Invalid(p, "", "may not be specified when `value` is not empty"))
	case n > 1:
		errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
	}
	return errs
}

// downwardLabels are the pod fields the API server can convert a v1
// fieldPath to (ConvertDownwardAPIFieldLabel); which of them a volume or an
// env var may use is narrower.
var downwardLabels = sets.New("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
	"spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName", "status.phase", "status.hostIP",
	"status.hostIPs", "status.podIP", "status.podIPs")

func validateObjectFieldSelector(fs *corev1.ObjectFieldSelector, valid sets.Set[string], p *field.Path) field.ErrorList {
	if fs.APIVersion == "" {
		return field.ErrorList{field.Required(p.Child("apiVersion"), "")}
	}
	if fs.FieldPath == "" {
		return field.ErrorList{field.Required(p.Child("fieldPath"), "")}
	}
	converr := func(msg string) field.ErrorList {
		return field.ErrorList{field.Invalid(p.Child("fieldPath"), fs.FieldPath, "error converting fieldPath: "+msg)}
	}
	if fs.APIVersion != "v1" {
		return converr("unsupported pod version: " + fs.APIVersion)
	}
	// Subscripted paths: metadata.labels['key'], metadata.annotations['key'].
	if base, sub, ok := splitSubscript(fs.FieldPath); ok {
		switch base {
		case "metadata.annotations":
			return qualifiedName(strings.ToLower(sub), p)
		case "metadata.labels":
			return qualifiedName(sub, p)
		default:
			return converr("field label does not support subscript: " + fs.FieldPath)
		}
	}
	fp := fs.FieldPath
	if fp == "spec.host" { // what old clients sent for spec.nodeName
		fp = "spec.nodeName"
	}
	if !downwardLabels.Has(fp) {
		return converr("field label not supported: " + fp)
	}
	if !valid.Has(fp) {
		return field.ErrorList{field.NotSupported(p.Child("fieldPath"), fp, sets.List(valid))}
	}
	return nil
}

func splitSubscript(fp string) (base, sub string, ok bool) {
	s, found := strings.CutSuffix(fp, "']")
	if !found {
		return "", "", false
	}
	base, sub, ok = strings.Cut(s, "['")
	return base, sub, ok && base != ""
}

func validateResourceFieldSelector(fs *corev1.ResourceFieldSelector, volume bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case volume && fs.ContainerName == "":
		errs = append(errs, field.Required(p.Child("containerName"), ""))
	case fs.Resource == "":
		errs = append(errs, field.Required(p.Child("resource"), ""))
	case !validResourceFieldPaths.Has(fs.Resource) && !strings.HasPrefix(fs.Resource, "requests.hugepages-") && !strings.HasPrefix(fs.Resource, "limits.hugepages-"):
		errs = append(errs, field.NotSupported(p.Child("resource"), fs.Resource, sets.List(validResourceFieldPaths)))
	}
	if fs.Divisor.IsZero() {
		return errs
	}
	d := fs.Divisor.String()
	switch {
	case strings.HasSuffix(fs.Resource, ".cpu"):
		if d != "1m" && d != "1" {
			errs = append(errs, field.Invalid(p.Child("divisor"), fs.Resource, "only divisor's values 1m and 1 are supported with the cpu resource"))
		}
	case strings.HasSuffix(fs.Resource, ".memory"), strings.HasSuffix(fs.Resource, ".ephemeral-storage"), strings.Contains(fs.Resource, ".hugepages-"):
		if !byteDivisors.Has(d) {
			errs = append(errs, field.Invalid(p.Child("divisor"), fs.Resource, "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the "+
				strings.TrimPrefix(strings.TrimPrefix(fs.Resource, "limits."), "requests.")+" resource"))
		}
	}
	return errs
}

var byteDivisors = sets.New("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")

// validateKeySelector checks a configMapKeyRef or secretKeyRef.
func validateKeySelector(name, key string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, m := range apivalidation.NameIsDNSSubdomain(name, false) {
		errs = append(errs, field.Invalid(p.Child("name"), name, m))
	}
	if key == "" {
		errs = append(errs, field.Required(p.Child("key"), ""))
	} else {
		for _, m := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(p.Child("key"), key, m))
		}
	}
	return errs
}

func validateFileKeySelector(s *corev1.FileKeySelector, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Key == "" {
		errs = append(errs, field.Required(p.Child("key"), ""))
	} else {
		for _, m := range validation.IsRelaxedEnvVarName(s.Key) {
			errs = append(errs, field.Invalid(p.Child("key"), s.Key, m))
		}
	}
	if s.VolumeName == "" {
		errs = append(errs, field.Required(p.Child("volumeName"), ""))
	} else {
		errs = append(errs, dnsLabel(s.VolumeName, p.Child("volumeName"))...)
	}
	if s.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	} else {
		errs = append(errs, noBacksteps(s.Path, p.Child("path"))...)
	}
	return errs
}

func validateEnvFrom(srcs []corev1.EnvFromSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ef := range srcs {
		p := fldPath.Index(i)
		if ef.Prefix != "" {
			for _, m := range validation.IsRelaxedEnvVarName(ef.Prefix) {
				errs = append(errs, field.Invalid(p.Child("prefix"), ef.Prefix, m))
			}
		}
		n := 0
		if ef.ConfigMapRef != nil {
			n++
			errs = append(errs, requiredName(ef.ConfigMapRef.Name, p.Child("configMapRef", "name"))...)
		}
		if ef.SecretRef != nil {
			n++
			errs = append(errs, requiredName(ef.SecretRef.Name, p.Child("secretRef", "name"))...)
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(fldPath, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(fldPath, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

func requiredName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	for _, m := range apivalidation.NameIsDNSSubdomain(name, true) {
		errs = append(errs, field.Invalid(p, name, m))
	}
	return errs
}

func validateVolumeMounts(ctr *corev1.Container, vols map[string]corev1.VolumeSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	devices := map[string]string{}
	for _, d := range ctr.VolumeDevices {
		devices[d.Name] = d.DevicePath
	}
	devicePaths := sets.New[string]()
	for _, d := range ctr.VolumeDevices {
		devicePaths.Insert(d.DevicePath)
	}
	mountPoints := sets.New[string]()
	for i, m := range ctr.VolumeMounts {
		p := fldPath.Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		if _, ok := vols[m.Name]; !ok {
			errs = append(errs, field.NotFound(p.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(p.Child("mountPath"), ""))
		}
		if mountPoints.Has(m.MountPath) {
			errs = append(errs, field.Invalid(p.Child("mountPath"), m.MountPath, "must be unique"))
		}
		mountPoints.Insert(m.MountPath)
		if _, ok := devices[m.Name]; ok {
			errs = append(errs, field.Invalid(p.Child("name"), m.Name, "must not already exist in volumeDevices"))
		}
		if devicePaths.Has(m.MountPath) {
			errs = append(errs, field.Invalid(p.Child("mountPath"), m.MountPath, "must not already exist as a path in volumeDevices"))
		}
		if m.SubPath != "" {
			errs = append(errs, localDescendingPath(m.SubPath, p.Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				errs = append(errs, field.Invalid(p.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			errs = append(errs, localDescendingPath(m.SubPathExpr, p.Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil {
			errs = append(errs, validateMountPropagation(*m.MountPropagation, ctr, p.Child("mountPropagation"))...)
		}
		errs = append(errs, validateRecursiveReadOnly(m, p.Child("recursiveReadOnly"))...)
	}
	return errs
}

func validateMountPropagation(mp corev1.MountPropagationMode, ctr *corev1.Container, p *field.Path) field.ErrorList {
	supported := []corev1.MountPropagationMode{corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer, corev1.MountPropagationNone}
	var errs field.ErrorList
	if !sets.New(supported...).Has(mp) {
		errs = append(errs, field.NotSupported(p, mp, supported))
	}
	privileged := ctr.SecurityContext != nil && ctr.SecurityContext.Privileged != nil && *ctr.SecurityContext.Privileged
	if mp == corev1.MountPropagationBidirectional && !privileged {
		errs = append(errs, field.Forbidden(p, "Bidirectional mount propagation is available only to privileged containers"))
	}
	return errs
}

func validateRecursiveReadOnly(m corev1.VolumeMount, p *field.Path) field.ErrorList {
	if m.RecursiveReadOnly == nil {
		return nil
	}
	var errs field.ErrorList
	switch *m.RecursiveReadOnly {
	case corev1.RecursiveReadOnlyDisabled:
	case corev1.RecursiveReadOnlyEnabled, corev1.RecursiveReadOnlyIfPossible:
		if !m.ReadOnly {
			errs = append(errs, field.Forbidden(p, "may only be specified when readOnly is true"))
		}
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			errs = append(errs, field.Forbidden(p, "may only be specified when mountPropagation is None or not specified"))
		}
	default:
		errs = append(errs, field.NotSupported(p, *m.RecursiveReadOnly, []corev1.RecursiveReadOnlyMode{
			corev1.RecursiveReadOnlyDisabled, corev1.RecursiveReadOnlyIfPossible, corev1.RecursiveReadOnlyEnabled}))
	}
	return errs
}

func validateVolumeDevices(ctr *corev1.Container, vols map[string]corev1.VolumeSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	mountNames, mountPaths := sets.New[string](), sets.New[string]()
	for _, m := range ctr.VolumeMounts {
		mountNames.Insert(m.Name)
		mountPaths.Insert(m.MountPath)
	}
	paths, names := sets.New[string](), sets.New[string]()
	for i, d := range ctr.VolumeDevices {
		p := fldPath.Index(i)
		if d.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		if names.Has(d.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), d.Name, "must be unique"))
		}
		if src, ok := vols[d.Name]; !ok {
			errs = append(errs, field.NotFound(p.Child("name"), d.Name))
		} else if src.PersistentVolumeClaim == nil && src.Ephemeral == nil {
			errs = append(errs, field.Invalid(p.Child("name"), d.Name, "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
		}
		if d.DevicePath == "" {
			errs = append(errs, field.Required(p.Child("devicePath"), ""))
		}
		if paths.Has(d.DevicePath) {
			errs = append(errs, field.Invalid(p.Child("devicePath"), d.DevicePath, "must be unique"))
		}
		if d.DevicePath != "" && len(noBacksteps(d.DevicePath, p)) > 0 {
			errs = append(errs, field.Invalid(p.Child("devicePath"), d.DevicePath, "can not contain backsteps ('..')"))
		} else {
			paths.Insert(d.DevicePath)
		}
		if mountNames.Has(d.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), d.Name, "must not already exist in volumeMounts"))
		}
		if mountPaths.Has(d.DevicePath) {
			errs = append(errs, field.Invalid(p.Child("devicePath"), d.DevicePath, "must not already exist as a path in volumeMounts"))
		}
		if d.Name != "" {
			names.Insert(d.Name)
		}
	}
	return errs
}

func validateResizePolicy(policies []corev1.ContainerResizePolicy, podRP corev1.RestartPolicy, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[corev1.ResourceName]()
	for i, rp := range policies {
		p := fldPath.Index(i)
		if seen.Has(rp.ResourceName) {
			errs = append(errs, field.Duplicate(p, rp.ResourceName))
		}
		seen.Insert(rp.ResourceName)
		errs = append(errs, validateEnum(p, rp.ResourceName, corev1.ResourceCPU, corev1.ResourceMemory)...)
		errs = append(errs, validateEnum(p, rp.RestartPolicy, corev1.NotRequired, corev1.RestartContainer)...)
		if podRP == corev1.RestartPolicyNever && rp.RestartPolicy != corev1.NotRequired {
			errs = append(errs, field.Invalid(p, rp.RestartPolicy, "must be 'NotRequired' when `restartPolicy` is 'Never'"))
		}
	}
	return errs
}

// validateResources checks resource names and quantities, and that a
// request is at most its limit (equal to it for non-overcommittable ones).
func validateResources(r *corev1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	limPath, reqPath := fldPath.Child("limits"), fldPath.Child("requests")
	cpuOrMem, hugePages := false, false
	for _, rn := range sortedKeys(r.Limits) {
		q, name := r.Limits[rn], string(rn)
		p := limPath.Key(name)
		errs = append(errs, validateResourceName(rn, p)...)
		errs = append(errs, validateQuantity(rn, q, p)...)
		hugePages = hugePages || strings.HasPrefix(name, corev1.ResourceHugePagesPrefix)
		cpuOrMem = cpuOrMem || name == string(corev1.ResourceCPU) || name == string(corev1.ResourceMemory)
	}
	for _, rn := range sortedKeys(r.Requests) {
		q, name := r.Requests[rn], string(rn)
		p := reqPath.Key(name)
		errs = append(errs, validateResourceName(rn, p)...)
		errs = append(errs, validateQuantity(rn, q, p)...)
		if lim, ok := r.Limits[rn]; ok {
			if q.Cmp(lim) != 0 && !overcommittable(name) {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be equal to %s limit of %s", name, lim.String())))
			} else if q.Cmp(lim) > 0 {
				errs = append(errs, field.Invalid(reqPath, q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
			}
		} else if !overcommittable(name) {
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		}
		hugePages = hugePages || strings.HasPrefix(name, corev1.ResourceHugePagesPrefix)
		cpuOrMem = cpuOrMem || name == string(corev1.ResourceCPU) || name == string(corev1.ResourceMemory)
	}
	if hugePages && !cpuOrMem {
		errs = append(errs, field.Forbidden(fldPath, "HugePages require cpu or memory"))
	}
	return errs
}

// native resources have no domain or a kubernetes.io one; only those can be
// overcommitted (requested below their limit), hugepages excepted.
func native(name string) bool {
	return !strings.Contains(name, "/") || strings.Contains(name, "kubernetes.io/")
}

func overcommittable(name string) bool {
	return native(name) && !strings.HasPrefix(name, corev1.ResourceHugePagesPrefix)
}

var standardResources = sets.New("cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
	"requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "resourcequotas",
	"services", "replicationcontrollers", "secrets", "configmaps", "persistentvolumeclaims", "storage",
	"requests.storage", "services.nodeports", "services.loadbalancers")

// validateResourceName is upstream's validateContainerResourceName: a
// qualified name; without a domain, a standard resource and one a container
// can have; with one, native (kubernetes.io) or an extended resource.
func validateResourceName(name corev1.ResourceName, p *field.Path) field.ErrorList {
	n := string(name)
	var errs field.ErrorList
	for _, m := range validation.IsQualifiedName(n) {
		errs = append(errs, field.Invalid(p, name, m))
	}
	if len(errs) == 0 && !strings.Contains(n, "/") && !standardResources.Has(n) &&
		!strings.HasPrefix(n, corev1.ResourceHugePagesPrefix) && !strings.HasPrefix(n, "requests."+corev1.ResourceHugePagesPrefix) {
		errs = append(errs, field.Invalid(p, name, "must be a standard resource type or fully qualified"))
	}
	switch {
	case !strings.Contains(n, "/"):
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory && name != corev1.ResourceEphemeralStorage &&
			!strings.HasPrefix(n, corev1.ResourceHugePagesPrefix) {
			errs = append(errs, field.Invalid(p, name, "must be a standard resource for containers"))
		}
	case !native(n) && (strings.HasPrefix(n, corev1.DefaultResourceRequestsPrefix) || len(validation.IsQualifiedName(corev1.DefaultResourceRequestsPrefix+n)) > 0):
		errs = append(errs, field.Invalid(p, name, "doesn't follow extended resource name standard"))
	}
	return errs
}

func validateQuantity(name corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if q.Sign() < 0 {
		errs = append(errs, field.Invalid(p, q.String(), "must be greater than or equal to 0"))
	}
	// Extended resources are counted in whole units.
	if !native(string(name)) && q.MilliValue()%1000 != 0 {
		errs = append(errs, field.Invalid(p, q, "must be an integer"))
	}
	if strings.HasPrefix(string(name), corev1.ResourceHugePagesPrefix) {
		size, err := resource.ParseQuantity(strings.TrimPrefix(string(name), corev1.ResourceHugePagesPrefix))
		if err != nil || size.Sign() <= 0 || q.Value()%size.Value() != 0 {
			errs = append(errs, field.Invalid(p, q.String(), fmt.Sprintf("%s is not positive integer multiple of %s", q.String(), name)))
		}
	}
	return errs
}

func validateProbes(ctr *corev1.Container, grace *int64, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if pr := ctr.LivenessProbe; pr != nil {
		errs = append(errs, validateProbe(pr, grace, p.Child("livenessProbe"))...)
		if pr.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(p.Child("livenessProbe", "successThreshold"), pr.SuccessThreshold, "must be 1"))
		}
	}
	if pr := ctr.ReadinessProbe; pr != nil {
		errs = append(errs, validateProbe(pr, grace, p.Child("readinessProbe"))...)
		if pr.TerminationGracePeriodSeconds != nil {
			errs = append(errs, field.Invalid(p.Child("readinessProbe", "terminationGracePeriodSeconds"), pr.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
		}
	}
	if pr := ctr.StartupProbe; pr != nil {
		errs = append(errs, validateProbe(pr, grace, p.Child("startupProbe"))...)
		if pr.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(p.Child("startupProbe", "successThreshold"), pr.SuccessThreshold, "must be 1"))
		}
	}
	return errs
}

func validateProbe(pr *corev1.Probe, grace *int64, p *field.Path) field.ErrorList {
	h := pr.ProbeHandler
	errs := validateHandler(handler{exec: h.Exec, httpGet: h.HTTPGet, tcpSocket: h.TCPSocket, grpc: h.GRPC}, grace, p)
	for _, f := range []struct {
		v    int32
		name string
	}{{pr.InitialDelaySeconds, "initialDelaySeconds"}, {pr.TimeoutSeconds, "timeoutSeconds"}, {pr.PeriodSeconds, "periodSeconds"},
		{pr.SuccessThreshold, "successThreshold"}, {pr.FailureThreshold, "failureThreshold"}} {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(f.v), p.Child(f.name))...)
	}
	if t := pr.TerminationGracePeriodSeconds; t != nil && *t <= 0 {
		errs = append(errs, field.Invalid(p.Child("terminationGracePeriodSeconds"), *t, "must be greater than 0"))
	}
	return errs
}

// handler is a probe's or a lifecycle hook's action; exactly one is set.
type handler struct {
	exec      *corev1.ExecAction
	httpGet   *corev1.HTTPGetAction
	tcpSocket *corev1.TCPSocketAction
	grpc      *corev1.GRPCAction
	sleep     *corev1.SleepAction
}

func validateHandler(h handler, grace *int64, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	one := func(set bool, name string, check func(*field.Path) field.ErrorList) {
		if !set {
			return
		}
		if n > 0 {
			errs = append(errs, field.Forbidden(p.Child(name), "may not specify more than 1 handler type"))
			return
		}
		n++
		errs = append(errs, check(p.Child(name))...)
	}
	one(h.exec != nil, "exec", func(p *field.Path) field.ErrorList {
		if len(h.exec.Command) == 0 {
			return field.ErrorList{field.Required(p.Child("command"), "")}
		}
		return nil
	})
	one(h.httpGet != nil, "httpGet", func(p *field.Path) field.ErrorList {
		var errs field.ErrorList
		if h.httpGet.Path == "" {
			errs = append(errs, field.Required(p.Child("path"), ""))
		}
		errs = append(errs, portNumOrName(h.httpGet.Port, p.Child("port"))...)
		if s := h.httpGet.Scheme; s != corev1.URISchemeHTTP && s != corev1.URISchemeHTTPS {
			errs = append(errs, field.NotSupported(p.Child("scheme"), s, []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}))
		}
		for _, hd := range h.httpGet.HTTPHeaders {
			for _, m := range validation.IsHTTPHeaderName(hd.Name) {
				errs = append(errs, field.Invalid(p.Child("httpHeaders"), hd.Name, m))
			}
		}
		return errs
	})
	one(h.tcpSocket != nil, "tcpSocket", func(p *field.Path) field.ErrorList {
		return portNumOrName(h.tcpSocket.Port, p.Child("port"))
	})
	one(h.grpc != nil, "grpc", func(p *field.Path) field.ErrorList {
		return portNumOrName(intstr.FromInt32(h.grpc.Port), p.Child("port"))
	})
	one(h.sleep != nil, "sleep", func(p *field.Path) field.ErrorList {
		if grace != nil && (h.sleep.Seconds < 0 || h.sleep.Seconds > *grace) {
			return field.ErrorList{field.Invalid(p, h.sleep.Seconds, fmt.Sprintf("must be non-negative and less than terminationGracePeriodSeconds (%d)", *grace))}
		}
		return nil
	})
	if n == 0 {
		errs = append(errs, field.Required(p, "must specify a handler type"))
	}
	return errs
}

func portNumOrName(port intstr.IntOrString, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if port.Type == intstr.String {
		for _, m := range validation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(p, port.StrVal, m))
		}
		return errs
	}
	for _, m := range validation.IsValidPortNum(port.IntValue()) {
		errs = append(errs, field.Invalid(p, port.IntValue(), m))
	}
	return errs
}

var linuxStopSignals = sets.New[corev1.Signal](
	"SIGABRT", "SIGALRM", "SIGBUS", "SIGCHLD", "SIGCLD", "SIGCONT", "SIGFPE", "SIGHUP", "SIGILL", "SIGINT", "SIGIO", "SIGIOT",
	"SIGKILL", "SIGPIPE", "SIGPOLL", "SIGPROF", "SIGPWR", "SIGQUIT", "SIGSEGV", "SIGSTKFLT", "SIGSTOP", "SIGSYS", "SIGTERM",
	"SIGTRAP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGUSR1", "SIGUSR2", "SIGVTALRM", "SIGWINCH", "SIGXCPU", "SIGXFSZ",
	"SIGRTMIN", "SIGRTMIN+1", "SIGRTMIN+2", "SIGRTMIN+3", "SIGRTMIN+4", "SIGRTMIN+5", "SIGRTMIN+6", "SIGRTMIN+7", "SIGRTMIN+8",
	"SIGRTMIN+9", "SIGRTMIN+10", "SIGRTMIN+11", "SIGRTMIN+12", "SIGRTMIN+13", "SIGRTMIN+14", "SIGRTMIN+15", "SIGRTMAX-14",
	"SIGRTMAX-13", "SIGRTMAX-12", "SIGRTMAX-11", "SIGRTMAX-10", "SIGRTMAX-9", "SIGRTMAX-8", "SIGRTMAX-7", "SIGRTMAX-6",
	"SIGRTMAX-5", "SIGRTMAX-4", "SIGRTMAX-3", "SIGRTMAX-2", "SIGRTMAX-1", "SIGRTMAX")

func validateLifecycle(l *corev1.Lifecycle, c containerCtx, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, hk := range []struct {
		h    *corev1.LifecycleHandler
		name string
	}{{l.PostStart, "postStart"}, {l.PreStop, "preStop"}} {
		if hk.h != nil {
			errs = append(errs, validateHandler(handler{exec: hk.h.Exec, httpGet: hk.h.HTTPGet, tcpSocket: hk.h.TCPSocket, sleep: hk.h.Sleep}, c.grace, p.Child(hk.name))...)
		}
	}
	if s := l.StopSignal; s != nil {
		sp := p.Child("stopSignal")
		switch {
		case c.os == nil:
			errs = append(errs, field.Forbidden(sp, "may not be set for containers with empty `spec.os.name`"))
		case c.os.Name == corev1.Windows && *s != "SIGKILL" && *s != "SIGTERM":
			errs = append(errs, field.NotSupported(sp, *s, []corev1.Signal{"SIGKILL", "SIGTERM"}))
		case c.os.Name == corev1.Linux && !linuxStopSignals.Has(*s):
			errs = append(errs, field.NotSupported(sp, *s, sets.List(linuxStopSignals)))
		}
	}
	return errs
}

func validateSecurityContext(sc *corev1.SecurityContext, hostUsers bool, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	if sc.RunAsUser != nil {
		for _, m := range validation.IsValidUserID(*sc.RunAsUser) {
			errs = append(errs, field.Invalid(p.Child("runAsUser"), *sc.RunAsUser, m))
		}
	}
	if sc.RunAsGroup != nil {
		for _, m := range validation.IsValidGroupID(*sc.RunAsGroup) {
			errs = append(errs, field.Invalid(p.Child("runAsGroup"), *sc.RunAsGroup, m))
		}
	}
	if pm := sc.ProcMount; pm != nil {
		errs = append(errs, validateEnum(p.Child("procMount"), *pm, corev1.DefaultProcMount, corev1.UnmaskedProcMount)...)
		if hostUsers && *pm == corev1.UnmaskedProcMount {
			errs = append(errs, field.Invalid(p.Child("procMount"), *pm, "`hostUsers` must be false to use `Unmasked`"))
		}
	}
	errs = append(errs, validateSeccomp(sc.SeccompProfile, p.Child("seccompProfile"))...)
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			errs = append(errs, field.Invalid(p, field.OmitValueType{}, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				if c == "CAP_SYS_ADMIN" {
					errs = append(errs, field.Invalid(p, field.OmitValueType{}, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
				}
			}
		}
	}
	return errs
}

func validateSeccomp(sp *corev1.SeccompProfile, p *field.Path) field.ErrorList {
	if sp == nil {
		return nil
	}
	errs := validateEnum(p.Child("type"), sp.Type, corev1.SeccompProfileTypeLocalhost, corev1.SeccompProfileTypeRuntimeDefault, corev1.SeccompProfileTypeUnconfined)
	if sp.Type == corev1.SeccompProfileTypeLocalhost {
		if sp.LocalhostProfile == nil {
			errs = append(errs, field.Required(p.Child("localhostProfile"), "must be set when seccomp type is Localhost"))
		} else {
			errs = append(errs, localDescendingPath(*sp.LocalhostProfile, p.Child("localhostProfile"))...)
		}
	} else if sp.LocalhostProfile != nil {
		errs = append(errs, field.Invalid(p.Child("localhostProfile"), *sp.LocalhostProfile, "can only be set when seccomp type is Localhost"))
	}
	return errs
}

// validatePodSecurityContext names spec.shareProcessNamespace where upstream,
// validating its internal type, says spec.securityContext.shareProcessNamespace.
func validatePodSecurityContext(spec *corev1.PodSpec, specPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace && spec.HostPID {
		errs = append(errs, field.Invalid(specPath.Child("shareProcessNamespace"), true, "ShareProcessNamespace and HostPID cannot both be enabled"))
	}
	sc, p := spec.SecurityContext, specPath.Child("securityContext")
	if sc == nil {
		return errs
	}
	if sc.FSGroup != nil {
		for _, m := range validation.IsValidGroupID(*sc.FSGroup) {
			errs = append(errs, field.Invalid(p.Child("fsGroup"), *sc.FSGroup, m))
		}
	}
	if sc.RunAsUser != nil {
		for _, m := range validation.IsValidUserID(*sc.RunAsUser) {
			errs = append(errs, field.Invalid(p.Child("runAsUser"), *sc.RunAsUser, m))
		}
	}
	if sc.RunAsGroup != nil {
		for _, m := range validation.IsValidGroupID(*sc.RunAsGroup) {
			errs = append(errs, field.Invalid(p.Child("runAsGroup"), *sc.RunAsGroup, m))
		}
	}
	for i, g := range sc.SupplementalGroups {
		for _, m := range validation.IsValidGroupID(g) {
			errs = append(errs, field.Invalid(p.Child("supplementalGroups").Index(i), g, m))
		}
	}
	if sc.SupplementalGroupsPolicy != nil {
		if v := *sc.SupplementalGroupsPolicy; v != corev1.SupplementalGroupsPolicyMerge && v != corev1.SupplementalGroupsPolicyStrict {
			errs = append(errs, field.NotSupported(p.Child("supplementalGroupsPolicy"), v, []corev1.SupplementalGroupsPolicy{corev1.SupplementalGroupsPolicyMerge, corev1.SupplementalGroupsPolicyStrict}))
		}
	}
	if sc.FSGroupChangePolicy != nil {
		if v := *sc.FSGroupChangePolicy; v != corev1.FSGroupChangeAlways && v != corev1.FSGroupChangeOnRootMismatch {
			errs = append(errs, field.NotSupported(p.Child("fsGroupChangePolicy"), v, []corev1.PodFSGroupChangePolicy{corev1.FSGroupChangeAlways, corev1.FSGroupChangeOnRootMismatch}))
		}
	}
	errs = append(errs, validateSeccomp(sc.SeccompProfile, p.Child("seccompProfile"))...)
	return errs
}

func validateDNSConfig(dc *corev1.PodDNSConfig, policy corev1.DNSPolicy, p *field.Path) field.ErrorList {
	if policy == corev1.DNSNone {
		if dc == nil {
			return field.ErrorList{field.Required(p, "must provide `dnsConfig` when `dnsPolicy` is None")}
		}
		if len(dc.Nameservers) == 0 {
			return field.ErrorList{field.Required(p.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None")}
		}
	}
	if dc == nil {
		return nil
	}
	var errs field.ErrorList
	if len(dc.Nameservers) > 3 {
		errs = append(errs, field.Invalid(p.Child("nameservers"), dc.Nameservers, "must not have more than 3 nameservers"))
	}
	for i, ns := range dc.Nameservers {
		errs = append(errs, validation.IsValidIPForLegacyField(p.Child("nameservers").Index(i), ns, false, nil)...)
	}
	if len(dc.Searches) > 32 {
		errs = append(errs, field.Invalid(p.Child("searches"), dc.Searches, "must not have more than 32 search paths"))
	}
	if len(strings.Join(dc.Searches, " ")) > 2048 {
		errs = append(errs, field.Invalid(p.Child("searches"), dc.Searches, "must not have more than 2048 characters (including spaces) in the search list"))
	}
	for i, s := range dc.Searches {
		if s == "." {
			continue
		}
		s = strings.TrimSuffix(s, ".")
		for _, m := range validation.IsDNS1123SubdomainWithUnderscore(s) {
			errs = append(errs, field.Invalid(p.Child("searches").Index(i), s, m))
		}
	}
	for i, o := range dc.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(p.Child("options").Index(i), "must not be empty"))
		}
	}
	return errs
}

func validateHostnameOverride(spec *corev1.PodSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	hp := p.Child("hostnameOverride")
	if spec.SetHostnameAsFQDN != nil && *spec.SetHostnameAsFQDN {
		errs = append(errs, field.Forbidden(hp, "may not be specified when setHostnameAsFQDN is true"))
	}
	if spec.HostNetwork {
		errs = append(errs, field.Forbidden(hp, "may not be specified when hostNetwork is true"))
	}
	if len(*spec.HostnameOverride) > 64 {
		errs = append(errs, field.TooLong(hp, "", 64))
	}
	return append(errs, dnsSubdomain(*spec.HostnameOverride, hp)...)
}

func validateFileKeyRefVolumes(spec *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	srcs := map[string]*corev1.VolumeSource{}
	for i := range spec.Volumes {
		srcs[spec.Volumes[i].Name] = &spec.Volumes[i].VolumeSource
	}
	visitContainers(spec, fldPath, func(c *corev1.Container, cp *field.Path) {
		for j, ev := range c.Env {
			if ev.ValueFrom == nil || ev.ValueFrom.FileKeyRef == nil {
				continue
			}
			name := ev.ValueFrom.FileKeyRef.VolumeName
			p := cp.Child("env").Index(j).Child("valueFrom", "fileKeyRef", "volumeName")
			if src, ok := srcs[name]; !ok {
				errs = append(errs, field.NotFound(p, name))
			} else if src.EmptyDir == nil {
				errs = append(errs, field.Invalid(p, name, "referenced volume must be of type emptyDir"))
			}
		}
	})
	return errs
}

// visitContainers calls fn for every init and app container with its path.
func visitContainers(spec *corev1.PodSpec, fldPath *field.Path, fn func(*corev1.Container, *field.Path)) {
	for i := range spec.InitContainers {
		fn(&spec.InitContainers[i], fldPath.Child("initContainers").Index(i))
	}
	for i := range spec.Containers {
		fn(&spec.Containers[i], fldPath.Child("containers").Index(i))
	}
}

// volumeSourceOrder is the order the API server checks volume sources in:
// the first one set is validated, every later one is "more than 1".
var volumeSourceOrder = []string{"emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs",
	"iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte", "downwardAPI", "fc",
	"flexVolume", "configMap", "azureFile", "vsphereVolume", "photonPersistentDisk", "portworxVolume", "azureDisk",
	"storageos", "projected", "scaleIO", "csi", "ephemeral", "image"}

// volumeSources names the sources set in vs, in volumeSourceOrder.
func volumeSources(vs *corev1.VolumeSource) []string {
	v := reflect.ValueOf(vs).Elem()
	set := map[string]bool{}
	for i := 0; i < v.NumField(); i++ {
		if name, _ := jsonName(v.Type().Field(i)); !v.Field(i).IsNil() {
			set[name] = true
		}
	}
	var out []string
	for _, n := range volumeSourceOrder {
		if set[n] {
			out = append(out, n)
		}
	}
	return out
}

func validateVolumes(vols []corev1.Volume, meta *metav1.ObjectMeta, fldPath *field.Path) (map[string]corev1.VolumeSource, field.ErrorList) {
	var errs field.ErrorList
	names := sets.New[string]()
	created := sets.New[string]() // PVCs made for ephemeral volumes
	if meta != nil && meta.Name != "" {
		for _, v := range vols {
			if v.Ephemeral != nil {
				created.Insert(meta.Name + "-" + v.Name)
			}
		}
	}
	out := map[string]corev1.VolumeSource{}
	for i, v := range vols {
		p := fldPath.Index(i)
		el := validateVolumeSource(&v.VolumeSource, p)
		if v.Name == "" {
			el = append(el, field.Required(p.Child("name"), ""))
		} else {
			el = append(el, dnsLabel(v.Name, p.Child("name"))...)
		}
		if names.Has(v.Name) {
			el = append(el, field.Duplicate(p.Child("name"), v.Name))
		}
		// A volume with errors is left out of the map, so mounts naming it
		// are reported as not found too, as upstream does.
		if len(el) == 0 {
			names.Insert(v.Name)
			out[v.Name] = v.VolumeSource
		} else {
			errs = append(errs, el...)
		}
		if v.PersistentVolumeClaim != nil && created.Has(v.PersistentVolumeClaim.ClaimName) {
			errs = append(errs, field.Invalid(p.Child("persistentVolumeClaim", "claimName"), v.PersistentVolumeClaim.ClaimName,
				"must not reference a PVC that gets created for an ephemeral volume"))
		}
	}
	return out, errs
}

var hostPathTypes = []corev1.HostPathType{corev1.HostPathUnset, corev1.HostPathBlockDev, corev1.HostPathCharDev, corev1.HostPathDirectory,
	corev1.HostPathDirectoryOrCreate, corev1.HostPathFile, corev1.HostPathFileOrCreate, corev1.HostPathSocket}

// validateVolumeSource checks that one source is set, and the sources
// podrun can run in detail; the others only for what they require.
func validateVolumeSource(vs *corev1.VolumeSource, p *field.Path) field.ErrorList {
	srcs := volumeSources(vs)
	if len(srcs) == 0 {
		return field.ErrorList{field.Required(p, "must specify a volume type")}
	}
	var errs field.ErrorList
	for _, extra := range srcs[1:] {
		errs = append(errs, field.Forbidden(p.Child(extra), "may not specify more than 1 volume type"))
	}
	sp := p.Child(srcs[0])
	switch {
	case vs.EmptyDir != nil:
		if sl := vs.EmptyDir.SizeLimit; sl != nil && sl.Sign() < 0 {
			errs = append(errs, field.Forbidden(sp.Child("sizeLimit"), "SizeLimit field must be a valid resource quantity"))
		}
	case vs.HostPath != nil:
		if vs.HostPath.Path == "" {
			return append(errs, field.Required(sp.Child("path"), ""))
		}
		errs = append(errs, noBacksteps(vs.HostPath.Path, sp.Child("path"))...)
		if t := vs.HostPath.Type; t != nil && !sets.New(hostPathTypes...).Has(*t) {
			errs = append(errs, field.NotSupported(sp.Child("type"), *t, hostPathTypes))
		}
	case vs.Secret != nil:
		if vs.Secret.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), ""))
		}
		errs = append(errs, fileMode(vs.Secret.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, keyToPaths(vs.Secret.Items, sp.Child("items"), nil)...)
	case vs.ConfigMap != nil:
		if vs.ConfigMap.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		}
		errs = append(errs, fileMode(vs.ConfigMap.DefaultMode, sp.Child("defaultMode"))...)
		errs = append(errs, keyToPaths(vs.ConfigMap.Items, sp.Child("items"), nil)...)
	case vs.DownwardAPI != nil:
		errs = append(errs, fileMode(vs.DownwardAPI.DefaultMode, sp.Child("defaultMode"))...)
		for i := range vs.DownwardAPI.Items {
			errs = append(errs, downwardFile(&vs.DownwardAPI.Items[i], sp.Child("items").Index(i))...)
		}
	case vs.Projected != nil:
		errs = append(errs, validateProjected(vs.Projected, sp)...)
	case vs.PersistentVolumeClaim != nil:
		if vs.PersistentVolumeClaim.ClaimName == "" {
			errs = append(errs, field.Required(sp.Child("claimName"), ""))
		}
	case vs.NFS != nil:
		if vs.NFS.Server == "" {
			errs = append(errs, field.Required(sp.Child("server"), ""))
		}
		if vs.NFS.Path == "" {
			errs = append(errs, field.Required(sp.Child("path"), ""))
		} else if !path.IsAbs(vs.NFS.Path) {
			errs = append(errs, field.Invalid(sp.Child("path"), vs.NFS.Path, "must be an absolute path"))
		}
	}
	return errs
}

func validateProjected(pv *corev1.ProjectedVolumeSource, p *field.Path) field.ErrorList {
	errs := fileMode(pv.DefaultMode, p.Child("defaultMode"))
	seen := sets.New[string]()
	dup := func(path, name string) {
		if path == "" {
			return
		}
		if seen.Has(path) {
			errs = append(errs, field.Invalid(p, name, "conflicting duplicate paths"))
		}
		seen.Insert(path)
	}
	for i, s := range pv.Sources {
		sp := p.Child("sources").Index(i)
		n := 0
		if s.Secret != nil {
			n++
			if s.Secret.Name == "" {
				errs = append(errs, field.Required(sp.Child("secret", "name"), ""))
			}
			errs = append(errs, keyToPaths(s.Secret.Items, sp.Child("secret", "items"), func(path string) { dup(path, s.Secret.Name) })...)
		}
		if s.ConfigMap != nil {
			n++
			if s.ConfigMap.Name == "" {
				errs = append(errs, field.Required(sp.Child("configMap", "name"), ""))
			}
			errs = append(errs, keyToPaths(s.ConfigMap.Items, sp.Child("configMap", "items"), func(path string) { dup(path, s.ConfigMap.Name) })...)
		}
		if s.DownwardAPI != nil {
			n++
			for j := range s.DownwardAPI.Items {
				errs = append(errs, downwardFile(&s.DownwardAPI.Items[j], sp.Child("downwardAPI", "items").Index(j))...)
				dup(s.DownwardAPI.Items[j].Path, s.DownwardAPI.Items[j].Path)
			}
		}
		if t := s.ServiceAccountToken; t != nil {
			n++
			tp := sp.Child("serviceAccountToken")
			if t.ExpirationSeconds != nil && *t.ExpirationSeconds < 600 {
				errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *t.ExpirationSeconds, "may not specify a duration less than 10 minutes"))
			}
			if t.ExpirationSeconds != nil && *t.ExpirationSeconds > 1<<32 {
				errs = append(errs, field.Invalid(tp.Child("expirationSeconds"), *t.ExpirationSeconds, "may not specify a duration larger than 2^32 seconds"))
			}
			if t.Path == "" {
				errs = append(errs, field.Required(tp.Child("path"), ""))
			} else {
				errs = append(errs, localNonReservedPath(t.Path, tp.Child("path"))...)
			}
		}
		if s.ClusterTrustBundle != nil {
			n++
		}
		if s.PodCertificate != nil {
			n++
		}
		if n > 1 {
			errs = append(errs, field.Forbidden(sp, "may not specify more than 1 volume type per source"))
		}
	}
	return errs
}

func keyToPaths(items []corev1.KeyToPath, p *field.Path, seen func(string)) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		ip := p.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		}
		errs = append(errs, localNonReservedPath(kp.Path, ip.Child("path"))...)
		errs = append(errs, fileMode(kp.Mode, ip.Child("mode"))...)
		if seen != nil {
			seen(kp.Path)
		}
	}
	return errs
}

func downwardFile(f *corev1.DownwardAPIVolumeFile, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	}
	errs = append(errs, localNonReservedPath(f.Path, p.Child("path"))...)
	switch {
	case f.FieldRef != nil:
		errs = append(errs, validateObjectFieldSelector(f.FieldRef, validVolumeFieldPaths, p.Child("fieldRef"))...)
		if f.ResourceFieldRef != nil {
			errs = append(errs, field.Invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		}
	case f.ResourceFieldRef != nil:
		errs = append(errs, validateResourceFieldSelector(f.ResourceFieldRef, true, p.Child("resourceFieldRef"))...)
	default:
		errs = append(errs, field.Required(p, "one of fieldRef and resourceFieldRef is required"))
	}
	return append(errs, fileMode(f.Mode, p.Child("mode"))...)
}

func fileMode(m *int32, p *field.Path) field.ErrorList {
	if m != nil && (*m > 0o777 || *m < 0) {
		return field.ErrorList{field.Invalid(p, *m, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

// localDescendingPath: relative, and no ".." element.
func localDescendingPath(target string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(target) {
		errs = append(errs, field.Invalid(p, target, "must be a relative path"))
	}
	return append(errs, noBacksteps(target, p)...)
}

func noBacksteps(target string, p *field.Path) field.ErrorList {
	for _, part := range strings.Split(filepath.ToSlash(target), "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, target, "must not contain '..'")}
		}
	}
	return nil
}

func localNonReservedPath(target string, p *field.Path) field.ErrorList {
	errs := localDescendingPath(target, p)
	if strings.HasPrefix(target, "..") && !strings.HasPrefix(target, "../") {
		errs = append(errs, field.Invalid(p, target, "must not start with '..'"))
	}
	return errs
}

func dnsLabel(v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, m := range validation.IsDNS1123Label(v) {
		errs = append(errs, field.Invalid(p, v, m))
	}
	return errs
}

func dnsSubdomain(v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, m := range validation.IsDNS1123Subdomain(v) {
		errs = append(errs, field.Invalid(p, v, m))
	}
	return errs
}

func qualifiedName(v string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, m := range validation.IsQualifiedName(v) {
		errs = append(errs, field.Invalid(p, v, m))
	}
	return errs
}
