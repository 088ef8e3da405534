// Package api serves podrun's HTTP API over a unix socket, shaped like the
// Kubernetes core/v1 REST API, with errors as metav1.Status.
//
// # Paths
//
//	/api/v1/namespaces/{ns}/{pods|configmaps|secrets|events}[/{name}]
//	/api/v1/{pods|configmaps|secrets|events}                 (every namespace)
//	/api/v1/namespaces/{ns}/pods/{name}/status
//	/api/v1/namespaces/{ns}/pods/{name}/log                  (follow, previous, timestamps, tailLines, sinceSeconds, sinceTime, container)
//	/api/v1/namespaces/{ns}/pods/{name}/exec                 (upgrade, see below)
//	/api/v1/namespaces/{ns}/pods/{name}/portforward?ports=N  (upgrade, see below)
//	/apis/apps/v1/namespaces/{ns}/deployments[/{name}], /apis/apps/v1/deployments
//	/apis/batch/v1/namespaces/{ns}/jobs[/{name}], /apis/batch/v1/jobs
//	/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name} (PodMetrics, sampled over Window)
//	/apis/podrun.dev/v1/apply?file=NAME                      (POST a whole manifest; see Applied)
//	/version
//
// GET lists and gets, POST creates (the body is one object, YAML or JSON),
// PUT replaces, DELETE deletes (gracePeriodSeconds in the query or in a
// DeleteOptions body). Lists take labelSelector and fieldSelector
// (metadata.name, metadata.namespace, and involvedObject.name for events);
// `?watch=1` turns a list into a stream of newline-delimited WatchEvents that
// starts with an ADDED event per existing object. Errors are metav1.Status
// with the API server's reasons and codes (NotFound 404, AlreadyExists 409,
// Conflict 409, Invalid 422, BadRequest 400).
//
// # Streams
//
// exec and portforward are HTTP/1.1 upgrades: the client sends
// "Connection: Upgrade" with "Upgrade: podrun-exec/v1" or
// "podrun-portforward/v1"; after "101 Switching Protocols" the connection
// carries, for portforward, the raw bytes of one TCP connection to the
// port on the pod's 127.0.0.1 (a half-close is passed on); for exec, frames
// of [1-byte stream][4-byte big-endian length][payload]: StreamStdin from
// the client (an empty frame closes stdin), StreamResize from the client
// (a JSON TerminalSize), StreamStdout and StreamStderr from the server, and
// last StreamStatus (a JSON ExecStatus) before the server closes. This is
// the channel-prefixed shape of kubectl's v4/v5 streaming protocols on a
// plain upgrade instead of WebSocket or SPDY; package kubeapi translates
// kubectl's protocols to it (Backend.Attach uses the same framing).
//
// May import: the standard library, k8s.io/api, k8s.io/apimachinery.
package api
