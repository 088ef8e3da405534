package kubeapi

import (
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/podrun/podrun/api"
)

// podrun serves a skeleton of OpenAPI v3: per group version, the paths of
// its objects with the operations of each verb and their
// x-kubernetes-group-version-kind, and the parameters the API accepts, but
// no schemas. That is what kubectl needs to see that the server validates
// fields itself (fieldValidation on PATCH), so that apply and create do
// not need to download a schema to validate against; the decoder of
// podrun's backend is strict. kubectl explain, which needs the schemas,
// finds none.

// openAPIIndex is /openapi/v3: where each group version's document is.
func openAPIIndex() map[string]any {
	paths := map[string]any{}
	for _, gv := range groupVersions() {
		p := gvPath(gv)
		paths[strings.TrimPrefix(p, "/")] = map[string]string{"serverRelativeURL": "/openapi/v3" + p}
	}
	return map[string]any{"paths": paths}
}

func gvPath(gv schema.GroupVersion) string {
	if gv.Group == "" {
		return "/api/" + gv.Version
	}
	return "/apis/" + gv.Group + "/" + gv.Version
}

func (s *server) serveOpenAPI(w http.ResponseWriter, p string) {
	if p == "/openapi/v3" {
		writeJSON(w, http.StatusOK, openAPIIndex())
		return
	}
	for _, gv := range groupVersions() {
		if p == "/openapi/v3"+gvPath(gv) {
			writeJSON(w, http.StatusOK, openAPIDocument(gv))
			return
		}
	}
	api.WriteError(w, notFoundPath())
}

func queryParam(name string) map[string]any {
	return map[string]any{"name": name, "in": "query", "schema": map[string]string{"type": "string"}, "uniqueItems": true}
}

func pathParam(name string) map[string]any {
	return map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]string{"type": "string"}, "uniqueItems": true}
}

func openAPIDocument(gv schema.GroupVersion) map[string]any {
	paths := map[string]any{}
	for _, k := range kinds {
		if k.Group != gv.Group || k.Version != gv.Version {
			continue
		}
		gvk := map[string]string{"group": k.Group, "version": k.Version, "kind": k.Kind}
		op := func(action string, params ...string) map[string]any {
			o := map[string]any{
				"x-kubernetes-action":             action,
				"x-kubernetes-group-version-kind": gvk,
				"responses":                       map[string]any{"200": map[string]string{"description": "OK"}},
			}
			var ps []any
			for _, p := range params {
				ps = append(ps, queryParam(p))
			}
			if len(ps) > 0 {
				o["parameters"] = ps
			}
			return o
		}
		collection, object := gvPath(gv)+"/"+k.Name, gvPath(gv)+"/"+k.Name+"/{name}"
		params := []any{pathParam("name")}
		if k.Namespaced {
			collection = gvPath(gv) + "/namespaces/{namespace}/" + k.Name
			object = collection + "/{name}"
			params = append(params, pathParam("namespace"))
		}
		item := map[string]any{"parameters": append(params, queryParam("pretty"))}
		coll := map[string]any{"parameters": append(params[1:], queryParam("pretty"))}
		for _, v := range k.Verbs {
			switch v {
			case "get":
				item["get"] = op("get")
			case "list":
				coll["get"] = op("list", "fieldSelector", "labelSelector", "resourceVersion", "timeoutSeconds", "watch", "allowWatchBookmarks", "sendInitialEvents")
			case "create":
				coll["post"] = op("post", "dryRun", "fieldManager", "fieldValidation")
			case "update":
				item["put"] = op("put", "dryRun", "fieldManager", "fieldValidation")
			case "patch":
				item["patch"] = op("patch", "dryRun", "fieldManager", "fieldValidation", "force")
			case "delete":
				item["delete"] = op("delete", "dryRun", "gracePeriodSeconds", "propagationPolicy")
			}
		}
		paths[object], paths[collection] = item, coll
	}
	return map[string]any{
		"openapi": "3.0.0",
		"info":    map[string]string{"title": "Kubernetes (podrun)", "version": KubernetesVersion},
		"paths":   paths,
	}
}
