package pod

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/probes"
)

// role is what a container is to the kubelet's rules.
type role uint8

const (
	roleInit    role = iota // a regular init container: runs once, to exit 0
	roleSidecar             // an init container with restartPolicy Always
	roleApp                 // an entry of spec.containers
)

func (r role) String() string {
	return [...]string{"init", "sidecar", "app"}[r]
}

// ctr is the supervisor's record of one container of the pod across all of
// its instances (restarts).
type ctr struct {
	spec *corev1.Container
	role role

	cur      *instance // the latest instance; nil before the first one was created
	prev     *instance // the instance before cur: the status' lastState
	restarts int32     // restartCount of cur

	// waiting is the kubelet's "reason cache": why the last start attempt
	// failed (ErrImagePull, CrashLoopBackOff, ...). A successful start clears it.
	waiting *waitReason

	// pullBackoff is the image pull back-off of this container's image.
	imageID, imageRef string // of the last pulled image, for status
}

type waitReason struct {
	reason, message string
}

// instance is one run of a container (see instanceState).
type instance struct {
	id        string // container ID (without the runtime:// prefix)
	hash      string // name+image of the spec it was created from: a change restarts it
	handle    Container
	env       []string      // the resolved environment, for execs into it
	removed   chan struct{} // closed once the exited container was removed
	applied   chan struct{} // closed once the owner recorded the exit
	startedAt time.Time

	state      instanceState
	exitCode   int32
	reason     string // Completed, Error, OOMKilled, ContainerStatusUnknown, ...
	message    string // termination message
	finishedAt time.Time

	// Published probe results for this instance. Readiness starts as
	// Failure, liveness as Success and startup as Unknown (no result yet).
	startup, liveness, readiness probes.Result

	stopSignal string

	// inHook is set while the instance's postStart hook runs. Until the
	// hook returns the kubelet's status still shows the container as it was
	// before this start (its sync has not ended) and no probe runs (the
	// prober only probes a container whose status is Running).
	inHook bool
	// before is the lastState instance this start displaced, shown again
	// while inHook.
	before *instance
}

func (i *instance) running() bool { return i != nil && i.state == instRunning }

// exited reports whether the instance ended, whichever way: it has an
// exit code and a reason.
func (i *instance) exited() bool { return i != nil && i.state != instRunning }

// started is the kubelet's "started" for apps and sidecars: running and the
// startup probe (if any) has succeeded.
func (c *ctr) started() bool {
	if !c.cur.running() {
		return false
	}
	if c.spec.StartupProbe == nil || c.role == roleInit {
		return true
	}
	return c.cur.startup == probes.Success
}

// ready is §7.3: apps and sidecars are ready when started, running and
// their readiness probe (if any) says so; a regular init is ready once it
// exited 0.
func (c *ctr) ready() bool {
	if c.role == roleInit {
		return c.cur.exited() && c.cur.exitCode == 0
	}
	if !c.started() {
		return false
	}
	return c.spec.ReadinessProbe == nil || c.cur.readiness == probes.Success
}

// lastExited is the most recent exited instance, the kubelet's starting
// point for crash-loop back-off.
func (c *ctr) lastExited() *instance {
	if c.cur.exited() {
		return c.cur
	}
	if c.prev.exited() {
		return c.prev
	}
	return nil
}

// failed is the kubelet's isInitContainerFailed for an exited instance.
func (i *instance) failed() bool {
	return i.exited() && (i.exitCode != 0 || i.reason == reasonOOMKilled)
}

const (
	reasonOOMKilled        = "OOMKilled"
	reasonCompleted        = "Completed"
	reasonError            = "Error"
	reasonStatusUnknown    = "ContainerStatusUnknown"
	reasonCrashLoopBackOff = "CrashLoopBackOff"
	reasonImagePullBackOff = "ImagePullBackOff"
	reasonErrImagePull     = "ErrImagePull"
	reasonPodInitializing  = "PodInitializing"
	reasonCreating         = "ContainerCreating"
	reasonCreateConfig     = "CreateContainerConfigError"
	reasonCreateError      = "CreateContainerError"
	reasonRunContainer     = "RunContainerError"
	reasonStartError       = "StartError"
	reasonPostStartHook    = "PostStartHookError"
)

// specHash covers what the kubelet's HashContainer covers: name and image.
func specHash(c *corev1.Container) string { return c.Name + "\x00" + c.Image }

// lose marks an instance that is gone without an exit status, the way the
// kubelet reports a container it cannot find.
func (i *instance) lose() {
	i.state, i.exitCode, i.reason = instLost, 137, reasonStatusUnknown
	i.message = "The container could not be located when the pod was terminated"
}
