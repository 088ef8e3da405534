package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadBodyTooLarge(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := ReadBody(w, r, 8)
		if err != nil {
			WriteError(w, err)
			return
		}
		w.Write(data)
	})
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader("12345678")))
	if rec.Code != http.StatusOK || rec.Body.String() != "12345678" {
		t.Errorf("at the limit: %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader("123456789")))
	var st metav1.Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("%d %q: %v", rec.Code, rec.Body.String(), err)
	}
	if rec.Code != http.StatusRequestEntityTooLarge || st.Code != 413 || st.Reason != metav1.StatusReasonRequestEntityTooLarge || st.Message != "Request entity too large: limit is 8" {
		t.Errorf("over the limit: %d %+v", rec.Code, st)
	}
}
