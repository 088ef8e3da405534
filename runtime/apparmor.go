package runtime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// appArmorParam is where the kernel says whether AppArmor is enabled.
var appArmorParam = "/sys/module/apparmor/parameters/enabled"

// appArmorProfiles lists the profiles loaded in the kernel, one
// "NAME (MODE)" a line.
var appArmorProfiles = "/sys/kernel/security/apparmor/profiles"

// appArmorParser is the command that loads a profile (apparmor_parser,
// looked up in PATH); a variable for the tests.
var appArmorParser = "apparmor_parser"

// appArmorDir is where the host's profile includes live (tunables,
// abstractions, abi): what the default profile includes when it exists.
var appArmorDir = "/etc/apparmor.d"

// AppArmorEnabled reports whether the host runs AppArmor, as the kubelet
// and runc decide it: the apparmor module's "enabled" parameter is "Y".
func AppArmorEnabled() bool {
	b, err := os.ReadFile(appArmorParam)
	return err == nil && bytes.HasPrefix(b, []byte("Y"))
}

// AppArmorReason is the reason of a pod refused for its AppArmor profile.
const AppArmorReason = "AppArmor"

// AppArmorRefusal is the kubelet's message with which a pod whose pod or
// container securityContext.appArmorProfile (or deprecated annotation)
// asks for a profile other than Unconfined is refused at admission on a
// host without AppArmor: phase Failed, reason AppArmorReason. On a host
// with AppArmor such a pod is admitted and its profiles applied
// (Spec.AppArmor).
func AppArmorRefusal() string {
	return "Cannot enforce AppArmor: AppArmor is not enabled on the host"
}

// AppArmor profile types of Spec.AppArmor, as Kubernetes spells them.
const (
	AppArmorUnconfined     = "Unconfined"
	AppArmorRuntimeDefault = "RuntimeDefault"
	AppArmorLocalhost      = "Localhost"
)

// AppArmorDefaultProfile is the name of podrun's default profile, the one
// RuntimeDefault applies (containerd's is cri-containerd.apparmor.d).
const AppArmorDefaultProfile = "podrun-default"

// ErrAppArmorProfile is in the error Start returns when the container's
// AppArmor profile cannot be applied (a Localhost profile not loaded, the
// default profile not loadable): containerd fails that in
// CreateContainer (CreateContainerError).
var ErrAppArmorProfile = errors.New("apparmor profile")

type appArmorError struct{ error }

func (appArmorError) Is(target error) bool { return target == ErrAppArmorProfile }
func (e appArmorError) Unwrap() error      { return e.error }

// appArmorConfig is the profile libcontainer applies to the container's
// processes (configs.Config.AppArmorProfile, "" for none), as containerd's
// CRI chooses it: none for Unconfined or a privileged container's
// RuntimeDefault, podrun-default (loaded first) for RuntimeDefault, the
// named profile, which must be loaded, for Localhost.
func appArmorConfig(s *Spec) (string, error) {
	switch s.AppArmor {
	case "", AppArmorUnconfined:
		return "", nil
	case AppArmorRuntimeDefault, AppArmorLocalhost:
	default:
		return "", fmt.Errorf("unknown AppArmor profile type %q", s.AppArmor)
	}
	if !AppArmorEnabled() {
		// Admission refuses such a pod; a Spec that gets here anyway must
		// not run unconfined.
		return "", appArmorError{errors.New("apparmor is not supported")}
	}
	if s.AppArmor == AppArmorLocalhost {
		ok, err := appArmorLoaded(s.AppArmorProfile)
		switch {
		case err != nil:
			return "", appArmorError{fmt.Errorf("failed to generate apparmor spec opts: %w", err)}
		case !ok:
			return "", appArmorError{fmt.Errorf("failed to generate apparmor spec opts: apparmor profile not found %s", s.AppArmorProfile)}
		}
		return s.AppArmorProfile, nil
	}
	if s.Privileged {
		return "", nil
	}
	if err := loadDefaultAppArmor(); err != nil {
		return "", appArmorError{err}
	}
	return AppArmorDefaultProfile, nil
}

// appArmorLoaded reports whether the kernel has the profile name loaded.
func appArmorLoaded(name string) (bool, error) {
	f, err := os.Open(appArmorProfiles)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "NAME (enforce)"; a name may have spaces, the mode has none.
		line := sc.Text()
		if i := strings.LastIndex(line, " ("); i >= 0 && line[:i] == name {
			return true, nil
		}
	}
	return false, sc.Err()
}

var defaultAppArmor struct {
	sync.Mutex
	loaded bool
}

// loadDefaultAppArmor loads podrun-default into the kernel, once per
// process (a failure is retried by the next container): apparmor_parser
// -Kr of the generated profile, replacing whatever an older podrun loaded
// under that name.
func loadDefaultAppArmor() error {
	defaultAppArmor.Lock()
	defer defaultAppArmor.Unlock()
	if defaultAppArmor.loaded {
		return nil
	}
	parser, err := exec.LookPath(appArmorParser)
	if err != nil {
		return fmt.Errorf("AppArmor profile %s: cannot load it without apparmor_parser (install the apparmor package): %w", AppArmorDefaultProfile, err)
	}
	f, err := os.CreateTemp("", AppArmorDefaultProfile+"-*")
	if err != nil {
		return fmt.Errorf("AppArmor profile %s: %w", AppArmorDefaultProfile, err)
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(defaultAppArmorProfile(AppArmorDefaultProfile, daemonAppArmorProfile(), hostHas))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("AppArmor profile %s: %w", AppArmorDefaultProfile, err)
	}
	// -K: no cache; -r: replace (or add).
	if out, err := exec.Command(parser, "-Kr", f.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("AppArmor profile %s: %s -Kr: %v: %s", AppArmorDefaultProfile, parser, err, bytes.TrimSpace(out))
	}
	defaultAppArmor.loaded = true
	return nil
}

// hostHas reports whether the host has the profile include file rel
// (under /etc/apparmor.d).
func hostHas(rel string) bool {
	_, err := os.Stat(appArmorDir + "/" + rel)
	return err == nil
}

// daemonAppArmorProfile is the profile podrun itself runs under
// ("unconfined" for none), which may signal the containers.
func daemonAppArmorProfile() string {
	for _, p := range []string{"/proc/self/attr/apparmor/current", "/proc/self/attr/current"} {
		if b, err := os.ReadFile(p); err == nil {
			s := strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
			s, _, _ = strings.Cut(s, " (")
			if s != "" {
				return s
			}
		}
	}
	return "unconfined"
}

// defaultAppArmorProfile is the text of podrun's default profile: the
// rules of containerd's default (contrib/apparmor), written for podrun.
// Everything is allowed (file, network, capabilities, umount) except
// mount, writes to /proc outside the process's own /proc/<pid> and
// /proc/sys/kernel/shm*, /proc/sysrq-trigger and /proc/kcore, writes under
// /sys outside /sys/fs/cgroup, and any access to /sys/firmware and
// /sys/kernel/security. Signals come from unconfined processes, from the
// daemon's profile and from the container's own; ptrace only among the
// container's processes. has says which host includes exist: the host's
// tunables define @{PROC}, else the profile does.
func defaultAppArmorProfile(name, daemon string, has func(string) bool) string {
	var b strings.Builder
	if has("abi/3.0") {
		b.WriteString("abi <abi/3.0>,\n\n")
	}
	if has("tunables/global") {
		b.WriteString("#include <tunables/global>\n\n")
	} else {
		b.WriteString("@{PROC}=/proc/\n\n")
	}
	fmt.Fprintf(&b, "profile %s flags=(attach_disconnected,mediate_deleted) {\n", name)
	if has("abstractions/base") {
		b.WriteString("  #include <abstractions/base>\n\n")
	}
	b.WriteString(`  network,
  capability,
  file,
  umount,

  # Who may signal the container's processes: unconfined (host)
  # processes, the daemon, and the container's own processes.
  signal (receive) peer=unconfined,
`)
	if daemon != "unconfined" && daemon != name {
		fmt.Fprintf(&b, "  signal (receive) peer=%s,\n", daemon)
	}
	fmt.Fprintf(&b, "  signal (send,receive) peer=%s,\n", name)
	b.WriteString(`
  # No writes to files directly in /proc, nor under /proc except in
  # /proc/<pid>/ and /proc/sys/, and in /proc/sys only kernel/shm*.
  deny @{PROC}/* w,
  deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,
  deny @{PROC}/sys/[^k]** w,
  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,
  deny @{PROC}/sysrq-trigger rwklx,
  deny @{PROC}/kcore rwklx,

  deny mount,

  # No writes under /sys except /sys/fs/cgroup; nothing of the firmware
  # and of the security file systems.
  deny /sys/[^f]*/** wklx,
  deny /sys/f[^s]*/** wklx,
  deny /sys/fs/[^c]*/** wklx,
  deny /sys/fs/c[^g]*/** wklx,
  deny /sys/fs/cg[^r]*/** wklx,
  deny /sys/firmware/** rwklx,
  deny /sys/kernel/security/** rwklx,

`)
	fmt.Fprintf(&b, "  ptrace (trace,read,tracedby,readby) peer=%s,\n}\n", name)
	return b.String()
}
