package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// ObjectRef names one object of a manifest.
type ObjectRef struct {
	Kind      string
	Namespace string // as written; "" means the default namespace
	Name      string
}

// Refs reads the kind, namespace and name of every object of a manifest
// (YAML documents or JSON objects) without validating anything else:
// enough to delete what a file created, or to know which objects it defines.
// Items of a v1 List count as objects.
func Refs(data []byte) ([]ObjectRef, error) {
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []ObjectRef
	for {
		var doc struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Items []struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name      string `json:"name"`
					Namespace string `json:"namespace"`
				} `json:"metadata"`
			} `json:"items"`
		}
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading object %d: %w", len(out)+1, err)
		}
		if doc.Kind == "" && doc.Metadata.Name == "" {
			continue // an empty document
		}
		if doc.Kind == "List" {
			for _, it := range doc.Items {
				out = append(out, ObjectRef{Kind: it.Kind, Namespace: it.Metadata.Namespace, Name: it.Metadata.Name})
			}
			continue
		}
		out = append(out, ObjectRef{Kind: doc.Kind, Namespace: doc.Metadata.Namespace, Name: doc.Metadata.Name})
	}
}
