// Package daemon is the composition root of "podrun daemon": it serves the
// API on a unix socket, starts one "podrun shim" per pod, finds running shims
// again after a restart, and cleans what dead pods left. It is never the
// parent of a container.
//
// # Processes
//
// Each pod runs in its own shim (package shim, the "podrun shim" command), a
// detached process (own session, output in its shim.log) that hosts the
// pod's pod.Supervisor and is the parent of the pod's containers. The daemon
// only talks to shims, over their sockets, so it can stop (SIGTERM), crash
// or be upgraded while every pod goes on; a new daemon takes them over.
//
// # What it owns on the machine
//
//   - The API socket (--socket, default /run/podrun/podrun.sock): mode 0600,
//     root's, since whoever reaches it can run anything as root.
//   - <run-root>/daemon.lock: flocked by the one daemon of that run root.
//   - <run-root>/pods/<uid>/, one run directory per pod it runs; its files
//     and their versioned format are package shim's (shim.Dir). The
//     directory goes once the pod finished and the daemon recorded it.
//   - <root>/api/<resource>/<namespace>/<name>.json: the objects (pods with
//     their final status once finished, Deployments, Jobs with their status,
//     ConfigMaps, Secrets), each written atomically and synced by one writer
//     goroutine, never under the daemon's lock; a request that changed
//     objects is answered once they are on disk.
//
// # Lifecycle of a pod
//
// Applying a pod records it, writes the shim's spec, takes the run
// directory's lock and starts the shim with it. One owner goroutine per pod (runPod) follows the shim's
// watch stream, passes deletions and image updates on, and when the stream
// ends: records the final state (the pod keeps its final status until deleted;
// a pod whose deletion was asked for disappears), or, when the shim died,
// starts a new one after a back-off, which restores the pod from
// its checkpoint (pod.Restore re-attaches to running containers and
// reports the lost ones ContainerStatusUnknown, as the kubelet does).
//
// # Restart
//
// A starting daemon reads its objects, then looks at every run directory:
// a live shim is followed again, a dead one replaced (or its final state
// recorded), the directory of a pod it does not know removed; pods whose
// run directory is gone (a reboot) start again. Then node.Node.GC removes
// whatever no supervisor holds (it spares the pods the daemon runs), and the
// controllers resume: each Deployment is reconciled, each unfinished Job's
// controller restarts with the pods still running and those that finished
// while the daemon was down.
//
// # Controllers
//
// A Deployment runs as its controller runs it (replicasets.go, with the
// decisions of controller/deployment): ReplicaSets as API objects named by
// pod-template-hash, a changed template rolled out by its strategy, each
// ReplicaSet's pods kept at its replicas, deleting the Deployment deletes
// its ReplicaSets and pods. A Job runs
// job.Controller with pods backed by shims; applying a suspended Job with
// suspend: false resumes it, and a finished Job with ttlSecondsAfterFinished
// is deleted with its pods once the TTL has passed (docs/controllers.md).
//
// Not done: kubectl's own exec/port-forward protocols (SPDY or
// WebSocket; see package api), a pod's deletion grace shortened by a second
// delete, ConfigMap and Secret changes reaching running pods.
package daemon
