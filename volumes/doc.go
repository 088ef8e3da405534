// Package volumes owns a pod's volumes on the host: emptyDir (a directory,
// or a tmpfs for medium Memory), hostPath (with its type checked) and
// configMap, secret, downwardAPI and projected volumes written like the
// kubelet's AtomicWriter (secrets, downwardAPI and projected on a tmpfs), all
// living as long as the pod and surviving container restarts. Teardown needs
// only the pod's volumes directory, so it also cleans up after a crash.
//
// May import: the standard library, x/sys, and k8s.io/api and apimachinery
// types.
package volumes
