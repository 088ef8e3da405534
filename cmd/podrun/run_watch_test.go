package main

import (
	"testing"

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
