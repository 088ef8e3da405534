package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InvalidManifest is the API server's 422 Invalid for a whole manifest:
// every problem is one cause, and the message lists them one per line.
func InvalidManifest(problems []string) *apierrors.StatusError {
	st := metav1.Status{
		Status:  metav1.StatusFailure,
		Reason:  metav1.StatusReasonInvalid,
		Code:    http.StatusUnprocessableEntity,
		Message: strings.Join(problems, "\n"),
		Details: &metav1.StatusDetails{},
	}
	for _, p := range problems {
		st.Details.Causes = append(st.Details.Causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Message: p})
	}
	return &apierrors.StatusError{ErrStatus: st}
}

// Problems lists an Invalid error's problems one by one (its causes, or its
// message when it has none).
func Problems(err error) []string {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return []string{err.Error()}
	}
	st := se.Status()
	if st.Details == nil || len(st.Details.Causes) == 0 {
		return []string{st.Message}
	}
	var out []string
	for _, c := range st.Details.Causes {
		msg := c.Message
		if c.Field != "" && !strings.Contains(msg, c.Field) {
			msg = c.Field + ": " + msg
		}
		out = append(out, msg)
	}
	return out
}

// WriteError answers with err as a metav1.Status: an API status keeps its
// code and reason, anything else is a 500 InternalError.
func WriteError(w http.ResponseWriter, err error) {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		se = apierrors.NewInternalError(err)
	}
	st := se.Status()
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

// DecodeError turns an error response into a *apierrors.StatusError.
func DecodeError(code int, body []byte) error {
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		return &apierrors.StatusError{ErrStatus: st}
	}
	msg := strings.TrimSpace(string(body))
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: int32(code),
		Reason: metav1.StatusReasonUnknown, Message: msg}}
}
