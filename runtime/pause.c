// The pod sandbox's pause process. It runs from a constructor, before the
// Go runtime starts, so that it is one thread doing everything at once:
// joining the pod's namespaces, leaving the host's filesystem and dropping
// every privilege are per-thread operations that a Go process could not
// carry out for all of its threads. It never returns to Go.
//
// The parent (startPause in sandbox.go) sets _PODRUN_PAUSE to the kinds of
// namespace to join, one letter each ('n' net, 'u' uts, 'i' ipc) for fds
// 4, 5, 6 in order; _PODRUN_PAUSE_ROOT to a directory to mount the empty
// root on; fd 3 is the report pipe: "ok" once set up, else the error.

#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

// The pause image's user and group (registry.k8s.io/pause runs as 65535).
#define PAUSE_ID 65535

static void fail(int report, const char *what)
{
	int err = errno;
	dprintf(report, "%s: %s", what, strerror(err));
	_exit(1);
}

__attribute__((constructor)) static void podrun_pause(void)
{
	const char *kinds = getenv("_PODRUN_PAUSE");
	const char *root = getenv("_PODRUN_PAUSE_ROOT");
	const int report = 3;
	sigset_t sigs;
	int fd = 4;

	if (kinds == NULL)
		return;

	// First of all: as PID 1 of its namespace, a signal it has no handler
	// for and has not blocked is dropped, and a SIGTERM must not be lost.
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0)
		fail(report, "block signals");

	for (const char *k = kinds; *k; k++, fd++) {
		int type = *k == 'n' ? CLONE_NEWNET : *k == 'u' ? CLONE_NEWUTS : *k == 'i' ? CLONE_NEWIPC : 0;
		if (type == 0) {
			errno = EINVAL;
			fail(report, "namespace kind");
		}
		if (setns(fd, type) < 0)
			fail(report, "join namespace");
		close(fd);
	}

	// A mount namespace of its own whose only mount is an empty read-only
	// tmpfs: nothing of the host is left to reach through /proc/1/root.
	if (root == NULL || root[0] != '/') {
		errno = EINVAL;
		fail(report, "root directory");
	}
	if (unshare(CLONE_NEWNS) < 0)
		fail(report, "new mount namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail(report, "make mounts private");
	if (mount("pause", root, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=4k") < 0)
		fail(report, "mount the empty root");
	if (chdir(root) < 0)
		fail(report, "enter the empty root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail(report, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		fail(report, "detach the host's root");
	if (chdir("/") < 0)
		fail(report, "chdir /");

	// No capability in any set, the pause image's ids, no_new_privs.
	for (int c = 0;; c++) {
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
			if (errno == EINVAL)
				break; // past the last capability
			fail(report, "drop bounding capabilities");
		}
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail(report, "clear ambient capabilities");
	if (setgroups(0, NULL) < 0)
		fail(report, "setgroups");
	if (setresgid(PAUSE_ID, PAUSE_ID, PAUSE_ID) < 0)
		fail(report, "setresgid");
	if (setresuid(PAUSE_ID, PAUSE_ID, PAUSE_ID) < 0)
		fail(report, "setresuid");
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = { 0 };
	if (syscall(SYS_capset, &hdr, none) < 0)
		fail(report, "clear capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(report, "no_new_privs");

	if (write(report, "ok", 2) != 2)
		_exit(1);
	// Nothing open: not even the host's /dev/null stays reachable.
	for (int i = 0; i <= report; i++)
		close(i);

	for (;;) {
		int sig = sigwaitinfo(&sigs, NULL);
		if (sig == SIGTERM || sig == SIGINT)
			_exit(0);
		// SIGCHLD coalesces: reap every orphan that ended, not just one.
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}
