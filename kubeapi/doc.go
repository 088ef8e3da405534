// Package kubeapi is the Kubernetes-compatible face of the daemon: the same
// objects as the unix-socket API (package api), served over HTTPS on
// loopback so that the real kubectl, client-go tools and Helm can use them.
//
// It adds what those clients need and the podrun API lacks: discovery
// (legacy and aggregated) generated from one table of the kinds podrun
// serves, /version and the health endpoints, JSON, YAML and protobuf
// bodies through apimachinery's serializers (codec.go), server-side
// Tables with the columns of kubernetes' printers, a watch history per
// kind that lists and watches are served from (history.go: resume from a
// resourceVersion, 410 Expired, bookmarks, WatchList), PATCH (JSON merge,
// strategic merge, JSON patch) and server-side apply with managedFields
// through apimachinery's field manager (apply.go), OpenAPI v3 with the
// schemas kube-openapi generates from k8s.io/api (openapi.go), DELETE
// with DeleteOptions, Namespaces that can be created and are terminated
// when deleted (namespaces.go), the synthesized Node, TLS credentials it
// generates once, client certificate or bearer token authentication, and
// kubectl's streaming protocols for exec, attach and port-forward (WebSocket
// and SPDY, stream.go) over the backend's own streams. Everything else
// (logs, the podrun apply path) is passed to api.Handler.
//
// It sits on api.Backend only: it never touches the daemon's state.
package kubeapi
