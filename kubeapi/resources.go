package kubeapi

import (
	"net/http"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/podrun/podrun/api"
)

// kind is one resource podrun serves to Kubernetes clients: the one table
// every discovery document is generated from.
type kind struct {
	api.Resource
	Singular   string
	Namespaced bool
	Verbs      []string
	ShortNames []string
	Categories []string
	Subs       []subresource
	// synthetic kinds (namespaces, nodes) are made here, not by the backend.
	synthetic bool
}

type subresource struct {
	Name  string
	Kind  schema.GroupVersionKind
	Verbs []string
}

var (
	readVerbs = []string{"get", "list", "watch"}
	rwVerbs   = []string{"create", "delete", "get", "list", "patch", "update", "watch"}

	namespacesResource = api.Resource{Name: "namespaces", Version: "v1", Kind: "Namespace"}
	nodesResource      = api.Resource{Name: "nodes", Version: "v1", Kind: "Node"}
)

var kinds = []*kind{
	{Resource: api.Pods, Singular: "pod", Namespaced: true, Verbs: rwVerbs, ShortNames: []string{"po"}, Categories: []string{"all"},
		Subs: []subresource{
			{Name: "log", Kind: corev1GVK("Pod"), Verbs: []string{"get"}},
			{Name: "exec", Kind: corev1GVK("PodExecOptions"), Verbs: []string{"create", "get"}},
			{Name: "attach", Kind: corev1GVK("PodAttachOptions"), Verbs: []string{"create", "get"}},
			{Name: "portforward", Kind: corev1GVK("PodPortForwardOptions"), Verbs: []string{"create", "get"}},
			{Name: "status", Kind: corev1GVK("Pod"), Verbs: []string{"get"}},
		}},
	{Resource: api.ConfigMaps, Singular: "configmap", Namespaced: true, Verbs: rwVerbs, ShortNames: []string{"cm"}},
	{Resource: api.Secrets, Singular: "secret", Namespaced: true, Verbs: rwVerbs},
	{Resource: api.Events, Singular: "event", Namespaced: true, Verbs: readVerbs, ShortNames: []string{"ev"}},
	{Resource: namespacesResource, Singular: "namespace", Verbs: rwVerbs, ShortNames: []string{"ns"}, synthetic: true},
	{Resource: nodesResource, Singular: "node", Verbs: readVerbs, ShortNames: []string{"no"}, synthetic: true},
	{Resource: api.Deployments, Singular: "deployment", Namespaced: true, Verbs: rwVerbs, ShortNames: []string{"deploy"}, Categories: []string{"all"},
		Subs: []subresource{
			{Name: "scale", Kind: schema.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}, Verbs: []string{"get", "patch", "update"}},
			{Name: "status", Kind: appsGVK("Deployment"), Verbs: []string{"get"}},
		}},
	{Resource: api.ReplicaSets, Singular: "replicaset", Namespaced: true, Verbs: readVerbs, ShortNames: []string{"rs"}, Categories: []string{"all"}},
	{Resource: accessReviews, Singular: "selfsubjectaccessreview", Verbs: []string{"create"}, synthetic: true},
	{Resource: rulesReviews, Singular: "selfsubjectrulesreview", Verbs: []string{"create"}, synthetic: true},
	{Resource: subjectReviews, Singular: "selfsubjectreview", Verbs: []string{"create"}, synthetic: true},
	{Resource: podMetricsResource, Singular: "", Namespaced: true, Verbs: []string{"get", "list"}, synthetic: true},
	{Resource: nodeMetricsResource, Singular: "", Verbs: []string{"get", "list"}, synthetic: true},
	{Resource: api.Jobs, Singular: "job", Namespaced: true, Verbs: rwVerbs, Categories: []string{"all"},
		Subs: []subresource{{Name: "status", Kind: schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, Verbs: []string{"get"}}}},
}

func corev1GVK(k string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Version: "v1", Kind: k}
}
func appsGVK(k string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: k}
}

// kindFor finds the kind of a group, version and plural name.
func kindFor(group, version, name string) *kind {
	for _, k := range kinds {
		if k.Group == group && k.Version == version && k.Name == name {
			return k
		}
	}
	return nil
}

func (k *kind) sub(name string) *subresource {
	for i := range k.Subs {
		if k.Subs[i].Name == name {
			return &k.Subs[i]
		}
	}
	return nil
}

// groupVersions are the API groups in the order of the discovery
// documents: core first.
func groupVersions() []schema.GroupVersion {
	var out []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, k := range kinds {
		gv := schema.GroupVersion{Group: k.Group, Version: k.Version}
		if !seen[gv] {
			seen[gv] = true
			out = append(out, gv)
		}
	}
	return out
}

func resourceList(gv schema.GroupVersion) *metav1.APIResourceList {
	l := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv.String()}
	for _, k := range kinds {
		if k.Group != gv.Group || k.Version != gv.Version {
			continue
		}
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: k.Name, SingularName: k.Singular, Namespaced: k.Namespaced,
			Kind: k.Kind, Verbs: k.Verbs, ShortNames: k.ShortNames, Categories: k.Categories})
		for _, s := range k.Subs {
			r := metav1.APIResource{Name: k.Name + "/" + s.Name, Namespaced: k.Namespaced, Kind: s.Kind.Kind, Verbs: s.Verbs}
			if s.Kind.Group != k.Group || s.Kind.Version != k.Version {
				r.Group, r.Version = s.Kind.Group, s.Kind.Version
			}
			l.APIResources = append(l.APIResources, r)
		}
	}
	return l
}

func groupList() *metav1.APIGroupList {
	l := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}}
	for _, gv := range groupVersions() {
		if gv.Group == "" {
			continue
		}
		v := metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version}
		l.Groups = append(l.Groups, metav1.APIGroup{Name: gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v})
	}
	return l
}

func group(name string) *metav1.APIGroup {
	for _, g := range groupList().Groups {
		if g.Name == name {
			g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
			return &g
		}
	}
	return nil
}

// aggregated is the apidiscovery.k8s.io/v2 document of /api (core) or
// /apis (every other group).
func aggregated(core bool) *apidiscoveryv2.APIGroupDiscoveryList {
	l := &apidiscoveryv2.APIGroupDiscoveryList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
		Items: []apidiscoveryv2.APIGroupDiscovery{}}
	for _, gv := range groupVersions() {
		if (gv.Group == "") != core {
			continue
		}
		v := apidiscoveryv2.APIVersionDiscovery{Version: gv.Version, Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent}
		for _, k := range kinds {
			if k.Group != gv.Group || k.Version != gv.Version {
				continue
			}
			scope := apidiscoveryv2.ScopeCluster
			if k.Namespaced {
				scope = apidiscoveryv2.ScopeNamespace
			}
			r := apidiscoveryv2.APIResourceDiscovery{Resource: k.Name, SingularResource: k.Singular, Scope: scope,
				ResponseKind: &metav1.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind},
				Verbs:        k.Verbs, ShortNames: k.ShortNames, Categories: k.Categories}
			for _, s := range k.Subs {
				r.Subresources = append(r.Subresources, apidiscoveryv2.APISubresourceDiscovery{Subresource: s.Name,
					ResponseKind: &metav1.GroupVersionKind{Group: s.Kind.Group, Version: s.Kind.Version, Kind: s.Kind.Kind}, Verbs: s.Verbs})
			}
			v.Resources = append(v.Resources, r)
		}
		l.Items = append(l.Items, apidiscoveryv2.APIGroupDiscovery{ObjectMeta: metav1.ObjectMeta{Name: gv.Group},
			Versions: []apidiscoveryv2.APIVersionDiscovery{v}})
	}
	return l
}

// aggregatedType is the media type of aggregated discovery.
const aggregatedType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

// serveDiscovery answers /api and /apis: aggregated when the client
// asks for it, else the legacy document.
func (s *server) serveDiscovery(w http.ResponseWriter, r *http.Request, core bool) {
	for _, m := range parseAccept(r.Header.Get("Accept")) {
		if m.typ == "application/json" && m.params["g"] == "apidiscovery.k8s.io" && m.params["v"] == "v2" &&
			m.params["as"] == "APIGroupDiscoveryList" {
			writeJSONType(w, aggregatedType, http.StatusOK, aggregated(core))
			return
		}
	}
	if core {
		writeJSON(w, http.StatusOK, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
		return
	}
	writeJSON(w, http.StatusOK, groupList())
}
