package runtime

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// RecursiveReadOnlySupported reports whether the kernel has mount_setattr
// (Linux 5.12), which a Mount's RecursiveReadOnly needs: what containerd
// reports as the runtime handler's RecursiveReadOnlyMounts feature.
var RecursiveReadOnlySupported = sync.OnceValue(func() bool {
	// No descriptor and no path: EBADF where the call exists.
	err := unix.MountSetattr(-1, "", unix.AT_EMPTY_PATH, &unix.MountAttr{})
	return !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM)
})
