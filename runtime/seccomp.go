package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"

	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Seccomp profile types of Spec.Seccomp, as Kubernetes spells them.
const (
	SeccompUnconfined     = "Unconfined"
	SeccompRuntimeDefault = "RuntimeDefault"
	SeccompLocalhost      = "Localhost"
)

// ErrSeccompProfile is in the error Start returns when the container's
// Localhost seccomp profile cannot be loaded: CRI reports that from
// CreateContainer (CreateContainerError).
var ErrSeccompProfile = errors.New("seccomp profile")

type seccompError struct{ error }

func (seccompError) Is(target error) bool { return target == ErrSeccompProfile }
func (e seccompError) Unwrap() error      { return e.error }

// SeccompEnabled reports whether this binary was built with libcontainer's
// seccomp support (build tag seccomp, cgo, libseccomp); without it a
// container that asks for a profile does not start.
func SeccompEnabled() bool { return seccomp.Enabled }

// seccompConfig is the filter a container gets, as containerd's CRI
// chooses it: none for a privileged container or Unconfined, containerd's
// default profile for RuntimeDefault (its rules depending on caps, the
// container's bounding set), the profile file for Localhost.
func seccompConfig(s *Spec, caps []string) (*configs.Seccomp, error) {
	if s.Privileged {
		return nil, nil
	}
	var prof *specs.LinuxSeccomp
	switch s.Seccomp {
	case "", SeccompUnconfined:
		return nil, nil
	case SeccompRuntimeDefault:
		prof = defaultSeccomp(caps)
	case SeccompLocalhost:
		var err error
		if prof, err = loadSeccomp(s.SeccompProfile); err != nil {
			return nil, seccompError{err}
		}
	default:
		return nil, fmt.Errorf("unknown seccomp profile type %q", s.Seccomp)
	}
	if !seccomp.Enabled {
		return nil, fmt.Errorf("seccomp profile %s: podrun was built without seccomp support (build tag seccomp, libseccomp)", s.Seccomp)
	}
	cfg, err := specconv.SetupSeccomp(prof)
	if err != nil {
		err = fmt.Errorf("seccomp profile %s %s: %w", s.Seccomp, s.SeccompProfile, err)
		if s.Seccomp == SeccompLocalhost {
			err = seccompError{err}
		}
		return nil, err
	}
	return cfg, nil
}

// loadSeccomp reads an OCI seccomp profile (the linux.seccomp object of a
// runtime spec, which docker-format profiles also are) as containerd's
// WithProfile does, with its error messages.
func loadSeccomp(path string) (*specs.LinuxSeccomp, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("cannot load seccomp profile %q: not an absolute path", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot load seccomp profile %q: %w", path, err)
	}
	var prof specs.LinuxSeccomp
	if err := json.Unmarshal(b, &prof); err != nil {
		return nil, fmt.Errorf("decoding seccomp profile failed %q: %w", path, err)
	}
	return &prof, nil
}

// defaultSeccomp is containerd's default profile (contrib/seccomp
// DefaultProfile) for this machine's architecture and the container's
// bounding capabilities: everything not allowed fails with EPERM.
func defaultSeccomp(caps []string) *specs.LinuxSeccomp {
	allow := func(names ...string) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: names, Action: specs.ActAllow}
	}
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: seccompArches[goruntime.GOARCH],
		Syscalls:      []specs.LinuxSyscall{allow(strings.Fields(defaultSyscalls)...)},
	}
	p.Syscalls = append(p.Syscalls, socketRules()...)
	// personality(2) only for the personas a process may need: Linux,
	// UNAME26, ADDR_NO_RANDOMIZE (alone and together), and the query.
	for _, persona := range []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff} {
		r := allow("personality")
		r.Args = []specs.LinuxSeccompArg{{Index: 0, Value: persona, Op: specs.OpEqualTo}}
		p.Syscalls = append(p.Syscalls, r)
	}
	p.Syscalls = append(p.Syscalls, allow(strings.Fields(ptraceSyscalls)...))
	if names := archSyscalls[goruntime.GOARCH]; names != "" {
		p.Syscalls = append(p.Syscalls, allow(strings.Fields(names)...))
	}
	for _, c := range capSyscalls {
		if slices.Contains(caps, c.cap) {
			p.Syscalls = append(p.Syscalls, allow(strings.Fields(c.names)...))
		}
	}
	if !slices.Contains(caps, "CAP_SYS_ADMIN") {
		// Without CAP_SYS_ADMIN: clone only without namespace flags (the
		// flags are argument 0, except on s390 where they are argument 1),
		// and clone3, whose flags a filter cannot read, ENOSYS so that libc
		// falls back to clone.
		idx := uint(0)
		if strings.HasPrefix(goruntime.GOARCH, "s390") {
			idx = 1
		}
		r := allow("clone")
		r.Args = []specs.LinuxSeccompArg{{Index: idx, Value: namespaceFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}}
		nosys := uint(unix.ENOSYS)
		p.Syscalls = append(p.Syscalls, r,
			specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &nosys})
	}
	return p
}

// namespaceFlags are clone's flags that make new namespaces.
const namespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// seccompArches are the architectures the filter covers per GOARCH: the
// native one and those a process can switch to.
var seccompArches = map[string][]specs.Arch{
	"amd64":       {specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	"arm64":       {specs.ArchARM, specs.ArchAARCH64},
	"mips64":      {specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32},
	"mips64n32":   {specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32},
	"mipsel64":    {specs.ArchMIPSEL, specs.ArchMIPSEL64, specs.ArchMIPSEL64N32},
	"mipsel64n32": {specs.ArchMIPSEL, specs.ArchMIPSEL64, specs.ArchMIPSEL64N32},
	"s390x":       {specs.ArchS390, specs.ArchS390X},
	"riscv64":     {specs.ArchRISCV64},
	"loong64":     {specs.ArchLOONGARCH64},
}

// archSyscalls are allowed on one architecture only.
var archSyscalls = map[string]string{
	"amd64":   "arch_prctl modify_ldt",
	"386":     "modify_ldt",
	"arm":     "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
	"arm64":   "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
	"ppc64le": "sync_file_range2 swapcontext",
	"s390":    "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
	"s390x":   "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
	"riscv64": "riscv_flush_icache riscv_hwprobe",
}

// capSyscalls are allowed when the container holds the capability.
var capSyscalls = []struct{ cap, names string }{
	{"CAP_DAC_READ_SEARCH", "open_by_handle_at"},
	{"CAP_SYS_ADMIN", "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr " +
		"move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns " +
		"syslog umount umount2 unshare"},
	{"CAP_SYS_BOOT", "reboot"},
	{"CAP_SYS_CHROOT", "chroot"},
	{"CAP_SYS_MODULE", "delete_module init_module finit_module"},
	{"CAP_SYS_PACCT", "acct"},
	{"CAP_SYS_PTRACE", "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"},
	{"CAP_SYS_RAWIO", "iopl ioperm"},
	{"CAP_SYS_TIME", "settimeofday stime clock_settime clock_settime64"},
	{"CAP_SYS_TTY_CONFIG", "vhangup"},
	{"CAP_SYS_NICE", "get_mempolicy mbind set_mempolicy set_mempolicy_home_node"},
	{"CAP_SYSLOG", "syslog"},
	{"CAP_BPF", "bpf"},
	{"CAP_PERFMON", "perf_event_open"},
}

// defaultSyscalls are allowed to every container (socket only for the
// domains of socketDomains).
const defaultSyscalls = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl
fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64
fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait
futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32 geteuid
geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
getxattrat inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link
linkat listen listmount listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr
lsm_get_self_attr lsm_list_modules lsm_set_self_attr lstat lstat64 madvise membarrier memfd_create
memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall map_shadow_stack mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock munlockall
munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2
read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups
setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid
setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64
statmount statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill
truncate truncate64 ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat
utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`

// ptraceSyscalls are allowed to every container on Linux 4.8 and later,
// where seccomp runs again after a tracer changed the system call: always,
// since podrun needs 5.6.
const ptraceSyscalls = "process_vm_readv process_vm_writev ptrace"

// socketDomains are the socket(2) domains a container may create: every
// one Linux defines but AF_ALG (the kernel's crypto API) and AF_VSOCK
// (host/guest sockets, global across network namespaces). With
// socketcall(2) (32-bit x86) the domain cannot be filtered.
var socketDomains = []uint64{
	unix.AF_UNIX, unix.AF_INET, unix.AF_AX25, unix.AF_IPX, unix.AF_APPLETALK, unix.AF_NETROM,
	unix.AF_BRIDGE, unix.AF_ATMPVC, unix.AF_X25, unix.AF_INET6, unix.AF_ROSE, unix.AF_DECnet,
	unix.AF_NETBEUI, unix.AF_SECURITY, unix.AF_KEY, unix.AF_NETLINK, unix.AF_PACKET, unix.AF_ASH,
	unix.AF_ECONET, unix.AF_ATMSVC, unix.AF_RDS, unix.AF_SNA, unix.AF_IRDA, unix.AF_PPPOX,
	unix.AF_WANPIPE, unix.AF_LLC, unix.AF_IB, unix.AF_MPLS, unix.AF_CAN, unix.AF_TIPC,
	unix.AF_BLUETOOTH, unix.AF_IUCV, unix.AF_RXRPC, unix.AF_ISDN, unix.AF_PHONET,
	unix.AF_IEEE802154, unix.AF_CAIF, unix.AF_NFC, unix.AF_KCM, unix.AF_QIPCRTR, unix.AF_SMC,
	unix.AF_XDP, unix.AF_MCTP,
}

// socketRules allows socket(2) for socketDomains: one "less than" rule for
// the run of consecutive domains from AF_UNIX (AF_UNSPEC, 0, cannot be
// created), then one "equal" rule per other domain. (libcontainer ORs two
// comparisons of one argument, so a bounded range needs this shape.)
func socketRules() []specs.LinuxSyscall {
	d := slices.Clone(socketDomains)
	slices.Sort(d)
	rule := func(v uint64, op specs.LinuxSeccompOperator) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{"socket"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: v, Op: op}}}
	}
	var rules []specs.LinuxSyscall
	if len(d) > 1 && d[0] == unix.AF_UNIX && d[1] == d[0]+1 {
		end := 1
		for end+1 < len(d) && d[end+1] == d[end]+1 {
			end++
		}
		rules = append(rules, rule(d[end]+1, specs.OpLessThan))
		d = d[end+1:]
	}
	for _, v := range d {
		rules = append(rules, rule(v, specs.OpEqualTo))
	}
	return rules
}
