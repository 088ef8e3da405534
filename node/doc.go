// Package node is the real pod.Host: the machine side of a pod, as the
// kubelet's kuberuntime is to its pod workers. It creates and destroys pod
// sandboxes (the lock, cgroup, network, volumes, /etc files, /dev/shm and
// shared namespaces), turns a container of the pod into a runtime.Spec and
// starts it (containerSpec: the kubelet's generateContainerConfig and
// containerd's spec builder), re-attaches to containers after a restart of
// the supervising process, and garbage-collects what pods nobody
// supervises left behind (GC).
//
// It keeps each hosted pod's sandbox by pod UID, as a CRI runtime keeps pod
// sandboxes by ID, so the supervisor holds no handle of the node's.
//
// What it owns on the machine: <root>/pods/<uid>/ (etc/, shm, volumes/,
// containers/<name>-<restart>/) and <run-root>/locks/<uid>, the pod's
// supervision lock, held by the supervising process for as long as it
// supervises the pod. Everything else belongs to the leaves it drives.
//
// May import: pod (the Host contract), the leaves (runtime, image, netns,
// cgroups, volumes) and internal helpers.
package node
