package pod

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/runtime"
)

// The kubelet's admission: a pod it refuses is never started. It ends
// Failed with the handler's reason and "Pod was rejected: <message>", and
// a Warning event with the reason and message (kubelet.go rejectPod).
// The handlers podrun has, in the kubelet's order: sysctls, AppArmor.

// safeSysctls is the kubelet's safe list (pkg/kubelet/sysctl/safe_sysctls.go,
// v1.34; every kernel podrun supports has them all namespaced).
var safeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_wmem",
}

// sysctlNamespace is the kernel namespace that isolates a sysctl
// (component-helpers' namespaceOf): "IPC", "Net", or "" when none is known.
func sysctlNamespace(name string) string {
	switch name {
	case "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.shm",
		"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.msg":
		return "IPC"
	}
	switch {
	case strings.HasPrefix(name, "net."):
		return "Net"
	case strings.HasPrefix(name, "fs.mqueue."):
		return "IPC"
	}
	return ""
}

// normalizeSysctl is component-helpers' NormalizeName: a name written with
// slashes (net/ipv4/conf/eth0.100/rp_filter) becomes the dotted form, with
// the dots it had turned into slashes.
func normalizeSysctl(s string) string {
	i := strings.IndexAny(s, "./")
	if i < 0 || s[i] == '.' {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}

// sysctlAllowlist is the kubelet's patternAllowlist: the safe sysctls plus
// --allowed-unsafe-sysctls, each a name or a prefix ending in '*'.
type sysctlAllowlist struct {
	names, prefixes map[string]string // to the namespace
}

// CheckSysctlPatterns reports an --allowed-unsafe-sysctls entry the
// kubelet would refuse to start with: one not known to be namespaced.
func CheckSysctlPatterns(patterns []string) error {
	_, err := newSysctlAllowlist(patterns)
	return err
}

func newSysctlAllowlist(unsafe []string) (*sysctlAllowlist, error) {
	w := &sysctlAllowlist{names: map[string]string{}, prefixes: map[string]string{}}
	for _, p := range append(append([]string{}, safeSysctls...), unsafe...) {
		p = normalizeSysctl(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		name, prefixed := p, false
		if i := strings.IndexByte(p, '*'); i >= 0 {
			name, prefixed = p[:i], true
		}
		ns := sysctlNamespace(name)
		if ns == "" {
			return nil, fmt.Errorf("the sysctls %q are not known to be namespaced", name)
		}
		if prefixed {
			w.prefixes[name] = ns
		} else {
			w.names[name] = ns
		}
	}
	return w, nil
}

// check is validateSysctl: allowlisted, and not of a namespace the pod
// shares with the host.
func (w *sysctlAllowlist) check(name string, hostNet, hostIPC bool) error {
	name = normalizeSysctl(name)
	ns, ok := w.names[name]
	if !ok {
		for p, pns := range w.prefixes {
			if strings.HasPrefix(name, p) {
				ns, ok = pns, true
				break
			}
		}
	}
	switch {
	case !ok:
		return fmt.Errorf("%q not allowlisted", name)
	case ns == "IPC" && hostIPC, ns == "Net" && hostNet:
		return fmt.Errorf("%q not allowed with host %s enabled", name, ns)
	}
	return nil
}

// appArmorRequired is the kubelet's apparmor isRequired: the pod or a
// container asks for a profile other than Unconfined, in its
// securityContext or in the deprecated per-container annotation. The
// kubelet refuses such a pod only on a host without AppArmor; with it, the
// runtime applies the profiles (runtime.Spec.AppArmor).
func appArmorRequired(p *corev1.Pod) bool {
	if sc := p.Spec.SecurityContext; sc != nil && sc.AppArmorProfile != nil && sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
		return true
	}
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if sc := c.SecurityContext; sc != nil && sc.AppArmorProfile != nil && sc.AppArmorProfile.Type != corev1.AppArmorProfileTypeUnconfined {
			return true
		}
	}
	for k, v := range p.Annotations {
		if strings.HasPrefix(k, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) && v != corev1.DeprecatedAppArmorBetaProfileNameUnconfined {
			return true
		}
	}
	return false
}

// admit runs the admission handlers; a refusal gives the reason and the
// handler's message.
func admit(p *corev1.Pod, unsafeSysctls []string) (reason, message string, ok bool) {
	if sc := p.Spec.SecurityContext; sc != nil && len(sc.Sysctls) > 0 {
		w, err := newSysctlAllowlist(unsafeSysctls)
		if err != nil {
			return "SysctlForbidden", fmt.Sprintf("forbidden sysctl: %v", err), false
		}
		for _, s := range sc.Sysctls {
			if err := w.check(s.Name, p.Spec.HostNetwork, p.Spec.HostIPC); err != nil {
				return "SysctlForbidden", fmt.Sprintf("forbidden sysctl: %v", err), false
			}
		}
	}
	if appArmorRequired(p) && !runtime.AppArmorEnabled() {
		return runtime.AppArmorReason, runtime.AppArmorRefusal(), false
	}
	return "", "", true
}
