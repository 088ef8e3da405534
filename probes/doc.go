// Package probes runs exec, httpGet, tcpSocket and grpc probes and lifecycle
// hook handlers, and the per-(container, probe) workers that turn single
// results into published ones (thresholds, initial delay, holds). Workers only
// publish; the pod supervisor decides what a result does. The exec function
// and the dialer into the pod network are injected, so this package imports
// neither the runtime nor netns.
//
// The rules are the kubelet's (v1.34: pkg/kubelet/prober, pkg/probe/*,
// pkg/kubelet/lifecycle/handlers.go), down to the text of the events:
// Attempt.Message and HookError.Message give it. Where podrun differs:
//
//   - A worker belongs to one container instance and its ticks are aligned
//     to that instance's start: the first probe runs at startedAt +
//     initialDelaySeconds, then every periodSeconds. The kubelet's worker
//     ticks from when it learnt of the pod. The supervisor starts liveness
//     and readiness workers once the startup probe has succeeded.
//   - A grpc probe dials once, through the injected dialer, and fails at
//     once when refused; the kubelet lets grpc redial until the timeout.
//
// May import: the standard library, grpc (health), and the k8s.io/api and
// apimachinery types.
package probes
