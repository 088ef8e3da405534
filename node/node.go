package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/cgroups"
	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/internal/podspec"
	"github.com/podrun/podrun/internal/trace"
	"github.com/podrun/podrun/netns"
	"github.com/podrun/podrun/pod"
	"github.com/podrun/podrun/runtime"
	"github.com/podrun/podrun/volumes"
)

// Config says where a Node keeps things.
type Config struct {
	Root    string // persistent state: images, pod directories (default /var/lib/podrun)
	RunRoot string // runtime state: containers, sandboxes (default /run/podrun)
	LogDir  string // container logs (default /var/log/pods)
	Network netns.Config
	Cgroups cgroups.Tree
	// SeccompRoot holds the Localhost seccomp profiles, the kubelet's
	// <root>/seccomp (default <Root>/seccomp).
	SeccompRoot string
	// SeccompDefault is the kubelet's seccompDefault: RuntimeDefault for
	// containers whose pod and container say nothing.
	SeccompDefault bool
	// ContainerLogMaxSize and ContainerLogMaxFiles are the kubelet's
	// containerLogMaxSize and containerLogMaxFiles (0: 10 MiB and 5).
	ContainerLogMaxSize  int64
	ContainerLogMaxFiles int
	// AllowedUnsafeSysctls is the kubelet's --allowed-unsafe-sysctls: the
	// sysctls (or prefixes ending in '*') admitted beyond the safe ones.
	AllowedUnsafeSysctls []string `json:",omitempty"`
}

// Node is the real pod.Host: it carries out the supervisor's decisions
// with the image store, the network, cgroups, volumes and libcontainer.
type Node struct {
	cfg     Config
	Images  *image.Store
	Runtime *runtime.Runtime
	Network *netns.Network
	memory  int64
	hostIP  string

	mu        sync.Mutex          // guards sandboxes
	sandboxes map[string]*sandbox // by pod UID: the pods this process hosts
}

// AllowedUnsafeSysctls is the node's --allowed-unsafe-sysctls, for the
// supervisor's admission.
func (n *Node) AllowedUnsafeSysctls() []string { return n.cfg.AllowedUnsafeSysctls }

// New opens the stores under cfg's directories.
func New(cfg Config) (*Node, error) {
	if cfg.Root == "" {
		cfg.Root = "/var/lib/podrun"
	}
	if cfg.RunRoot == "" {
		cfg.RunRoot = "/run/podrun"
	}
	if cfg.LogDir == "" {
		cfg.LogDir = "/var/log/pods"
	}
	if cfg.SeccompRoot == "" {
		cfg.SeccompRoot = filepath.Join(cfg.Root, "seccomp")
	}
	if err := pod.CheckSysctlPatterns(cfg.AllowedUnsafeSysctls); err != nil {
		return nil, fmt.Errorf("--allowed-unsafe-sysctls: %w", err)
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
	mem, err := cgroups.MemoryCapacity()
	if err != nil {
		slog.Warn("node memory unknown: memory-backed volumes are sized by their limits only", "err", err)
	}
	return &Node{cfg: cfg, Images: imgs, Runtime: rt, Network: nw, memory: mem,
		hostIP: netns.HostIP().String(), sandboxes: map[string]*sandbox{}}, nil
}

// PodDir is where a pod's volumes, files and container roots live.
func (n *Node) PodDir(uid string) string { return filepath.Join(n.cfg.Root, "pods", uid) }

// LogDir is the kubelet's pod log directory: <ns>_<name>_<uid>.
func (n *Node) LogDir(p *corev1.Pod) string { return podspec.LogDir(n.cfg.LogDir, p) }

// sandbox is what a Node keeps of each pod it hosts, the CRI's pod
// sandbox: found again by the pod's UID.
type sandbox struct {
	lock *os.File // held while this process supervises the pod
	pod  *corev1.Pod
	objs pod.Objects
	dir  string
	vols *volumes.Set
	rt   *runtime.Sandbox
}

func (n *Node) sandbox(uid string) (*sandbox, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if sb := n.sandboxes[uid]; sb != nil {
		return sb, nil
	}
	return nil, fmt.Errorf("pod %s has no sandbox in this process", uid)
}

func (n *Node) keep(sb *sandbox) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sandboxes[string(sb.pod.UID)] = sb
}

// CreateSandbox makes the pod's cgroup, network, volumes, /etc files and
// shared namespaces; on error it removes what it made.
func (n *Node) CreateSandbox(ctx context.Context, p *corev1.Pod, objs pod.Objects) (_ *pod.Sandbox, retErr error) {
	uid := string(p.UID)
	nsb := &sandbox{pod: p, objs: objs, dir: n.PodDir(uid)}
	sb := &pod.Sandbox{HostIP: n.hostIP}
	var err error
	if nsb.lock, err = n.lockPod(uid); err != nil {
		return nil, err
	}
	n.keep(nsb)
	defer func() {
		if retErr != nil {
			if err := n.DestroySandbox(context.WithoutCancel(ctx), p); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	// The network (the slowest step, mostly the kernel's) is set up while
	// the cgroup and the volumes are made; they do not depend on each other.
	type netResult struct {
		att *netns.Attachment
		err error
	}
	netc := make(chan netResult, 1)
	go func() {
		sp := trace.Start(ctx, "netns")
		att, err := n.Network.Setup(ctx, netns.Pod{ID: uid, Name: p.Name, Namespace: p.Namespace, HostNetwork: p.Spec.HostNetwork, Ports: hostPorts(p)})
		sp.End()
		if err != nil {
			err = fmt.Errorf("pod network: %w", err)
		}
		netc <- netResult{att, err}
	}()
	errLocal := n.cgroupAndVolumes(ctx, nsb)
	nr := <-netc
	if err := errors.Join(nr.err, errLocal); err != nil {
		return nil, err
	}
	att := nr.att
	if att.IP != nil {
		sb.PodIP = att.IP.String()
	}
	sb.Dial = netns.Dialer(att.NSPath)
	sp := trace.Start(ctx, "etc files")
	hostname, warnings, err := n.writeEtc(nsb, sb.PodIP)
	sp.End()
	if err != nil {
		return nil, err
	}
	sb.Warnings = warnings
	sp = trace.Start(ctx, "namespaces")
	defer sp.End()
	nsb.rt, err = n.Runtime.CreateSandbox(runtime.SandboxSpec{
		ID: uid, Hostname: hostname, NetNS: att.NSPath, HostNetwork: p.Spec.HostNetwork,
		HostIPC: p.Spec.HostIPC, HostPID: p.Spec.HostPID, SharePID: isTrue(p.Spec.ShareProcessNamespace),
		CgroupPath: n.cfg.Cgroups.PodPath(p), CgroupSystemd: n.cfg.Cgroups.Systemd(),
	})
	if err != nil {
		return nil, fmt.Errorf("pod namespaces: %w", err)
	}
	return sb, nil
}

// cgroupAndVolumes makes the pod's directory, cgroup and volumes.
func (n *Node) cgroupAndVolumes(ctx context.Context, nsb *sandbox) error {
	p := nsb.pod
	if err := os.MkdirAll(filepath.Join(nsb.dir, "etc"), 0o755); err != nil {
		return err
	}
	sp := trace.Start(ctx, "cgroups")
	err := n.cfg.Cgroups.CreatePod(p)
	sp.End()
	if err != nil {
		return fmt.Errorf("pod cgroup: %w", err)
	}
	sp = trace.Start(ctx, "volumes")
	nsb.vols, err = volumes.Setup(filepath.Join(nsb.dir, "volumes"), p, nsb.objs, n.memSize(cgroups.PodLimits(p)))
	sp.End()
	if err != nil {
		return fmt.Errorf("volumes: %w", err)
	}
	return nil
}

// writeEtc writes the pod's /etc/hosts, resolv.conf and hostname as the
// kubelet does, and mounts its /dev/shm. It returns the hostname and the
// warnings resolv.conf forming gave.
func (n *Node) writeEtc(nsb *sandbox, podIP string) (string, []pod.Event, error) {
	p := nsb.pod
	hostname, domain, err := netns.Hostname(p, "")
	if err != nil {
		return "", nil, err
	}
	hosts := netns.HostsFile(netns.Hosts{IP: podIP, Hostname: hostname, Subdomain: subdomain(p, domain), Namespace: p.Namespace,
		Aliases: p.Spec.HostAliases, HostNetwork: p.Spec.HostNetwork})
	resolv, msgs, err := netns.ResolvConf(p.Spec.DNSPolicy, p.Spec.DNSConfig, p.Spec.HostNetwork, p.Namespace)
	if err != nil {
		return "", nil, fmt.Errorf("resolv.conf: %w", err)
	}
	var warnings []pod.Event
	for _, w := range msgs {
		reason, msg, ok := strings.Cut(w, ": ")
		if !ok {
			reason, msg = "DNSConfigForming", w
		}
		warnings = append(warnings, pod.Event{Type: pod.EventWarning, Reason: reason, Message: msg})
	}
	// The pod's /dev/shm: one tmpfs shared by its containers, as the
	// sandbox's shm is under containerd (they share the IPC namespace too).
	if !p.Spec.HostIPC {
		shm := filepath.Join(nsb.dir, "shm")
		if err := os.MkdirAll(shm, 0o755); err != nil {
			return "", nil, err
		}
		if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
			return "", nil, fmt.Errorf("pod /dev/shm: %w", err)
		}
	}
	for name, data := range map[string][]byte{"hosts": hosts, "resolv.conf": resolv, "hostname": []byte(hostname + "\n")} {
		if err := os.WriteFile(filepath.Join(nsb.dir, "etc", name), data, 0o644); err != nil {
			return "", nil, err
		}
	}
	return hostname, warnings, nil
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
	for _, c := range podspec.Containers(&p.Spec) {
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				out = append(out, netns.Port{HostIP: port.HostIP, HostPort: port.HostPort, ContainerPort: port.ContainerPort, Protocol: string(port.Protocol)})
			}
		}
	}
	return out
}

// DestroySandbox removes everything of the pod but its logs; idempotent,
// and it works from the pod alone after a crash (no sandbox in this
// process).
func (n *Node) DestroySandbox(ctx context.Context, p *corev1.Pod) error {
	uid := string(p.UID)
	n.mu.Lock()
	nsb := n.sandboxes[uid]
	n.mu.Unlock()
	var errs []error
	if nsb != nil && nsb.rt != nil {
		errs = append(errs, nsb.rt.Destroy())
	} else if rsb, err := n.Runtime.LoadSandbox(uid); err == nil {
		errs = append(errs, rsb.Destroy())
	}
	// The pod's directory, network and cgroup share no path and no state,
	// and each is mostly the kernel's waits: they go concurrently. The
	// cgroup's kills and waits for whatever of the pod is left; the other
	// two never needed that done first (they came before it when serial).
	errs = append(errs, concurrently(ctx,
		step{"pod dir teardown", func() error { return n.removePodDir(uid) }},
		step{"netns teardown", func() error { return n.Network.Teardown(ctx, uid) }},
		step{"cgroups teardown", func() error { return n.cfg.Cgroups.RemovePod(p) }}))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if nsb != nil {
		n.mu.Lock()
		delete(n.sandboxes, uid)
		n.mu.Unlock()
		if nsb.lock != nil {
			os.Remove(nsb.lock.Name())
			nsb.lock.Close()
		}
	}
	return nil
}

// step is one of concurrently's functions, traced as span.
type step struct {
	span string
	fn   func() error
}

// concurrently runs the steps, each in its own goroutine and trace span,
// and joins their errors.
func concurrently(ctx context.Context, steps ...step) error {
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Go(func() {
			sp := trace.Start(ctx, s.span)
			errs[i] = s.fn()
			sp.End()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// removePodDir unmounts what a pod's directory holds (container roots a
// crash left, subPath mounts, volumes, /dev/shm) and removes it.
func (n *Node) removePodDir(uid string) error {
	dir := n.PodDir(uid)
	var errs []error
	if entries, err := os.ReadDir(filepath.Join(dir, "containers")); err == nil {
		for _, e := range entries {
			errs = append(errs, image.Unmount(filepath.Join(dir, "containers", e.Name())))
		}
	}
	// subPath mounts first: they lead into the volumes.
	if err := volumes.TeardownSubPaths(dir); err != nil {
		return err
	}
	errs = append(errs, volumes.Teardown(filepath.Join(dir, "volumes")), unmountShm(dir))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// unmountShm removes the pod's /dev/shm tmpfs, if mounted.
func unmountShm(podDir string) error {
	err := unix.Unmount(filepath.Join(podDir, "shm"), unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount the pod's /dev/shm: %w", err)
	}
	return nil
}

// RestoreSandbox takes over a pod's sandbox after its supervisor's process
// died: the namespaces, the network (restarting its loopback proxies here)
// and the volumes (emptyDir content kept) as they are.
func (n *Node) RestoreSandbox(ctx context.Context, p *corev1.Pod, objs pod.Objects, podIP string) (*pod.Sandbox, error) {
	uid := string(p.UID)
	nsb := &sandbox{pod: p, objs: objs, dir: n.PodDir(uid)}
	var err error
	if nsb.lock, err = n.lockPod(uid); err != nil {
		return nil, err
	}
	att, err := n.Network.Attach(ctx, uid)
	if err != nil {
		nsb.lock.Close()
		return nil, err
	}
	if nsb.rt, err = n.Runtime.LoadSandbox(uid); err != nil {
		nsb.lock.Close()
		return nil, err
	}
	if err := n.discardUnstarted(uid, nsb.dir); err != nil {
		nsb.lock.Close()
		return nil, fmt.Errorf("containers prepared and never started: %w", err)
	}
	if nsb.vols, err = volumes.Setup(filepath.Join(nsb.dir, "volumes"), p, objs, n.memSize(cgroups.PodLimits(p))); err != nil {
		nsb.lock.Close()
		return nil, fmt.Errorf("volumes: %w", err)
	}
	n.keep(nsb)
	return &pod.Sandbox{PodIP: podIP, HostIP: n.hostIP, Dial: netns.Dialer(att.NSPath)}, nil
}

// RefreshVolumes projects objs into the pod's running configMap, secret
// and projected volumes (volumes.Refresh) and keeps objs for the pod's
// later pulls; it returns the volumes it rewrote.
func (n *Node) RefreshVolumes(p *corev1.Pod, objs pod.Objects) ([]string, error) {
	nsb, err := n.sandbox(string(p.UID))
	if err != nil {
		return nil, err
	}
	nsb.objs = objs
	return volumes.Refresh(filepath.Join(nsb.dir, "volumes"), p, objs)
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
func (n *Node) PullImage(ctx context.Context, p *corev1.Pod, ref string) (*image.Image, error) {
	var o image.PullOptions
	if nsb, err := n.sandbox(string(p.UID)); err == nil && nsb.objs != nil {
		for _, s := range p.Spec.ImagePullSecrets {
			sec := nsb.objs.Secret(p.Namespace, s.Name)
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

func isTrue(b *bool) bool { return b != nil && *b }

var _ pod.Host = (*Node)(nil)

// KeepOOMGroups keeps memory.oom.group in the containers of the pods this
// process hosts across systemd reloads (cgroups.Tree.KeepOOMGroups);
// returns when ctx is done, at once where nothing needs it.
func (n *Node) KeepOOMGroups(ctx context.Context) {
	n.cfg.Cgroups.KeepOOMGroups(ctx, func() []*corev1.Pod {
		n.mu.Lock()
		defer n.mu.Unlock()
		var pods []*corev1.Pod
		for _, sb := range n.sandboxes {
			pods = append(pods, sb.pod)
		}
		return pods
	})
}
