package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	sigsyaml "sigs.k8s.io/yaml"
)

// WriteList writes pods as a v1 List the way "kubectl get -o yaml|json"
// prints one: apiVersion and kind on every item, keys in alphabetical order
// (kubectl prints lists as unstructured objects), an empty resourceVersion
// on the list, JSON indented by four spaces. format is "yaml" or "json".
func WriteList(w io.Writer, pods []*corev1.Pod, format string) error {
	items := make([]any, len(pods))
	for i, p := range pods {
		p = p.DeepCopy()
		p.APIVersion, p.Kind = "v1", "Pod"
		// Round-trip through a map so that the JSON keys come out sorted,
		// as kubectl's unstructured objects do.
		b, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode pod %s: %w", p.Name, err)
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("encode pod %s: %w", p.Name, err)
		}
		items[i] = m
	}
	list := map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"items":      items,
		"metadata":   map[string]any{"resourceVersion": ""},
	}
	var out []byte
	switch format {
	case "json":
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "    ")
		if err := enc.Encode(list); err != nil {
			return fmt.Errorf("encode pod list: %w", err)
		}
		out = buf.Bytes()
	case "yaml":
		var err error
		if out, err = sigsyaml.Marshal(list); err != nil {
			return fmt.Errorf("encode pod list: %w", err)
		}
	default:
		return fmt.Errorf("output format %q: want yaml or json", format)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write pod list: %w", err)
	}
	return nil
}
