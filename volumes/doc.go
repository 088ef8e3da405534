// Package volumes owns a pod's volumes on the host: emptyDir (a directory,
// or a tmpfs for medium Memory), hostPath (with its type checked) and
// configMap/secret projections written atomically, all living as long as the
// pod and surviving container restarts.
//
// May import: the standard library, x/sys, and k8s.io/api types.
package volumes
