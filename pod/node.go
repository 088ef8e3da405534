package pod

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/expansion"
	"github.com/podrun/podrun/netns"
	"github.com/podrun/podrun/runtime"
	"github.com/podrun/podrun/volumes"
)

// NodeConfig says where a Node keeps things.
type NodeConfig struct {
	Root    string // persistent state: images, pod directories (default /var/lib/podrun)
	RunRoot string // runtime state: containers, sandboxes (default /run/podrun)
	LogDir  string // container logs (default /var/log/pods)
	Network netns.Config
	Cgroups cgroups.Tree
}

// Node is the real Host: it carries out the supervisor's decisions with
// the image store, the network, cgroups, volumes and libcontainer.
type Node struct {
	cfg     NodeConfig
	Images  *image.Store
	Runtime *runtime.Runtime
	Network *netns.Network
	memory  int64
	hostIP  string
}

// NewNode opens the stores under cfg's directories.
func NewNode(cfg NodeConfig) (*Node, error) {
	if cfg.Root == "" {
		cfg.Root = "/var/lib/podrun"
	}
	if cfg.RunRoot == "" {
		cfg.RunRoot = "/run/podrun"
	}
	if cfg.LogDir == "" {
		cfg.LogDir = "/var/log/pods"
	}
	if cfg.Network.StateDir == "" {
		cfg.Network.StateDir = filepath.Join(cfg.RunRoot, "net")
	}
	imgs, err := image.Open(filepath.Join(cfg.Root, "images"))
	if err != nil {
		return nil, err
	}
	rt, err := runtime.New(filepath.Join(cfg.RunRoot, "runc"))
	if err != nil {
		return nil, err
	}
	nw, err := netns.New(cfg.Network)
	if err != nil {
		return nil, err
	}
	_, mem := nodeCapacity()
	return &Node{cfg: cfg, Images: imgs, Runtime: rt, Network: nw, memory: mem, hostIP: netns.HostIP().String()}, nil
}

// PodDir is where a pod's volumes, files and container roots live.
func (n *Node) PodDir(uid string) string { return filepath.Join(n.cfg.Root, "pods", uid) }

// LogDir is the kubelet's pod log directory: <ns>_<name>_<uid>.
func (n *Node) LogDir(p *corev1.Pod) string {
	return filepath.Join(n.cfg.LogDir, fmt.Sprintf("%s_%s_%s", p.Namespace, p.Name, p.UID))
}

// nodeSandbox is what a Node keeps per pod.
type nodeSandbox struct {
	lock    *os.File // held while this process supervises the pod
	pod     *corev1.Pod
	objs    Objects
	dir     string
	vols    *volumes.Set
	rt      *runtime.Sandbox
	netDone bool
}

// CreateSandbox makes the pod's cgroup, network, volumes, /etc files and
// shared namespaces; on error it removes what it made.
func (n *Node) CreateSandbox(ctx context.Context, p *corev1.Pod, objs Objects) (_ *Sandbox, retErr error) {
	uid := string(p.UID)
	nsb := &nodeSandbox{pod: p, objs: objs, dir: n.PodDir(uid)}
	sb := &Sandbox{HostIP: n.hostIP, impl: nsb}
	var err error
	if nsb.lock, err = n.lockPod(uid); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := n.DestroySandbox(context.WithoutCancel(ctx), p, sb); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	if err := os.MkdirAll(filepath.Join(nsb.dir, "etc"), 0o755); err != nil {
		return nil, err
	}
	if err := n.cfg.Cgroups.CreatePod(p); err != nil {
		return nil, fmt.Errorf("pod cgroup: %w", err)
	}
	att, err := n.Network.Setup(ctx, netns.Pod{ID: uid, Name: p.Name, Namespace: p.Namespace, HostNetwork: p.Spec.HostNetwork, Ports: hostPorts(p)})
	if err != nil {
		return nil, fmt.Errorf("pod network: %w", err)
	}
	nsb.netDone = true
	if att.IP != nil {
		sb.PodIP = att.IP.String()
	}
	sb.Dial = netns.Dialer(att.NSPath)

	nsb.vols, err = volumes.Setup(filepath.Join(nsb.dir, "volumes"), p, objs, n.memSize(cgroups.PodLimits(p)))
	if err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}

	hostname, domain, err := netns.Hostname(p, "")
	if err != nil {
		return nil, err
	}
	hosts := netns.HostsFile(netns.Hosts{IP: sb.PodIP, Hostname: hostname, Subdomain: subdomain(p, domain), Namespace: p.Namespace,
		Aliases: p.Spec.HostAliases, HostNetwork: p.Spec.HostNetwork})
	resolv, warnings, err := netns.ResolvConf(p.Spec.DNSPolicy, p.Spec.DNSConfig, p.Spec.HostNetwork, p.Namespace)
	if err != nil {
		return nil, fmt.Errorf("resolv.conf: %w", err)
	}
	for _, w := range warnings {
		reason, msg, ok := strings.Cut(w, ": ")
		if !ok {
			reason, msg = "DNSConfigForming", w
		}
		sb.Warnings = append(sb.Warnings, Event{Type: warning, Reason: reason, Message: msg})
	}
	// The pod's /dev/shm: one tmpfs shared by its containers, as the
	// sandbox's shm is under containerd (they share the IPC namespace too).
	if !p.Spec.HostIPC {
		shm := filepath.Join(nsb.dir, "shm")
		if err := os.MkdirAll(shm, 0o755); err != nil {
			return nil, err
		}
		if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
			return nil, fmt.Errorf("pod /dev/shm: %w", err)
		}
	}
	for name, data := range map[string][]byte{"hosts": hosts, "resolv.conf": resolv, "hostname": []byte(hostname + "\n")} {
		if err := os.WriteFile(filepath.Join(nsb.dir, "etc", name), data, 0o644); err != nil {
			return nil, err
		}
	}

	nsb.rt, err = n.Runtime.CreateSandbox(runtime.SandboxSpec{
		ID: uid, Hostname: hostname, NetNS: att.NSPath, HostNetwork: p.Spec.HostNetwork,
		HostIPC: p.Spec.HostIPC, HostPID: p.Spec.HostPID, SharePID: isTrue(p.Spec.ShareProcessNamespace),
		CgroupPath: n.cfg.Cgroups.PodPath(p),
	})
	if err != nil {
		return nil, fmt.Errorf("pod namespaces: %w", err)
	}
	return sb, nil
}

func subdomain(p *corev1.Pod, domain string) string {
	if domain == "" {
		return ""
	}
	return p.Spec.Subdomain
}

// hostPorts are the ports of every container that publishes a hostPort.
func hostPorts(p *corev1.Pod) []netns.Port {
	var out []netns.Port
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.HostPort != 0 {
					out = append(out, netns.Port{HostIP: port.HostIP, HostPort: port.HostPort, ContainerPort: port.ContainerPort, Protocol: string(port.Protocol)})
				}
			}
		}
	}
	return out
}

// DestroySandbox removes everything of the pod but its logs; idempotent,
// and it works from the pod alone after a crash.
func (n *Node) DestroySandbox(ctx context.Context, p *corev1.Pod, sb *Sandbox) error {
	uid := string(p.UID)
	var errs []error
	if sb != nil {
		if nsb, ok := sb.impl.(*nodeSandbox); ok && nsb.rt != nil {
			errs = append(errs, nsb.rt.Destroy())
		}
	} else if rsb, err := n.Runtime.LoadSandbox(uid); err == nil {
		errs = append(errs, rsb.Destroy())
	}
	dir := n.PodDir(uid)
	// Container roots left by a crash, then volumes, then the pod directory.
	if entries, err := os.ReadDir(filepath.Join(dir, "containers")); err == nil {
		for _, e := range entries {
			errs = append(errs, image.Unmount(filepath.Join(dir, "containers", e.Name())))
		}
	}
	errs = append(errs, volumes.Teardown(filepath.Join(dir, "volumes")), unmountShm(dir))
	errs = append(errs, n.Network.Teardown(ctx, uid))
	errs = append(errs, n.cfg.Cgroups.RemovePod(p))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if sb != nil {
		if nsb, ok := sb.impl.(*nodeSandbox); ok && nsb.lock != nil {
			os.Remove(nsb.lock.Name())
			nsb.lock.Close()
		}
	}
	return nil
}

// unmountShm removes the pod's /dev/shm tmpfs, if mounted.
func unmountShm(podDir string) error {
	err := unix.Unmount(filepath.Join(podDir, "shm"), unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount the pod's /dev/shm: %w", err)
	}
	return nil
}

// lockPod takes the pod's supervision lock, held as long as this process
// supervises the pod (released by the kernel if the process dies): GC
// leaves a locked pod alone.
func (n *Node) lockPod(uid string) (*os.File, error) {
	dir := filepath.Join(n.cfg.RunRoot, "locks")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, uid), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("pod %s is supervised by another process: %w", uid, err)
	}
	return f, nil
}

// supervised reports whether some process (this one included) holds the
// pod's lock.
func (n *Node) supervised(uid string) bool {
	f, err := os.Open(filepath.Join(n.cfg.RunRoot, "locks", uid))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	return false
}

// GC removes what pods that no process supervises left behind (a killed
// `podrun run`, a shim that died for good): their containers (killed),
// sandboxes, root filesystems, volumes, network and cgroups. keep, if set,
// spares more pods, e.g. those a daemon is about to restore.
func (n *Node) GC(ctx context.Context, keep func(uid string) bool) error {
	live := func(uid string) bool { return (keep != nil && keep(uid)) || n.supervised(uid) }
	var errs []error
	ids, err := n.Runtime.List()
	errs = append(errs, err)
	for _, id := range ids {
		if uid := podUIDOf(id); uid == "" || live(uid) {
			continue
		}
		if c, err := n.Runtime.Load(id); err == nil {
			errs = append(errs, c.Destroy())
		}
	}
	// Sandboxes live in the runtime's state directory, one per pod UID.
	entries, _ := os.ReadDir(filepath.Join(n.cfg.RunRoot, "runc", "sandboxes"))
	for _, e := range entries {
		if !live(e.Name()) {
			if sb, err := n.Runtime.LoadSandbox(e.Name()); err == nil {
				errs = append(errs, sb.Destroy())
			}
		}
	}
	entries, _ = os.ReadDir(filepath.Join(n.cfg.Root, "pods"))
	for _, e := range entries {
		uid := e.Name()
		if live(uid) {
			continue
		}
		dir := n.PodDir(uid)
		if cs, err := os.ReadDir(filepath.Join(dir, "containers")); err == nil {
			for _, c := range cs {
				errs = append(errs, image.Unmount(filepath.Join(dir, "containers", c.Name())))
			}
		}
		errs = append(errs, volumes.Teardown(filepath.Join(dir, "volumes")), unmountShm(dir), os.RemoveAll(dir))
	}
	errs = append(errs, n.Network.GC(ctx, live), n.cfg.Cgroups.GC(live))
	entries, _ = os.ReadDir(filepath.Join(n.cfg.RunRoot, "locks"))
	for _, e := range entries {
		if !live(e.Name()) {
			os.Remove(filepath.Join(n.cfg.RunRoot, "locks", e.Name()))
		}
	}
	return errors.Join(errs...)
}

// podUIDOf is the pod UID of a container ID made by StartContainer
// (<uid>-<name>-<restart count>); pod UIDs are UUIDs.
func podUIDOf(id string) string {
	if len(id) < 37 || id[36] != '-' {
		return ""
	}
	return id[:36]
}

// RestoreSandbox takes over a pod's sandbox after its supervisor's process
// died: the namespaces, the network (restarting its loopback proxies here)
// and the volumes (emptyDir content kept) as they are.
func (n *Node) RestoreSandbox(ctx context.Context, p *corev1.Pod, objs Objects, podIP string) (*Sandbox, error) {
	uid := string(p.UID)
	nsb := &nodeSandbox{pod: p, objs: objs, dir: n.PodDir(uid), netDone: true}
	var err error
	if nsb.lock, err = n.lockPod(uid); err != nil {
		return nil, err
	}
	att, err := n.Network.Attach(ctx, uid)
	if err != nil {
		nsb.lock.Close()
		return nil, err
	}
	sb := &Sandbox{PodIP: podIP, HostIP: n.hostIP, Dial: netns.Dialer(att.NSPath), impl: nsb}
	if nsb.rt, err = n.Runtime.LoadSandbox(uid); err != nil {
		return nil, err
	}
	limits := cgroups.PodLimits(p)
	if nsb.vols, err = volumes.Setup(filepath.Join(nsb.dir, "volumes"), p, objs, n.memSize(limits)); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	return sb, nil
}

// AttachContainer re-attaches to a running container of the pod.
func (n *Node) AttachContainer(ctx context.Context, sb *Sandbox, p *corev1.Pod, c *corev1.Container, restartCount int32, id string) (Container, error) {
	h, err := n.Runtime.Load(id)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(n.PodDir(string(p.UID)), "containers", fmt.Sprintf("%s-%d", c.Name, restartCount))
	return &nodeContainer{Container: h, dir: dir, spec: c,
		logPath: filepath.Join(n.LogDir(p), c.Name, fmt.Sprintf("%d.log", restartCount))}, nil
}

// memSize sizes a pod's memory-backed volumes: the smallest of the node's
// memory, the pod's memory limit and the volume's sizeLimit.
func (n *Node) memSize(limits corev1.ResourceList) func(v *corev1.Volume) int64 {
	return func(v *corev1.Volume) int64 {
		if v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
			return 0
		}
		size := n.memory
		if m, ok := limits[corev1.ResourceMemory]; ok && !m.IsZero() && m.Value() < size {
			size = m.Value()
		}
		if v.EmptyDir.SizeLimit != nil && !v.EmptyDir.SizeLimit.IsZero() && v.EmptyDir.SizeLimit.Value() < size {
			size = v.EmptyDir.SizeLimit.Value()
		}
		return size
	}
}

// LookupImage finds a local image.
func (n *Node) LookupImage(ref string) (*image.Image, error) { return n.Images.Lookup(ref) }

// PullImage pulls ref with the pod's imagePullSecrets.
func (n *Node) PullImage(ctx context.Context, sb *Sandbox, ref string) (*image.Image, error) {
	var o image.PullOptions
	if nsb, ok := sb.impl.(*nodeSandbox); ok {
		for _, s := range nsb.pod.Spec.ImagePullSecrets {
			sec := lookupSecret(nsb.objs, nsb.pod.Namespace, s.Name)
			if sec == nil {
				continue // the kubelet pulls without a missing secret
			}
			for _, key := range []string{corev1.DockerConfigJsonKey, corev1.DockerConfigKey} {
				if b, ok := sec.Data[key]; ok {
					o.Secrets = append(o.Secrets, b)
				}
			}
		}
	}
	return n.Images.Pull(ctx, ref, o)
}

// StartContainer mounts the container's root filesystem, turns the
// container spec into a runtime.Spec and starts it.
func (n *Node) StartContainer(ctx context.Context, sb *Sandbox, r *ContainerRequest) (_ Container, retErr error) {
	nsb := sb.impl.(*nodeSandbox)
	p, c := r.Pod, r.Container
	id := fmt.Sprintf("%s-%s-%d", p.UID, c.Name, r.RestartCount)
	dir := filepath.Join(nsb.dir, "containers", fmt.Sprintf("%s-%d", c.Name, r.RestartCount))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, &StartError{Reason: reasonCreateError, Err: err}
	}
	rootfs, err := n.Images.Mount(r.Image, dir)
	if err != nil {
		return nil, &StartError{Reason: reasonCreateError, Err: err}
	}
	defer func() {
		if retErr != nil {
			if err := image.Unmount(dir); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()

	spec, err := n.containerSpec(nsb, r, id, dir, rootfs)
	if err != nil {
		return nil, configError(err)
	}
	h, err := n.Runtime.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	return &nodeContainer{Container: h, dir: dir, spec: c, logPath: spec.LogPath}, nil
}

// containerSpec is the kubelet's generateContainerConfig and containerd's
// CRI spec builder, for libcontainer.
func (n *Node) containerSpec(nsb *nodeSandbox, r *ContainerRequest, id, dir, rootfs string) (*runtime.Spec, error) {
	p, c := r.Pod, r.Container
	psc := p.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	s := &runtime.Spec{
		ID: id, Rootfs: rootfs, Sandbox: nsb.rt,
		Args: r.Args, Env: r.Env, Cwd: c.WorkingDir,
		CgroupPath: n.cfg.Cgroups.ContainerPath(p, c.Name),
		Resources:  n.cfg.Cgroups.ContainerResources(p, c),
		LogPath:    filepath.Join(n.LogDir(p), c.Name, fmt.Sprintf("%d.log", r.RestartCount)),
		Output:     r.Output,
		TTY:        c.TTY, Stdin: c.Stdin,
		Privileged:     sc.Privileged != nil && *sc.Privileged,
		ReadOnlyRootfs: sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
		// The kubelet sets no_new_privs only when allowPrivilegeEscalation is false.
		NoNewPrivileges: sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
	}
	if s.Cwd == "" {
		s.Cwd = r.Image.Config.WorkingDir
	}
	if sc.Capabilities != nil {
		for _, cp := range sc.Capabilities.Add {
			s.CapAdd = append(s.CapAdd, string(cp))
		}
		for _, cp := range sc.Capabilities.Drop {
			s.CapDrop = append(s.CapDrop, string(cp))
		}
	}
	if len(psc.Sysctls) > 0 {
		s.Sysctls = map[string]string{}
		for _, kv := range psc.Sysctls {
			s.Sysctls[kv.Name] = kv.Value
		}
	}
	adj := cgroups.OOMScoreAdj(p, c, n.memory)
	s.OOMScoreAdj = &adj

	// The user: runAsUser/runAsGroup (container over pod) over the image's.
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
	user := r.Image.Config.User
	if runAsUser != nil {
		user = strconv.FormatInt(*runAsUser, 10)
	}
	uid, gid, groups, err := runtime.ResolveUser(rootfs, user)
	if err != nil {
		return nil, fmt.Errorf("resolving user %q: %w", user, err)
	}
	if isTrue(nonRoot) {
		name, _, _ := strings.Cut(user, ":")
		if _, err := strconv.Atoi(name); runAsUser == nil && name != "" && err != nil {
			return nil, fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %q, container: %s)", name, podDesc(p), c.Name)
		}
		if uid == 0 {
			return nil, fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podDesc(p), c.Name)
		}
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
	s.UID, s.GID = uid, gid
	for _, g := range groups {
		if g != gid {
			s.AdditionalGIDs = append(s.AdditionalGIDs, g)
		}
	}

	// Mounts: volumes, then the files the kubelet manages unless a volume
	// covers them.
	env := map[string]string{}
	for _, kv := range r.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	taken := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		src := nsb.vols.Path(vm.Name)
		if src == "" {
			return nil, fmt.Errorf("volumeMount %q: no volume of that name", vm.Name)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expansion.Expand(vm.SubPathExpr, env)
		}
		if sub != "" {
			if src, err = subPath(src, sub); err != nil {
				return nil, fmt.Errorf("volumeMount %q subPath %q: %w", vm.Name, sub, err)
			}
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
		s.Mounts = append(s.Mounts, m)
		taken[filepath.Clean(vm.MountPath)] = true
	}
	if !p.Spec.HostIPC && !taken["/dev/shm"] {
		s.Mounts = append(s.Mounts, runtime.Mount{Source: filepath.Join(nsb.dir, "shm"), Destination: "/dev/shm"})
	}
	for _, f := range []struct{ name, dest string }{{"hosts", "/etc/hosts"}, {"resolv.conf", "/etc/resolv.conf"}, {"hostname", "/etc/hostname"}} {
		if !taken[f.dest] {
			s.Mounts = append(s.Mounts, runtime.Mount{Source: filepath.Join(nsb.dir, "etc", f.name), Destination: f.dest})
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
		s.Mounts = append(s.Mounts, runtime.Mount{Source: tl, Destination: path})
	}
	return s, nil
}

// subPath resolves sub inside a volume (never outside it, whatever its
// symlinks say) and creates it as a directory when missing, as the kubelet does.
func subPath(volume, sub string) (string, error) {
	p, err := securejoin.SecureJoin(volume, sub)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(p, 0o750); err != nil {
			return "", err
		}
	}
	return p, nil
}

// nodeContainer is a runtime container plus what its removal needs.
type nodeContainer struct {
	*runtime.Container
	dir     string
	spec    *corev1.Container
	logPath string
}

func (c *nodeContainer) Signal(sig syscall.Signal) error { return c.Container.Signal(sig) }

// Remove reads the termination message (at most 4096 bytes; with
// FallbackToLogsOnError and no message after a failure, the last 80 log
// lines up to 2048 bytes) and removes the container and its root.
func (c *nodeContainer) Remove() (string, error) {
	msg := ""
	if b, err := os.ReadFile(filepath.Join(c.dir, "termination-log")); err == nil {
		msg = string(b[:min(len(b), 4096)])
	}
	if msg == "" && c.spec.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && c.Exit().Code != 0 {
		msg = tailLog(c.logPath, 80, 2048)
	}
	err := errors.Join(c.Container.Destroy(), image.Unmount(c.dir))
	return msg, err
}

// tailLog returns the text of the last lines of a CRI log file.
func tailLog(path string, lines, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var texts []string
	partial := map[string]string{} // a line's P records so far, per stream
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		r, ok := runtime.ParseLogRecord(sc.Text())
		if !ok {
			continue
		}
		if r.Partial {
			partial[r.Stream] += r.Text
			continue
		}
		texts = append(texts, partial[r.Stream]+r.Text)
		delete(partial, r.Stream)
		if len(texts) > lines {
			texts = texts[1:]
		}
	}
	var b bytes.Buffer
	for _, t := range texts {
		b.WriteString(t)
		b.WriteByte('\n')
	}
	out := b.Bytes()
	if len(out) > maxBytes {
		out = out[len(out)-maxBytes:]
	}
	return string(out)
}

var _ Host = (*Node)(nil)
