// Command openapi writes the OpenAPI v3 schemas of the kinds podrun's
// Kubernetes API serves (kubeapi/openapi-schemas.json), built by
// kube-openapi's builder3 from the definitions openapi-gen generates from
// k8s.io/api's sources, as the API server's documents are. Run it with
// hack/gen-openapi.sh, which generates those definitions first.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"podrun.dev/hack/openapi/generated"
)

type modelNamer interface{ OpenAPIModelName() string }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: openapi OUTPUT.json")
		os.Exit(2)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, autoscalingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	// The group, version and kind of each model that is a kind, as the API
	// server's definition namer tags them.
	gvks := map[string][]schema.GroupVersionKind{}
	for gvk, t := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal {
			continue
		}
		if m, ok := reflect.New(t).Interface().(modelNamer); ok {
			gvks[m.OpenAPIModelName()] = append(gvks[m.OpenAPIModelName()], gvk)
		}
	}
	var roots []string
	for name := range gvks {
		roots = append(roots, name)
	}
	sort.Strings(roots)
	cfg := &common.OpenAPIV3Config{
		GetDefinitions: generated.GetOpenAPIDefinitions,
		GetDefinitionName: func(name string) (string, spec.Extensions) {
			list := gvks[name]
			if len(list) == 0 {
				return name, nil
			}
			sort.Slice(list, func(i, j int) bool { return list[i].String() < list[j].String() })
			var tags []any
			for _, gvk := range list {
				tags = append(tags, map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind})
			}
			return name, spec.Extensions{"x-kubernetes-group-version-kind": tags}
		},
	}
	schemas, err := builder3.BuildOpenAPIDefinitionsForResources(cfg, roots...)
	if err != nil {
		panic(err)
	}
	for _, s := range schemas {
		delete(s.Extensions, common.ExtensionV2Schema)
	}
	b, err := json.MarshalIndent(schemas, "", " ")
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(os.Args[1], append(b, '\n'), 0o644); err != nil {
		panic(err)
	}
}
