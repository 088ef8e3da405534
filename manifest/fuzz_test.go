package manifest

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the whole pipeline: it must never
// panic, and a failure must be an Errors of *Error.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/*/*", "../examples/*.yaml"} {
		files, _ := filepath.Glob(dir)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"spec\":{\"containers\":[{\"name\":1}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("fuzz.yaml", data)
		if err == nil {
			return
		}
		var errs Errors
		if !errors.As(err, &errs) || len(errs) == 0 {
			t.Fatalf("error %T is not a non-empty Errors: %v", err, err)
		}
		for _, e := range errs {
			var me *Error
			if !errors.As(e, &me) {
				t.Fatalf("element %T is not an *Error: %v", e, e)
			}
		}
	})
}

// FuzzParseJSON: the span parser accepts exactly what encoding/json does.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":null}]}`, `"x\u00e9"`, `-0.5e+3`, `[1,]`, `{"a"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := parseJSON(data)
		if (err == nil) != json.Valid(data) {
			t.Fatalf("%q: parse error %v, json.Valid %v", data, err, json.Valid(data))
		}
		if err == nil && (n.start < 0 || n.end > len(data) || n.start >= n.end) {
			t.Fatalf("bad span %d..%d of %d bytes", n.start, n.end, len(data))
		}
	})
}
