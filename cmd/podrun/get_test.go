package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestManagedFieldsDropped(t *testing.T) {
	raw := json.RawMessage(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","managedFields":[{"manager":"podrun","operation":"Apply"}]},"spec":{"priority":10000000000000000001}}`)
	for _, format := range []string{"yaml", "json"} {
		for _, managed := range []bool{false, true} {
			var one, list bytes.Buffer
			if err := writeObject(&one, raw, format, managed); err != nil {
				t.Fatal(err)
			}
			if err := writeList(&list, []json.RawMessage{raw, raw}, format, managed); err != nil {
				t.Fatal(err)
			}
			for what, out := range map[string]string{"object": one.String(), "list": list.String()} {
				if got := strings.Count(out, "managedFields"); managed && got == 0 || !managed && got != 0 {
					t.Errorf("-o %s, show-managed-fields=%v, %s: managedFields %d times in\n%s", format, managed, what, got, out)
				}
				// Numbers are printed as written, not through float64.
				if !strings.Contains(out, "10000000000000000001") {
					t.Errorf("-o %s %s: number changed:\n%s", format, what, out)
				}
			}
		}
	}
}
