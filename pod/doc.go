// Package pod is the supervisor: a kubelet for one pod.
//
// One goroutine owns the pod (Supervisor.Run). Every event reaches it through
// one channel: a container started, failed to start or exited, a probe
// result, a sync finished, a delete, an update, a back-off timer, a resync.
// After each event it renders the status (status.go) and, when something
// changed and no sync runs, asks the pure decide (decide.go, the kubelet's
// computePodActions) for the next plan, which one executor goroutine carries
// out in the kubelet's SyncPod order (execute.go):
//
//	kill pod | kill containers → create sandbox → start inits in order → start apps in order
//	                                              (back-off, image, create+start, postStart)
//
// The pod's lifecycle (state.go) is one value, not a set of flags:
//
//	creating ──sandbox made──▶ running ──kill or delete──▶ terminating{ending} ──nothing runs──▶ finished
//
// where ending is deleted, completed (every app done, none restarts),
// initFailed (an init container failed under restartPolicy Never) or
// deadline (activeDeadlineSeconds). A container's record (ctr) keeps its
// latest two instances; an instance goes
//
//	         start ok                exit (watcher: Done, Remove)
//	(none) ───────────▶ running ───────────────────────────────▶ exited
//	   │                   │  probes publish startup/liveness/readiness
//	   │ start refused     └── gone while the supervisor was down ──▶ lost
//	   ├──▶ waiting{reason}  (CrashLoopBackOff, ErrImagePull, CreateContainerConfigError…)
//	   └──▶ startFailed      (created, its process could not start)
//
// and a restart makes a new instance (restartCount+1, lastState = the old one).
// A pod the kubelet's admission would refuse (admit.go: sysctls, AppArmor)
// goes straight to finished, Failed, with nothing created.
// The pod finishes when nothing runs and it is deleted or its phase is
// terminal; then the sandbox is torn down and Run returns.
//
// The Host interface is everything the executor does to the machine;
// node.Node implements it with the leaf packages, and tests use a fake.
// Checkpoint and Restore let a new process take over a pod (the daemon's
// shims).
package pod
