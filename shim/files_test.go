package shim

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/podrun/podrun/pod"
)

func TestFilesCarryTheContractVersion(t *testing.T) {
	d := Dir(t.TempDir())
	p := &corev1.Pod{}
	p.Name = "p"
	if err := d.WriteSpec(&Spec{Pod: p}); err != nil {
		t.Fatal(err)
	}
	if s, err := d.ReadSpec(); err != nil || s.Version != Version || s.Pod.Name != "p" {
		t.Fatalf("spec %+v, %v", s, err)
	}
	if err := d.writeCheckpoint(&pod.Checkpoint{Pod: p, PodIP: "10.0.0.2"}); err != nil {
		t.Fatal(err)
	}
	cp, err := d.readCheckpoint()
	if err != nil || cp.PodIP != "10.0.0.2" || cp.Pod.Name != "p" {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	b, _ := os.ReadFile(d.path(checkpointFile))
	if !strings.Contains(string(b), `"version":2`) {
		t.Errorf("checkpoint.json has no version: %s", b)
	}
}

func TestNewerFilesAreRefusedAndOldOnesRead(t *testing.T) {
	d := Dir(t.TempDir())
	// Written before the version field: the format of version 1.
	if err := os.WriteFile(d.path(finalFile), []byte(`{"pod":{"metadata":{"name":"p"}},"final":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := d.ReadFinal(); err != nil || !st.Final {
		t.Fatalf("unversioned final.json: %+v, %v", st, err)
	}
	if err := os.WriteFile(d.path(finalFile), []byte(`{"version":3,"pod":{"metadata":{"name":"p"}},"final":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFinal(); err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Errorf("final.json of version 3: err = %v", err)
	}
}

func TestLogTailStartsAtALine(t *testing.T) {
	d := Dir(t.TempDir())
	if got := d.LogTail(64); got != "" {
		t.Errorf("no log: %q", got)
	}
	f, err := d.OpenLog()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(strings.Repeat("x", 100) + "\nfirst\nlast: opening the node's stores\n")
	f.Close()
	if got := d.LogTail(40); got != "first\nlast: opening the node's stores" {
		t.Errorf("tail %q", got)
	}
}
