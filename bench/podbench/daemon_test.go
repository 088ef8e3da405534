package main

import (
	"strings"
	"testing"
)

func TestExitOrder(t *testing.T) {
	// Written out of order: the stamps decide.
	evs := []event{
		{1.0, "p/app", "Started"},
		{2.3, "p/sidecar-1", "Exiting"},
		{2.1, "p/app", "Exiting"},
		{2.2, "p/sidecar-2", "Exiting"},
	}
	last, err := exitOrder(evs, []string{"app", "sidecar-2", "sidecar-1"})
	if err != nil || last != 2.3 {
		t.Errorf("exitOrder = %v, %v; want 2.3", last, err)
	}
	evs[2].at = 2.25 // the app after sidecar-2
	if _, err := exitOrder(evs, []string{"app", "sidecar-2", "sidecar-1"}); err == nil || !strings.Contains(err.Error(), "[sidecar-2 app sidecar-1]") {
		t.Errorf("out of order: err %v", err)
	}
	if _, err := exitOrder(evs[:3], []string{"app", "sidecar-2", "sidecar-1"}); err == nil {
		t.Error("a missing Exiting went unnoticed")
	}
}
