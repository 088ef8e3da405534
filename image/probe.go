package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Overlay mount paths, as ProbeOverlay reports them.
const (
	OverlayLowerdirPlus = "lowerdir+"      // the new mount API, one lower directory at a time: images of any depth
	OverlayLegacy       = "legacy options" // one page of mount options (kernels before 6.8): deep images by short relative names
)

// ProbeOverlay mounts a one-layer overlay in a temporary directory under
// dir and says which way this kernel mounts container root filesystems;
// an error says overlay does not work here at all.
func ProbeOverlay(dir string) (string, error) {
	tmp, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	d := func(n string) string { return filepath.Join(tmp, n) }
	for _, n := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(d(n), 0o700); err != nil {
			return "", err
		}
	}
	umount := func() { _ = unix.Unmount(d("m"), unix.MNT_DETACH) }
	ferr := mountFsconfig([]string{d("l")}, d("u"), d("w"), d("m"))
	if ferr == nil {
		umount()
		return OverlayLowerdirPlus, nil
	}
	if err := mountLegacy([]string{d("l")}, d("u"), d("w"), d("m")); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return "", fmt.Errorf("the kernel has no overlay filesystem (modprobe overlay): %w", err)
		}
		return "", fmt.Errorf("overlay mounts fail here (is %s on a filesystem overlay accepts as upper, such as ext4, xfs or tmpfs?): %w", dir, err)
	}
	umount()
	return OverlayLegacy, nil
}
