package manifest

import (
	"path"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// runnableVolumes are the volume sources podrun's volumes package provides.
var runnableVolumes = []string{"configMap", "downwardAPI", "emptyDir", "hostPath", "projected", "secret"}

// The reasons of refused protections.
const (
	noSELinux  = "podrun does not apply SELinux labels"
	noWindows  = "podrun runs Linux containers only"
	noEviction = "podrun does not measure or enforce local storage usage (the kubelet's eviction manager); remove the limit"
)

// Unsupported lists what in a valid pod podrun cannot run, as field errors
// in the API server's format (paths from the pod's root). It is not part of
// validation: the API server accepts all of these. The list:
//   - volumes other than emptyDir, hostPath, configMap, secret, downwardAPI
//     and projected (persistentVolumeClaim, ephemeral, nfs, csi, image,
//     cloud disks...), projected sources that need an API server
//     (serviceAccountToken, clusterTrustBundle, podCertificate), and
//     volumeDevices;
//   - an emptyDir medium other than "" or Memory (HugePages);
//   - a mountPath that is not absolute (runc refuses it);
//   - restartPolicyRules (alpha in 1.34; dropped there, ignored by podrun);
//   - spec.os.name windows, and hostUsers: false (no user namespaces);
//   - extended resources and hugepages (no device plugins), resource claims,
//     and a runtimeClassName (podrun has one runtime);
//   - protections podrun cannot put in force: SELinux (seLinuxOptions,
//     seLinuxChangePolicy), windowsOptions, procMount: Unmasked (needs user
//     namespaces), an ephemeral-storage limit and a disk emptyDir's
//     sizeLimit (podrun has no eviction manager to enforce them).
func Unsupported(p *corev1.Pod) field.ErrorList {
	return unsupportedSpec(&p.Spec, field.NewPath("spec"))
}

func unsupportedSpec(spec *corev1.PodSpec, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, unsupportedVolumes(spec, fp)...)
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		errs = append(errs, field.NotSupported(fp.Child("os", "name"), spec.OS.Name, []corev1.OSName{corev1.Linux}))
	}
	if spec.HostUsers != nil && !*spec.HostUsers {
		errs = append(errs, field.Forbidden(fp.Child("hostUsers"), "podrun does not run pods in user namespaces"))
	}
	if sc := spec.SecurityContext; sc != nil {
		sp := fp.Child("securityContext")
		if sc.SELinuxOptions != nil {
			errs = append(errs, field.Forbidden(sp.Child("seLinuxOptions"), noSELinux))
		}
		if sc.SELinuxChangePolicy != nil {
			errs = append(errs, field.Forbidden(sp.Child("seLinuxChangePolicy"), noSELinux))
		}
		if sc.WindowsOptions != nil {
			errs = append(errs, field.Forbidden(sp.Child("windowsOptions"), noWindows))
		}
	}
	if spec.Resources != nil {
		if _, ok := spec.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			errs = append(errs, field.Forbidden(fp.Child("resources", "limits").Key(string(corev1.ResourceEphemeralStorage)), noEviction))
		}
	}
	if spec.RuntimeClassName != nil {
		errs = append(errs, field.Forbidden(fp.Child("runtimeClassName"), "podrun has a single runtime"))
	}
	if len(spec.ResourceClaims) > 0 {
		errs = append(errs, field.Forbidden(fp.Child("resourceClaims"), "podrun does not allocate dynamic resources"))
	}
	visitContainers(spec, fp, func(c *corev1.Container, cp *field.Path) {
		errs = append(errs, unsupportedContainer(c, cp)...)
	})
	return errs
}

// unsupportedVolumes are the volumes, and volume settings, podrun cannot provide.
func unsupportedVolumes(spec *corev1.PodSpec, fp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, v := range spec.Volumes {
		vp := fp.Child("volumes").Index(i)
		for _, src := range volumeSources(&v.VolumeSource) {
			if !slices.Contains(runnableVolumes, src) {
				errs = append(errs, field.Forbidden(vp.Child(src), "podrun runs only emptyDir, hostPath, configMap, secret, downwardAPI and projected volumes"))
			}
		}
		if v.Projected != nil {
			for j, ps := range v.Projected.Sources {
				pp := vp.Child("projected", "sources").Index(j)
				switch {
				case ps.ServiceAccountToken != nil:
					errs = append(errs, field.Forbidden(pp.Child("serviceAccountToken"), "podrun has no API server to issue tokens"))
				case ps.ClusterTrustBundle != nil:
					errs = append(errs, field.Forbidden(pp.Child("clusterTrustBundle"), "podrun has no API server to read trust bundles from"))
				case ps.PodCertificate != nil:
					errs = append(errs, field.Forbidden(pp.Child("podCertificate"), "podrun has no API server to issue certificates"))
				}
			}
		}
		if ed := v.EmptyDir; ed != nil && ed.Medium != corev1.StorageMediumDefault && ed.Medium != corev1.StorageMediumMemory {
			errs = append(errs, field.NotSupported(vp.Child("emptyDir", "medium"), ed.Medium, []corev1.StorageMedium{corev1.StorageMediumDefault, corev1.StorageMediumMemory}))
		}
		if ed := v.EmptyDir; ed != nil && ed.Medium == corev1.StorageMediumDefault && ed.SizeLimit != nil && !ed.SizeLimit.IsZero() {
			errs = append(errs, field.Forbidden(vp.Child("emptyDir", "sizeLimit"), noEviction))
		}
	}
	return errs
}

// unsupportedContainer is what one container asks for that podrun cannot run.
func unsupportedContainer(c *corev1.Container, cp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for j, m := range c.VolumeMounts {
		if m.MountPath != "" && !path.IsAbs(m.MountPath) {
			errs = append(errs, field.Invalid(cp.Child("volumeMounts").Index(j).Child("mountPath"), m.MountPath, "podrun needs an absolute path"))
		}
	}
	if len(c.RestartPolicyRules) > 0 {
		errs = append(errs, field.Forbidden(cp.Child("restartPolicyRules"), "podrun does not implement container restart rules"))
	}
	if sc := c.SecurityContext; sc != nil {
		sp := cp.Child("securityContext")
		if sc.SELinuxOptions != nil {
			errs = append(errs, field.Forbidden(sp.Child("seLinuxOptions"), noSELinux))
		}
		if sc.WindowsOptions != nil {
			errs = append(errs, field.Forbidden(sp.Child("windowsOptions"), noWindows))
		}
		if sc.ProcMount != nil && *sc.ProcMount == corev1.UnmaskedProcMount {
			errs = append(errs, field.Forbidden(sp.Child("procMount"), "podrun does not run pods in user namespaces, which an unmasked /proc needs"))
		}
	}
	if len(c.VolumeDevices) > 0 {
		errs = append(errs, field.Forbidden(cp.Child("volumeDevices"), "podrun has no raw block devices"))
	}
	for _, rl := range []struct {
		list corev1.ResourceList
		name string
	}{{c.Resources.Limits, "limits"}, {c.Resources.Requests, "requests"}} {
		for _, n := range sortedKeys(rl.list) {
			if _, defaulted := c.Resources.Limits[n]; rl.name == "requests" && defaulted {
				continue // a request defaulted from its limit: reported once, at the limit
			}
			if !native(string(n)) || strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix) {
				errs = append(errs, field.Forbidden(cp.Child("resources", rl.name).Key(string(n)), "podrun has no device plugins or hugepages; it provides cpu and memory"))
			}
			if n == corev1.ResourceEphemeralStorage && rl.name == "limits" {
				errs = append(errs, field.Forbidden(cp.Child("resources", "limits").Key(string(n)), noEviction))
			}
		}
	}
	if len(c.Resources.Claims) > 0 {
		errs = append(errs, field.Forbidden(cp.Child("resources", "claims"), "podrun does not allocate dynamic resources"))
	}
	return errs
}
