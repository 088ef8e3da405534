package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/internal/expansion"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
	"github.com/podrun/podrun/volumes"
)

// containerSpec is the kubelet's generateContainerConfig and containerd's
// CRI spec builder, for libcontainer.
func (n *Node) containerSpec(nsb *sandbox, r *pod.ContainerRequest, id, dir, rootfs string) (*runtime.Spec, error) {
	p, c := r.Pod, r.Container
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	s := &runtime.Spec{
		ID: id, Rootfs: rootfs, Sandbox: nsb.rt,
		Args: r.Args, Env: r.Env, Cwd: c.WorkingDir,
		CgroupPath:    n.cfg.Cgroups.ContainerPath(p, c.Name),
		Resources:     n.cfg.Cgroups.ContainerResources(p, c),
		CgroupSystemd: n.cfg.Cgroups.Systemd(),
		LogPath:       podspec.LogFile(n.LogDir(p), c.Name, r.RestartCount),
		LogMaxSize:    n.cfg.ContainerLogMaxSize, LogMaxFiles: n.cfg.ContainerLogMaxFiles,
		Output: r.Output,
		Raw:    r.Raw,
		TTY:    c.TTY, Stdin: c.Stdin,
		Privileged:     isTrue(sc.Privileged),
		ReadOnlyRootfs: isTrue(sc.ReadOnlyRootFilesystem),
		// The kubelet sets no_new_privs only when allowPrivilegeEscalation is false.
		NoNewPrivileges: sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
	}
	if s.Cwd == "" {
		s.Cwd = r.Image.Config.WorkingDir
	}
	s.Seccomp, s.SeccompProfile = n.seccomp(p, sc)
	s.AppArmor, s.AppArmorProfile = appArmor(p, c)
	if sc.Capabilities != nil {
		for _, cp := range sc.Capabilities.Add {
			s.CapAdd = append(s.CapAdd, string(cp))
		}
		for _, cp := range sc.Capabilities.Drop {
			s.CapDrop = append(s.CapDrop, string(cp))
		}
	}
	s.Sysctls = map[string]string{}
	if !p.Spec.HostNetwork {
		// containerd 2.x's CRI defaults (enable_unprivileged_icmp and
		// enable_unprivileged_ports) for a pod network namespace; the
		// pod's own sysctls win.
		s.Sysctls["net.ipv4.ping_group_range"] = "0 2147483647"
		s.Sysctls["net.ipv4.ip_unprivileged_port_start"] = "0"
	}
	if psc := p.Spec.SecurityContext; psc != nil {
		for _, kv := range psc.Sysctls {
			s.Sysctls[kv.Name] = kv.Value
		}
	}
	adj := cgroups.OOMScoreAdj(p, c, n.memory)
	s.OOMScoreAdj = &adj
	if err := setUser(s, p, c, r.Image.Config.User); err != nil {
		return nil, err
	}
	mounts, err := n.mounts(nsb, r, dir)
	if err != nil {
		return nil, err
	}
	s.Mounts = mounts
	return s, nil
}

// setUser sets the process's uid, gid and groups: runAsUser and runAsGroup
// (the container's over the pod's) over the image's user, checked against
// runAsNonRoot as the kubelet's verifyRunAsNonRoot does, plus the pod's
// supplementalGroups and fsGroup. The image's /etc/group memberships of the
// user are added too unless supplementalGroupsPolicy is Strict (containerd
// then skips them).
func setUser(s *runtime.Spec, p *corev1.Pod, c *corev1.Container, imageUser string) error {
	psc := p.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	runAsUser, runAsGroup, nonRoot := sc.RunAsUser, sc.RunAsGroup, sc.RunAsNonRoot
	if runAsUser == nil {
		runAsUser = psc.RunAsUser
	}
	if runAsGroup == nil {
		runAsGroup = psc.RunAsGroup
	}
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	user := imageUser
	if runAsUser != nil {
		user = strconv.FormatInt(*runAsUser, 10)
	}
	uid, gid, groups, err := runtime.ResolveUser(s.Rootfs, user)
	if err != nil {
		return fmt.Errorf("resolving user %q: %w", user, err)
	}
	if isTrue(nonRoot) {
		name, _, _ := strings.Cut(user, ":")
		if _, err := strconv.Atoi(name); runAsUser == nil && name != "" && err != nil {
			return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", name, pod.Desc(p), c.Name)
		}
		if uid == 0 {
			return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Desc(p), c.Name)
		}
	}
	if psc.SupplementalGroupsPolicy != nil && *psc.SupplementalGroupsPolicy == corev1.SupplementalGroupsPolicyStrict {
		groups = groups[:1]
	}
	if runAsGroup != nil {
		gid = uint32(*runAsGroup)
		groups = append([]uint32{gid}, groups[1:]...)
	}
	for _, g := range psc.SupplementalGroups {
		groups = append(groups, uint32(g))
	}
	if psc.FSGroup != nil {
		groups = append(groups, uint32(*psc.FSGroup))
	}
	// The primary gid is a supplementary group too (containerd's
	// ensureAdditionalGids).
	s.UID, s.GID = uid, gid
	s.AdditionalGIDs = []uint32{gid}
	for _, g := range groups {
		if !slices.Contains(s.AdditionalGIDs, g) {
			s.AdditionalGIDs = append(s.AdditionalGIDs, g)
		}
	}
	return nil
}

// mounts are the container's volumes, then the files the kubelet manages
// (/dev/shm, /etc/hosts, resolv.conf, hostname, the termination log) unless
// a volume covers them.
func (n *Node) mounts(nsb *sandbox, r *pod.ContainerRequest, dir string) ([]runtime.Mount, error) {
	p, c := r.Pod, r.Container
	env := map[string]string{} // the kubelet expands subPathExpr with the spec's env only
	for _, kv := range r.SpecEnv {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var out []runtime.Mount
	var err error
	taken := map[string]bool{}
	for i, vm := range c.VolumeMounts {
		src := nsb.vols.Path(vm.Name)
		if src == "" {
			return nil, fmt.Errorf("volumeMount %q: no volume of that name", vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expansion.Expand(vm.SubPathExpr, env)
		}
		if sub != "" {
			// The subPath, opened inside the volume, is bind-mounted onto a
			// path of the pod's own, which the container then mounts.
			target := volumes.SubPathTarget(nsb.dir, vm.Name, c.Name, i)
			if err := volumes.PrepareSubPath(src, sub, target); err != nil {
				return nil, fmt.Errorf("volumeMount %q subPath %q: %w", vm.Name, sub, err)
			}
			src = target
		}
		m := runtime.Mount{Source: src, Destination: vm.MountPath, ReadOnly: vm.ReadOnly || nsb.vols.ReadOnly(vm.Name)}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				m.Propagation = "rslave"
			case corev1.MountPropagationBidirectional:
				m.Propagation = "rshared"
			}
		}
		if m.RecursiveReadOnly, err = recursiveReadOnly(vm, runtime.RecursiveReadOnlySupported()); err != nil {
			return nil, fmt.Errorf("failed to resolve recursive read-only mode: %w", err)
		}
		out = append(out, m)
		taken[filepath.Clean(vm.MountPath)] = true
	}
	if !p.Spec.HostIPC && !taken["/dev/shm"] {
		out = append(out, runtime.Mount{Source: filepath.Join(nsb.dir, "shm"), Destination: "/dev/shm"})
	}
	// The kubelet mounts /etc/hosts itself, writable; containerd's CRI adds
	// resolv.conf and hostname, read-only under readOnlyRootFilesystem.
	roRoot := c.SecurityContext != nil && isTrue(c.SecurityContext.ReadOnlyRootFilesystem)
	for _, f := range []struct {
		name, dest string
		ro         bool
	}{{"hosts", "/etc/hosts", false}, {"resolv.conf", "/etc/resolv.conf", roRoot}, {"hostname", "/etc/hostname", roRoot}} {
		if !taken[f.dest] {
			out = append(out, runtime.Mount{Source: filepath.Join(nsb.dir, "etc", f.name), Destination: f.dest, ReadOnly: f.ro})
		}
	}
	if path := c.TerminationMessagePath; path != "" && !taken[filepath.Clean(path)] {
		tl := filepath.Join(dir, "termination-log")
		if err := os.WriteFile(tl, nil, 0o666); err != nil {
			return nil, err
		}
		if err := os.Chmod(tl, 0o666); err != nil { // not subject to the umask
			return nil, err
		}
		out = append(out, runtime.Mount{Source: tl, Destination: path})
	}
	return out, nil
}

// recursiveReadOnly is the kubelet's resolveRecursiveReadOnly: whether a
// volumeMount is mounted recursively read-only. IfPossible falls back to a
// plain read-only mount where the kernel lacks mount_setattr; Enabled then
// fails the container (CreateContainerConfigError).
func recursiveReadOnly(vm corev1.VolumeMount, supported bool) (bool, error) {
	if vm.RecursiveReadOnly == nil || *vm.RecursiveReadOnly == corev1.RecursiveReadOnlyDisabled {
		return false, nil
	}
	if !vm.ReadOnly {
		return false, fmt.Errorf("volume %q requested recursive read-only mode, but it is not read-only", vm.Name)
	}
	if vm.MountPropagation != nil && *vm.MountPropagation != corev1.MountPropagationNone {
		return false, fmt.Errorf("volume %q requested recursive read-only mode, but it is not compatible with propagation %q", vm.Name, *vm.MountPropagation)
	}
	switch *vm.RecursiveReadOnly {
	case corev1.RecursiveReadOnlyIfPossible:
		return supported, nil
	case corev1.RecursiveReadOnlyEnabled:
		if !supported {
			return false, fmt.Errorf("volume %q requested recursive read-only mode, but it is not supported by the runtime", vm.Name)
		}
		return true, nil
	}
	return false, fmt.Errorf("unknown recursive read-only mode %q", *vm.RecursiveReadOnly)
}

// seccomp is the kubelet's choice of seccomp profile: the container's
// securityContext.seccompProfile over the pod's, else RuntimeDefault with
// SeccompDefault, else Unconfined; a Localhost profile is a file under
// SeccompRoot (validation refused absolute paths and "..").
func (n *Node) seccomp(p *corev1.Pod, sc *corev1.SecurityContext) (typ, path string) {
	prof := sc.SeccompProfile
	if prof == nil && p.Spec.SecurityContext != nil {
		prof = p.Spec.SecurityContext.SeccompProfile
	}
	switch {
	case prof == nil && n.cfg.SeccompDefault:
		return runtime.SeccompRuntimeDefault, ""
	case prof == nil:
		return runtime.SeccompUnconfined, ""
	case prof.Type == corev1.SeccompProfileTypeLocalhost && prof.LocalhostProfile != nil:
		return runtime.SeccompLocalhost, filepath.Join(n.cfg.SeccompRoot, *prof.LocalhostProfile)
	}
	return string(prof.Type), ""
}

// appArmor is the kubelet's choice of AppArmor profile (apparmor
// GetProfile): the container's securityContext.appArmorProfile, else the
// deprecated annotation container.apparmor.security.beta.kubernetes.io/<name>
// (runtime/default, localhost/NAME, unconfined; the kubelet falls back to
// it before the pod's field, for static pods), else the pod's
// securityContext.appArmorProfile; none of them: "" (no profile).
func appArmor(p *corev1.Pod, c *corev1.Container) (typ, name string) {
	var prof *corev1.AppArmorProfile
	if sc := c.SecurityContext; sc != nil && sc.AppArmorProfile != nil {
		prof = sc.AppArmorProfile
	} else if v, ok := p.Annotations[corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Name]; ok {
		switch {
		case v == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault:
			return runtime.AppArmorRuntimeDefault, ""
		case v == corev1.DeprecatedAppArmorBetaProfileNameUnconfined:
			return runtime.AppArmorUnconfined, ""
		case strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix):
			return runtime.AppArmorLocalhost, strings.TrimPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix)
		}
		// Validation refuses any other value; the kubelet ignores it.
	}
	if prof == nil && p.Spec.SecurityContext != nil {
		prof = p.Spec.SecurityContext.AppArmorProfile
	}
	if prof == nil {
		return "", ""
	}
	if prof.Type == corev1.AppArmorProfileTypeLocalhost && prof.LocalhostProfile != nil {
		return runtime.AppArmorLocalhost, *prof.LocalhostProfile
	}
	return string(prof.Type), ""
}
