package image

import (
	"errors"
	"fmt"
)

var (
	// ErrNotFound: the image (or one of its layers) is not in the store.
	ErrNotFound = errors.New("image not found")
	// ErrInvalidName: the reference cannot be parsed.
	ErrInvalidName = errors.New("invalid reference format")
	// ErrCorrupt: content does not match the digest that names it.
	ErrCorrupt = errors.New("content does not match its digest")
)

// The kubelet's waiting reasons for image failures. ImagePullBackOff is the
// supervisor's: it is the back-off after an ErrImagePull.
const (
	ReasonErrImagePull     = "ErrImagePull"
	ReasonInvalidImageName = "InvalidImageName"
)

// Error is a failure to make an image available. Reason is the kubelet's
// waiting reason; Error() is the waiting message the kubelet shows with it.
// For ErrImagePull that is the runtime's error, which (as containerd words
// it) names the normalised image; the kubelet's event adds "Failed to pull
// image %q: " in front.
type Error struct {
	Reason string
	Image  string // the reference as the caller wrote it
	Err    error
}

func (e *Error) Error() string {
	switch e.Reason {
	case ReasonInvalidImageName:
		return fmt.Sprintf("Failed to apply default image tag %q: %v", e.Image, e.Err)
	}
	ref := e.Image
	if norm, err := Normalize(ref); err == nil {
		ref = norm
	}
	return fmt.Sprintf("failed to pull and unpack image %q: %v", ref, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Reason maps an error from this package to the kubelet's waiting reason:
// "ErrImagePull" or "InvalidImageName", or "" for errors that are
// neither. (The pull policy, with ErrImageNeverPull and ImageInspectError,
// is the supervisor's: pod's ensureImage.)
func Reason(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	if errors.Is(err, ErrInvalidName) {
		return ReasonInvalidImageName
	}
	return ""
}

// pullError classifies err (from resolving or fetching ref) for Reason.
func pullError(ref string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	if errors.Is(err, ErrInvalidName) {
		return &Error{Reason: ReasonInvalidImageName, Image: ref, Err: err}
	}
	return &Error{Reason: ReasonErrImagePull, Image: ref, Err: err}
}
