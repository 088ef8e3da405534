package probes

// Result is the outcome of one probe, or the published state of a probe
// kind for one container instance. The zero value is Unknown: "no result
// yet", the initial state of a startup probe.
type Result int8

const (
	Unknown Result = iota
	Success
	Failure
	// Warning is a Success that deserves a ProbeWarning event (an HTTP probe
	// answered with a redirect it did not follow). Run may return it;
	// workers count and publish it as Success.
	Warning
)

func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	case Warning:
		return "Warning"
	default:
		return "Unknown"
	}
}

// Kind is the purpose of a probe: which of a container's three probes it is.
type Kind int8

const (
	Liveness Kind = iota
	Readiness
	Startup
)

// String is the kubelet's probeType string, the first word of its probe
// event messages ("Liveness probe failed: ...").
func (k Kind) String() string {
	switch k {
	case Liveness:
		return "Liveness"
	case Readiness:
		return "Readiness"
	case Startup:
		return "Startup"
	default:
		return "Unknown"
	}
}

// Initial is a kind's result before its first published one, reset for every
// new container instance: not ready, alive, not yet started.
func Initial(k Kind) Result {
	switch k {
	case Readiness:
		return Failure
	case Liveness:
		return Success
	default:
		return Unknown
	}
}
