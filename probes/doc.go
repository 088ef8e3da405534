// Package probes runs exec, httpGet, tcpSocket and grpc probes and lifecycle
// hook handlers, and the per-(container, probe) workers that turn single
// results into published ones (thresholds, initial delay, holds). Workers only
// publish; the pod supervisor decides what a result does. The exec function
// and the dialer into the pod network are injected, so this package imports
// neither the runtime nor netns.
//
// May import: the standard library, grpc health, and k8s.io/api types.
package probes
