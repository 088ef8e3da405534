// Package manifest decodes Kubernetes YAML and JSON into k8s.io/api types with
// strict field checking, applies the API server's defaults, validates what one
// node can check, and expands Deployments and Jobs into the pods they would
// create. It is pure: no OS calls beyond reading its input files.
//
// May import: the standard library, k8s.io/api, k8s.io/apimachinery,
// sigs.k8s.io/yaml and sigs.k8s.io/json, go.yaml.in/yaml/v3.
package manifest
