package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"

	"github.com/podrun/podrun/internal/atomicfile"
)

// SandboxSpec describes the namespaces every container of a pod shares.
type SandboxSpec struct {
	ID          string // unique, filesystem-safe ([A-Za-z0-9_+.-])
	Hostname    string // set in the pod's new UTS namespace; "" keeps the host's name there
	NetNS       string // path of the pod's network namespace (created elsewhere); "" with HostNetwork
	HostNetwork bool   // host network and host UTS namespace
	HostIPC     bool
	HostPID     bool
	// SharePID (shareProcessNamespace) gives the pod one PID namespace whose
	// PID 1 is a pause process of this binary that reaps orphans.
	SharePID bool
	// CgroupPath is the pod's absolute cgroup path. The pause process (if
	// any) runs in its leaf CgroupPath/pause: on cgroup v2 a cgroup with
	// children may hold no processes itself.
	CgroupPath string
	// CgroupSystemd says CgroupPath is a systemd slice's path
	// (.../<name>.slice): the pause process then runs in the scope
	// <name>-pause.scope in it.
	CgroupSystemd bool `json:",omitempty"`
}

// Sandbox holds a pod's namespaces: UTS and IPC pinned by bind mounts with
// no process in them, and with SharePID a pause process owning the PID
// namespace (pinned too). Everything lives in <root>/sandboxes/<id>/.
type Sandbox struct {
	dir string

	mu    sync.Mutex // guards st (its PausePid) and pause during Destroy
	st    sandboxState
	pause *exec.Cmd // set only in the process that started it, which must reap it
}

// sandboxState is what LoadSandbox needs, kept in <dir>/sandbox.json.
type sandboxState struct {
	Spec       SandboxSpec `json:"spec"`
	PausePid   int         `json:"pausePid,omitempty"`
	PauseStart uint64      `json:"pauseStart,omitempty"` // /proc starttime: guards against pid reuse
}

const sandboxStateFile = "sandbox.json"

// ID returns the sandbox's id.
func (sb *Sandbox) ID() string { return sb.st.Spec.ID }

// nsPath returns the pinned namespace file of kind "uts", "ipc" or "pid",
// or "" when the pod uses the host's (or, for pid, per-container ones).
func (sb *Sandbox) nsPath(kind string) string {
	s := sb.st.Spec
	switch {
	case kind == "uts" && s.HostNetwork, kind == "ipc" && s.HostIPC, kind == "pid" && !s.SharePID:
		return ""
	}
	return filepath.Join(sb.dir, kind)
}

// CreateSandbox creates the pod's shared namespaces. On error nothing is left.
func (r *Runtime) CreateSandbox(s SandboxSpec) (_ *Sandbox, retErr error) {
	if err := validID(s.ID); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	switch {
	case s.HostNetwork && s.NetNS != "":
		return nil, fmt.Errorf("sandbox %s: NetNS %q given with HostNetwork", s.ID, s.NetNS)
	case !s.HostNetwork && !filepath.IsAbs(s.NetNS):
		return nil, fmt.Errorf("sandbox %s: NetNS must be an absolute path unless HostNetwork (got %q)", s.ID, s.NetNS)
	case s.HostPID && s.SharePID:
		return nil, fmt.Errorf("sandbox %s: HostPID and SharePID are exclusive", s.ID)
	case s.CgroupPath != "" && !filepath.IsAbs(s.CgroupPath):
		return nil, fmt.Errorf("sandbox %s: CgroupPath %q must be absolute", s.ID, s.CgroupPath)
	case len(s.Hostname) > 64:
		return nil, fmt.Errorf("sandbox %s: hostname %q longer than 64 bytes", s.ID, s.Hostname)
	}
	if !s.HostNetwork {
		if _, err := os.Stat(s.NetNS); err != nil {
			return nil, fmt.Errorf("sandbox %s: network namespace: %w", s.ID, err)
		}
	}

	dir := filepath.Join(r.root, sandboxesDir, s.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	sb := &Sandbox{dir: dir, st: sandboxState{Spec: s}}
	defer func() {
		if retErr != nil {
			if err := sb.Destroy(); err != nil {
				slog.Warn("rolling back sandbox", "sandbox", s.ID, "err", err)
			}
		}
	}()

	// A shared mount point, so that unmounting the pins here also unmounts
	// their copies in mount namespaces cloned meanwhile (they would keep
	// the namespaces alive). Same as iproute2 does for /run/netns.
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		return nil, fmt.Errorf("sandbox %s: bind %s: %w", s.ID, dir, err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		return nil, fmt.Errorf("sandbox %s: make %s shared: %w", s.ID, dir, err)
	}

	var flags int
	var kinds []string
	if !s.HostNetwork {
		flags |= unix.CLONE_NEWUTS
		kinds = append(kinds, "uts")
	}
	if !s.HostIPC {
		flags |= unix.CLONE_NEWIPC
		kinds = append(kinds, "ipc")
	}
	if flags != 0 {
		if err := pinNewNamespaces(dir, flags, kinds, s.Hostname); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
	}
	if s.SharePID {
		if err := sb.startPause(); err != nil {
			return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
		}
	}
	if err := sb.save(); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", s.ID, err)
	}
	return sb, nil
}

// pinNewNamespaces unshares flags on a throw-away thread, sets the hostname
// in the new UTS namespace and bind-mounts the thread's namespaces onto
// dir/<kind>. The thread is never unlocked: it dies with its goroutine, so
// no goroutine ever runs inside the pod's namespaces afterwards.
func pinNewNamespaces(dir string, flags int, kinds []string, hostname string) error {
	for _, k := range kinds {
		f, err := os.OpenFile(filepath.Join(dir, k), os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if err != nil {
			return fmt.Errorf("namespace pin file: %w", err)
		}
		f.Close()
	}
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(flags); err != nil {
				return fmt.Errorf("unshare %v: %w", kinds, err)
			}
			if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
				if err := unix.Sethostname([]byte(hostname)); err != nil {
					return fmt.Errorf("sethostname %q: %w", hostname, err)
				}
			}
			for _, k := range kinds {
				// thread-self, not self: only this thread is in the new namespaces.
				if err := unix.Mount("/proc/thread-self/ns/"+k, filepath.Join(dir, k), "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("pin %s namespace: %w", k, err)
				}
			}
			return nil
		}()
	}()
	return <-errc
}

// startPause starts the pause process as PID 1 of a new PID namespace,
// puts it in the pod's cgroup leaf and pins the namespace at dir/pid. Like
// the pause container it is in the pod's network, UTS and IPC namespaces,
// in a mount namespace of its own on an empty read-only root, as uid and
// gid 65535 with no capabilities and no_new_privs (pause.c does that).
func (sb *Sandbox) startPause() error {
	s := sb.st.Spec
	report, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start pause process: %w", err)
	}
	defer report.Close()
	files := []*os.File{w}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var kinds string
	join := func(kind byte, path string) error {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("pause process: %w", err)
		}
		files = append(files, f)
		kinds += string(kind)
		return nil
	}
	if !s.HostNetwork {
		if err := join('n', s.NetNS); err != nil {
			return err
		}
		if err := join('u', sb.nsPath("uts")); err != nil {
			return err
		}
	}
	if !s.HostIPC {
		if err := join('i', sb.nsPath("ipc")); err != nil {
			return err
		}
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{pauseArgv0},
		// The empty root is mounted on the sandbox's directory, in the
		// pause's own mount namespace only.
		Env:        []string{"_PODRUN_PAUSE=" + kinds, "_PODRUN_PAUSE_ROOT=" + sb.dir},
		ExtraFiles: files, // fd 3 the report pipe, then the namespaces
		Dir:        "/",   // hold no mount busy
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: unix.CLONE_NEWPID,
			// Its own session: a terminal's Ctrl-C must not reach it, since
			// the whole pod's PID namespace dies with it.
			Setsid: true,
		},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pause process: %w", err)
	}
	for _, f := range files {
		f.Close()
	}
	files = nil
	if err := pauseReport(report); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("pause process: %w", err)
	}
	sb.pause = cmd
	sb.st.PausePid = cmd.Process.Pid
	_, start, err := procStat(cmd.Process.Pid)
	if err != nil {
		return fmt.Errorf("pause process: %w", err)
	}
	sb.st.PauseStart = start
	if sb.st.Spec.CgroupPath != "" {
		m, err := pauseCgroup(sb.st.Spec.CgroupPath, sb.st.Spec.CgroupSystemd)
		if err != nil {
			return err
		}
		if err := m.Apply(cmd.Process.Pid); err != nil {
			return fmt.Errorf("pause process into cgroup %s: %w", sb.st.Spec.CgroupPath, err)
		}
	}
	p := filepath.Join(sb.dir, "pid")
	f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("namespace pin file: %w", err)
	}
	f.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/pid", cmd.Process.Pid), p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("pin pid namespace: %w", err)
	}
	return nil
}

// pauseTimeout bounds the pause process's setup, which takes milliseconds.
const pauseTimeout = 10 * time.Second

// pauseReport reads what the pause process reports once set up: "ok", or
// what failed.
func pauseReport(r *os.File) error {
	if err := r.SetReadDeadline(time.Now().Add(pauseTimeout)); err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	switch {
	case err != nil:
		return fmt.Errorf("setting up: %w", err)
	case string(b) == "ok":
		return nil
	case len(b) == 0:
		return errors.New("exited while setting up")
	}
	return errors.New(string(b))
}

func pauseCgroup(podCgroup string, systemd bool) (cgroups.Manager, error) {
	leaf := filepath.Join(podCgroup, "pause")
	if systemd {
		leaf = filepath.Join(podCgroup, strings.TrimSuffix(filepath.Base(podCgroup), ".slice")+"-pause.scope")
	}
	m, err := manager.New(cgroupConfig(leaf, systemd, &cgroups.Resources{SkipDevices: true}))
	if err != nil {
		return nil, fmt.Errorf("pause cgroup under %s: %w", podCgroup, err)
	}
	return m, nil
}

// save writes sandbox.json atomically (rename). No fsync: after a crash of
// the machine the namespaces it describes are gone anyway.
func (sb *Sandbox) save() error {
	b, err := json.Marshal(sb.st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(sb.dir, sandboxStateFile), b, 0o600, false)
}

// LoadSandbox finds a sandbox created by an earlier process (or this one).
func (r *Runtime) LoadSandbox(id string) (*Sandbox, error) {
	if err := validID(id); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	dir := filepath.Join(r.root, sandboxesDir, id)
	b, err := os.ReadFile(filepath.Join(dir, sandboxStateFile))
	if err != nil {
		return nil, fmt.Errorf("load sandbox %s: %w", id, err)
	}
	sb := &Sandbox{dir: dir}
	if err := json.Unmarshal(b, &sb.st); err != nil {
		return nil, fmt.Errorf("load sandbox %s: %w", id, err)
	}
	return sb, nil
}

// pauseWait bounds how long Destroy waits for a SIGKILLed pause process.
const pauseWait = 10 * time.Second

// Destroy kills the pause process (and with it every process left in the
// pod's PID namespace), unmounts every pin and removes the sandbox's
// directory and pause cgroup. It is idempotent.
func (sb *Sandbox) Destroy() error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	var errs []error
	if sb.pause != nil {
		_ = sb.pause.Process.Kill()
		_ = sb.pause.Wait() // reap: we are its parent
		sb.pause = nil
	} else if sb.st.PausePid > 0 {
		if p, err := openPidfd(sb.st.PausePid, sb.st.PauseStart); err == nil {
			err := p.signal(unix.SIGKILL)
			if err == nil {
				err = waitTimeout(p.wait, pauseWait)
			}
			p.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("kill pause process %d: %w", sb.st.PausePid, err))
			}
		} else if !errors.Is(err, errGone) {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && sb.st.PausePid > 0 && sb.st.Spec.CgroupPath != "" {
		m, err := pauseCgroup(sb.st.Spec.CgroupPath, sb.st.Spec.CgroupSystemd)
		if err == nil {
			err = m.Destroy()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove pause cgroup: %w", err))
		}
	}
	for _, k := range []string{"uts", "ipc", "pid", ""} {
		p := filepath.Join(sb.dir, k)
		err := unix.Unmount(p, unix.MNT_DETACH)
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(sb.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", sb.dir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", sb.ID(), err)
	}
	return nil
}

// waitTimeout runs wait and gives up after d.
func waitTimeout(wait func() error, d time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- wait() }()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		return fmt.Errorf("still running after %v", d)
	}
}
