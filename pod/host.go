package pod

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/image"
	"github.com/podrun/podrun/runtime"
)

// Host carries out the supervisor's decisions on this machine. node.Node
// implements it with the real leaves; tests use a fake. Like the CRI, the
// Host finds a pod's sandbox again by the pod's UID.
type Host interface {
	// CreateSandbox makes the pod's cgroup, network, volumes and shared
	// namespaces. On error nothing of them is left.
	CreateSandbox(ctx context.Context, p *corev1.Pod, objs Objects) (*Sandbox, error)
	// DestroySandbox removes everything CreateSandbox made; idempotent.
	DestroySandbox(ctx context.Context, p *corev1.Pod) error
	// LookupImage finds a local image; image.ErrNotFound when absent.
	LookupImage(ref string) (*image.Image, error)
	// PullImage pulls with the pod's pull secrets.
	PullImage(ctx context.Context, p *corev1.Pod, ref string) (*image.Image, error)
	// RestoreSandbox takes over the sandbox an earlier process created.
	RestoreSandbox(ctx context.Context, p *corev1.Pod, objs Objects, podIP string) (*Sandbox, error)
	// RefreshVolumes brings the running pod's configMap, secret and
	// projected volumes up to date with objs, as the kubelet refreshes
	// them; it returns the volumes it rewrote.
	RefreshVolumes(p *corev1.Pod, objs Objects) ([]string, error)
	// AttachContainer re-attaches to a container an earlier process started.
	AttachContainer(ctx context.Context, p *corev1.Pod, c *corev1.Container, restartCount int32, id string) (Container, error)
	// StartContainer creates and starts one container instance. A
	// *StartError says the container never existed (config or create
	// failure); any other error is a failed start of a created container.
	StartContainer(ctx context.Context, r *ContainerRequest) (Container, error)
	// PrepareContainer does all of StartContainer but the start of the
	// container's process, with the same errors.
	PrepareContainer(ctx context.Context, r *ContainerRequest) (Prepared, error)
}

// Prepared is a container created up to its start (its process waits).
// Exactly one of Start and Discard must follow.
type Prepared interface {
	// Start starts the process; its errors are StartContainer's for a
	// created container.
	Start(ctx context.Context) (Container, error)
	// Discard removes the container as if it had never been created.
	Discard() error
}

// Sandbox is what the supervisor learns of the sandbox the Host made for
// the pod; the Host keeps its own handles.
type Sandbox struct {
	PodIP, HostIP string
	// Dial opens connections from inside the pod's network namespace.
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	Warnings []Event // e.g. MissingClusterDNS
}

// ContainerRequest is one container instance to start.
type ContainerRequest struct {
	Pod       *corev1.Pod
	Container *corev1.Container
	Image     *image.Image
	Args, Env []string // resolved: command/args expanded, env complete
	// SpecEnv is the environment the spec gives (env, envFrom, resolved),
	// without the image's ENV: the kubelet's makeEnvironmentVariables,
	// which subPathExpr expands with.
	SpecEnv      []string
	RestartCount int32
	Output       func(stream, line string)
	Raw          func(stream string, p []byte) // the output as it is read (attach)
}

// Container is a running (or exited) container instance.
type Container interface {
	ID() string
	StartedAt() time.Time
	Done() <-chan struct{}
	Exit() runtime.Exit
	Signal(syscall.Signal) error
	Exec(ctx context.Context, e runtime.ExecSpec) (int, error)
	// TerminationMessage reads the termination message. Call after Done,
	// before Remove.
	TerminationMessage() string
	// Remove removes the container's runtime state and root filesystem.
	// Call once, after Done.
	Remove() error
}

// StartError is a start failure before any container existed, with the
// kubelet's waiting reason (CreateContainerConfigError, CreateContainerError).
type StartError struct {
	Reason string
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// ConfigError is a start failure of the container's configuration:
// CreateContainerConfigError.
func ConfigError(err error) error { return &StartError{Reason: reasonCreateConfig, Err: err} }

// CreateError is a failure to create the container: CreateContainerError.
func CreateError(err error) error { return &StartError{Reason: reasonCreateError, Err: err} }

func asStartError(err error) (*StartError, bool) {
	var se *StartError
	ok := errors.As(err, &se)
	return se, ok
}
