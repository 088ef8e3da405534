package pod

//go:generate stringer -type=lifecycle,ending,instanceState -linecomment -output=state_string.go

// lifecycle is where a pod is in its life on this node:
//
//	creating ──sandbox made──▶ running ──kill or delete──▶ terminating{ending} ──nothing runs──▶ finished
//	    │                                                        ▲
//	    └────────────────────────── delete ──────────────────────┘
//
// A pod whose phase became terminal on its own (every container exited
// and none restarts) finishes from running.
type lifecycle uint8

const (
	creating    lifecycle = iota // creating
	running                      // running
	terminating                  // terminating
	finished                     // finished
)

// ending is why a pod terminates.
type ending uint8

const (
	notEnding     ending = iota //
	endDeleted                  // deleted
	endCompleted                // completed
	endInitFailed               // initFailed
	endDeadline                 // deadline
)

// deletion reports whether the pod ends because it must go whatever it
// does (a deletion or its deadline), not because its containers are done.
func (e ending) deletion() bool { return e == endDeleted || e == endDeadline }

// instanceState is where one container instance is in its life:
//
//	(start ok) ──▶ running ──exit──▶ exited
//	(created, start refused) ──▶ startFailed  (containerd's StartError, exit 128)
//	running ──gone while its supervisor was down──▶ lost  (ContainerStatusUnknown, 137)
//
// A container with no instance yet, or one in back-off, is waiting: that
// is the container's state (ctr.waiting), not an instance's.
type instanceState uint8

const (
	instRunning     instanceState = iota // running
	instExited                           // exited
	instStartFailed                      // startFailed
	instLost                             // lost
)
