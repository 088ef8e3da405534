// Package runtime is the only importer of libcontainer. It creates, starts,
// execs into, signals, waits for and destroys containers; holds each pod's
// sandbox namespaces; turns a plain container description into a libcontainer
// configuration (mounts, capabilities, masked paths, user); and writes
// container output as CRI log files. It knows nothing about Kubernetes types.
//
// What it owns on the machine:
//
//   - <root>/<id>/: libcontainer's state of each container (root as given to
//     New, e.g. /run/podrun/runc).
//   - <root>/sandboxes/<id>/: a pod's pinned namespaces. The directory is a
//     shared bind mount of itself; uts and ipc are bind mounts of namespaces
//     created with no process in them; with SharePID, pid pins the namespace
//     of the pod's pause process; sandbox.json says what LoadSandbox needs.
//   - The container's leaf cgroup (libcontainer creates and removes it), the
//     pause process's leaf <pod cgroup>/pause, and per running exec a child
//     cgroup <container leaf>/exec-<pid>-<n> that lets a timeout kill exactly
//     that process tree; a container keeps up to two that execs left empty
//     for later execs. Parent cgroups belong to the cgroups package.
//   - The pause process (pause.c, run from a C constructor of this binary
//     before the Go runtime starts): PID 1 of a shared PID namespace, which
//     reaps orphans and exits on SIGTERM or SIGINT. Like the pause container
//     it is in the pod's network, UTS and IPC namespaces, in a mount
//     namespace whose only mount is an empty read-only tmpfs, as uid/gid
//     65535 with every capability set empty and no_new_privs, in the pod's
//     cgroup: through /proc/1 a container reaches nothing of the host.
//
// The process that calls Start is the parent of the container's init (runc
// clones it with CLONE_PARENT) and owns its output pipes: only it learns the
// exit status and copies the output. Load re-attaches from another process,
// without either.
//
// seccomp (Spec.Seccomp): RuntimeDefault is containerd's default profile
// (seccomp.go; defaults_test.go compares it, the capabilities, masked and
// read-only paths, devices and no_new_privs with containerd's own code),
// Localhost an OCI JSON profile file, Unconfined none; a privileged
// container gets none. It needs the binary built with the seccomp tag and
// libseccomp2 at run time (SeccompEnabled); without them a container that
// asks for a profile does not start.
//
// Logs rotate as the kubelet bounds them (Spec.LogMaxSize, LogMaxFiles;
// LogFiles lists them in order) and ReadTail reads a file's last bytes
// alone (the termination message). docs/security.md has the threat model.
//
// AppArmor (Spec.AppArmor, apparmor.go), where AppArmorEnabled: RuntimeDefault
// is podrun-default (AppArmorDefaultProfile), the rules of containerd's
// default profile, loaded once per process with apparmor_parser -Kr from a
// generated file (the host's abi, tunables and abstractions included when
// it has them); Localhost a profile already loaded (listed in
// /sys/kernel/security/apparmor/profiles); Unconfined none; a privileged
// container gets none under RuntimeDefault. libcontainer applies it
// (configs.Config.AppArmorProfile) to the container's process and its
// execs. A profile that cannot be applied (not loaded, no apparmor_parser,
// no AppArmor) fails Start with ErrAppArmorProfile: never unconfined. On a
// host without AppArmor, admission refuses a pod asking for a profile with
// AppArmorRefusal, the kubelet's message.
//
// Mount.RecursiveReadOnly is runc's rro (RecursiveReadOnlySupported probes
// the kernel for mount_setattr).
//
// Not done: SELinux labels, user namespaces, and
// the check that a Bidirectional volume's source is itself a shared mount.
//
// May import: the standard library, x/sys, libcontainer, opencontainers/cgroups
// and runtime-spec types.
package runtime
