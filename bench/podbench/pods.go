package main

import (
	"fmt"
	"strings"
)

type kind int

const (
	app kind = iota
	initC
	sidecar
)

// ctr is one bench/agent container of a benchmark pod.
type ctr struct {
	name  string
	kind  kind
	flags []string // agent flags
	extra string   // more YAML for the container (probes), indented 6
}

// podYAML is a pod of bench/agent containers: the agent is mounted from
// agentDir at /bench, the event log from logDir at /log. Every pod is
// restartPolicy Never: podman 4.3 restarts init containers under the
// default Always (peers.md), and the containers here never exit on their own.
func podYAML(name, logDir, agentDir string, ctrs []ctr) string {
	var inits, apps strings.Builder
	for _, c := range ctrs {
		w := &apps
		if c.kind != app {
			w = &inits
		}
		args := append(append([]string{"/bench/agent"}, c.flags...), "/log/events", name+"/"+c.name)
		if c.kind == initC {
			args = append([]string{"/bench/agent", "-exit"}, args[1:]...)
		}
		fmt.Fprintf(w, "    - name: %s\n      image: busybox:latest\n      imagePullPolicy: IfNotPresent\n", c.name)
		if c.kind == sidecar {
			w.WriteString("      restartPolicy: Always\n")
		}
		fmt.Fprintf(w, "      command: [%s]\n", strings.Join(args, ", "))
		w.WriteString("      volumeMounts:\n        - {name: bench, mountPath: /bench, readOnly: true}\n        - {name: log, mountPath: /log}\n")
		w.WriteString(c.extra)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 30\n", name)
	fmt.Fprintf(&b, "  volumes:\n    - {name: bench, hostPath: {path: %s, type: Directory}}\n    - {name: log, hostPath: {path: %s, type: Directory}}\n", agentDir, logDir)
	if inits.Len() > 0 {
		b.WriteString("  initContainers:\n" + inits.String())
	}
	b.WriteString("  containers:\n" + apps.String())
	return b.String()
}

// The benchmark pods.
var (
	onePod = []ctr{{name: "app"}}
	// sidecarPod is the pod of peers.md: one init, two sidecars, one app.
	sidecarPod = []ctr{{name: "init-1", kind: initC}, {name: "sidecar-1", kind: sidecar}, {name: "sidecar-2", kind: sidecar}, {name: "app"}}
	// plainFourPod is the nearest podman can run: the sidecars as apps.
	plainFourPod = []ctr{{name: "init-1", kind: initC}, {name: "sidecar-1"}, {name: "sidecar-2"}, {name: "app"}}
	// pairPod is one of the 100: a sidecar and an app (plain for podman).
	pairPod      = []ctr{{name: "sidecar", kind: sidecar}, {name: "app"}}
	plainPairPod = []ctr{{name: "sidecar"}, {name: "app"}}
)

// manyPods is n pods of ctrs in one multi-document file.
func manyPods(n int, prefix, logDir, agentDir string, ctrs []ctr) string {
	docs := make([]string, n)
	for i := range docs {
		docs[i] = podYAML(fmt.Sprintf("%s-%03d", prefix, i), logDir, agentDir, ctrs)
	}
	return strings.Join(docs, "---\n")
}
