package expansion

import "testing"

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"$(A)":          "1",
		"x$(B)y":        "xtwoy",
		"$(C)":          "$(C)",
		"$$(A)":         "$(A)",
		"$$":            "$",
		"$(A":           "$(A",
		"a$b":           "a$b",
		"$(A)$(B)$(A)$": "1two1$",
	} {
		if got := Expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExpandEdges(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "$(A)", "": "empty"}
	for in, want := range map[string]string{
		"":                "",
		"plain":           "plain",
		"$(A)":            "x",
		"$(A)$(A)":        "xx",
		"pre-$(A)-post":   "pre-x-post",
		"$(B)":            "$(A)", // values are not expanded again
		"$$":              "$",
		"$$(A)":           "$(A)",
		"$(A":             "$(A",
		"$(A$(B))":        "$(A$(B))", // the name runs to the first ')'
		"$()":             "empty",
		"$x":              "$x",
		"$":               "$",
		"end$":            "end$",
		"$(MISSING) $(A)": "$(MISSING) x",
	} {
		if got := Expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}
