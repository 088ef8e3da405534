// Package manifest decodes Kubernetes YAML and JSON into k8s.io/api types with
// strict field checking, applies the API server's defaults, validates what one
// node can check, and expands Deployments and Jobs into the pods they would
// create. It is pure: no OS calls beyond reading its input files.
//
// The pipeline of Load:
//
//	split    files into documents, as kubectl does ("---" lines; JSON streams)
//	decode   v1 Pod, apps/v1 Deployment, batch/v1 Job, v1 ConfigMap, v1 Secret
//	         and v1 List; unknown and repeated fields, values of the wrong type
//	         and unparsable quantities are errors with their field path and line
//	create   name from generateName, uid, creationTimestamp (what the API
//	         server sets on create), then its v1.34 defaults
//	validate the API server's v1.34 rules, plus podrun's own: every
//	         ConfigMap and Secret a pod needs is in the input
//	expand   Deployments and Jobs into pods, as their controllers would
//
// Every problem is reported, as "<file>:<line>: <Kind>/<name>: <field>:
// <reason>". Unsupported is separate: it lists what the API server accepts
// but podrun cannot run.
//
// May import: the standard library, k8s.io/api, k8s.io/apimachinery,
// sigs.k8s.io/yaml and sigs.k8s.io/json, go.yaml.in/yaml/v3.
package manifest
