package api

import (
	"encoding/json"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource is a REST resource name: its group, version and kind.
type Resource struct {
	Name    string // plural, as in paths: "pods"
	Group   string // "" for core
	Version string
	Kind    string
}

// The resources podrun serves.
var (
	Pods        = Resource{Name: "pods", Version: "v1", Kind: "Pod"}
	ConfigMaps  = Resource{Name: "configmaps", Version: "v1", Kind: "ConfigMap"}
	Secrets     = Resource{Name: "secrets", Version: "v1", Kind: "Secret"}
	Events      = Resource{Name: "events", Version: "v1", Kind: "Event"}
	Deployments = Resource{Name: "deployments", Group: appsv1.GroupName, Version: "v1", Kind: "Deployment"}
	Jobs        = Resource{Name: "jobs", Group: batchv1.GroupName, Version: "v1", Kind: "Job"}
	ReplicaSets = Resource{Name: "replicasets", Group: appsv1.GroupName, Version: "v1", Kind: "ReplicaSet"}

	Resources = []Resource{Pods, ConfigMaps, Secrets, Events, Deployments, Jobs, ReplicaSets}
)

// APIVersion is "v1" or "<group>/v1".
func (r Resource) APIVersion() string {
	return schema.GroupVersion{Group: r.Group, Version: r.Version}.String()
}

// GroupResource names the resource in errors: pods, deployments.apps.
func (r Resource) GroupResource() schema.GroupResource {
	return schema.GroupResource{Group: r.Group, Resource: r.Name}
}

// Path is the collection's path in a namespace ("" for every namespace).
func (r Resource) Path(namespace string) string {
	p := "/api/" + r.Version
	if r.Group != "" {
		p = "/apis/" + r.Group + "/" + r.Version
	}
	if namespace != "" {
		p += "/namespaces/" + namespace
	}
	return p + "/" + r.Name
}

// ResourceFor finds a resource by its plural name.
func ResourceFor(name string) (Resource, bool) {
	for _, r := range Resources {
		if r.Name == name {
			return r, true
		}
	}
	return Resource{}, false
}

// Applied is what an apply did to one object of the manifest.
type Applied struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Action is created, configured or unchanged (kubectl's words).
	Action string `json:"action"`
}

// ApplyResult is the answer to a POST of a manifest to the apply path.
type ApplyResult struct {
	Items []Applied `json:"items"`
}

// ApplyPath takes a whole manifest (every kind podrun knows, YAML or JSON).
const ApplyPath = "/apis/podrun.dev/v1/apply"

// WatchEvent is one line of a watch stream.
type WatchEvent struct {
	Type   string          `json:"type"` // ADDED, MODIFIED, DELETED or ERROR (a metav1.Status)
	Object json.RawMessage `json:"object"`
}

// PodMetrics is metrics.k8s.io/v1beta1 PodMetrics: the usage of each
// running container, CPU averaged over Window.
type PodMetrics struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Timestamp         metav1.Time        `json:"timestamp"`
	Window            metav1.Duration    `json:"window"`
	Containers        []ContainerMetrics `json:"containers"`
}

// ContainerMetrics is one container's cpu (cores) and memory (working set).
type ContainerMetrics struct {
	Name  string              `json:"name"`
	Usage corev1.ResourceList `json:"usage"`
}

// MetricsPath is where a pod's PodMetrics are.
func MetricsPath(namespace, name string) string {
	return "/apis/metrics.k8s.io/v1beta1/namespaces/" + namespace + "/pods/" + name
}

// Upgrade protocols of the streaming subresources.
const (
	ExecProtocol        = "podrun-exec/v1"
	PortForwardProtocol = "podrun-portforward/v1"
)
