// Package volumes owns a pod's volumes on the host: emptyDir (a directory,
// or a tmpfs for medium Memory), hostPath (with its type checked) and
// configMap, secret, downwardAPI and projected volumes written like the
// kubelet's AtomicWriter (secrets, downwardAPI and projected on a tmpfs), all
// living as long as the pod and surviving container restarts; with the pod's
// fsGroup, given to that group as the kubelet's SetVolumeOwnership does
// (ownership.go, by file descriptors). Refresh brings a running pod's
// configMap, secret and projected volumes up to date with new objects, one
// ..data swap per changed volume, as the kubelet's remount does. Teardown needs
// only the pod's volumes directory, so it also cleans up after a crash.
//
// subPath mounts (PrepareSubPath) are opened inside the volume with openat2
// RESOLVE_BENEATH, created with mkdirat relative to their open parent and
// bind-mounted from the open file descriptor onto
// <pod dir>/volume-subpaths/<volume>/<container>/<index>, the kubelet's
// layout, which the container then mounts: a pod racing symlinks against
// it (CVE-2017-1002101, CVE-2021-25741) never gets a host path mounted.
// TeardownSubPaths removes them, after a crash too. Needs openat2 (Linux 5.6).
//
// May import: the standard library, x/sys, and k8s.io/api and apimachinery
// types.
package volumes
