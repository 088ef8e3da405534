package main

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/podrun/podrun/manifest"
)

const watchManifest = `apiVersion: v1
kind: ConfigMap
metadata: {name: conf}
data: {greeting: hello}
---
apiVersion: v1
kind: Pod
metadata: {name: talk}
spec:
  containers: [{name: app, image: busybox}]
`

// Two loads of the same files are the same to the watch loop, whatever
// the UIDs and timestamps a load gives; a changed key is not.
func TestSameObjects(t *testing.T) {
	a, err := manifest.Parse("a.yaml", []byte(watchManifest))
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifest.Parse("a.yaml", []byte(watchManifest))
	if err != nil {
		t.Fatal(err)
	}
	if !sameObjects(a, b) {
		t.Error("two loads of one file differ")
	}
	b.ConfigMaps[0].Data["greeting"] = "bonjour"
	if sameObjects(a, b) {
		t.Error("a changed key is not a change")
	}
}

const watchJob = `apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: app, image: busybox}]
`

// jobSpec is the same for two loads of one Job (each load gives it a new
// UID, which its selector and template labels carry).
func TestJobSpecStable(t *testing.T) {
	a, err := manifest.Parse("j.yaml", []byte(watchJob))
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifest.Parse("j.yaml", []byte(watchJob))
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(jobSpec(a.Jobs[0]), jobSpec(b.Jobs[0])) {
		t.Errorf("two loads differ:\n%+v\n%+v", jobSpec(a.Jobs[0]), jobSpec(b.Jobs[0]))
	}
	b.Jobs[0].Spec.Template.Spec.Containers[0].Image = "busybox:2"
	if equality.Semantic.DeepEqual(jobSpec(a.Jobs[0]), jobSpec(b.Jobs[0])) {
		t.Error("a changed image is no change")
	}
}
