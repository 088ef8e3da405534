package manifest

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Paths are kept as plain segments: a struct field, a map key and a list
// index are all one string each. Both the YAML node tree and the JSON span
// tree can be walked with them, and field.Path strings parse into them.

// splitPath parses a field.Path string ("spec.containers[0].resources.limits[cpu]").
func splitPath(p string) []string {
	var segs []string
	for i := 0; i < len(p); {
		switch p[i] {
		case '.':
			i++
		case '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return append(segs, p[i+1:])
			}
			segs = append(segs, p[i+1:i+j])
			i += j + 1
		default:
			j := strings.IndexAny(p[i:], ".[")
			if j < 0 {
				return append(segs, p[i:])
			}
			segs = append(segs, p[i:i+j])
			i += j
		}
	}
	return segs
}

// locator finds the line of the deepest node along a path that exists in the
// source; 0 when nothing is known.
type locator interface {
	line(segs []string) int
	// scalar returns the source text of an unquoted scalar at segs, which
	// may differ from its JSON form (y becomes true).
	scalar(segs []string) (string, bool)
}

// yamlLines locates paths in a YAML document parsed into nodes; base is the
// line of the document inside its file, minus one.
type yamlLines struct {
	root *yaml.Node
	base int
}

func (y yamlLines) line(segs []string) int {
	_, line := y.walk(segs)
	return line + y.base
}

func (y yamlLines) scalar(segs []string) (string, bool) {
	n, _ := y.walk(segs)
	if n == nil || n.Kind != yaml.ScalarNode || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		return "", false
	}
	return n.Value, true
}

// walk follows segs as far as they exist and returns the node reached (nil
// if the path stopped early) and the line of the deepest key or item found.
func (y yamlLines) walk(segs []string) (*yaml.Node, int) {
	n := y.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, s := range segs {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		next := (*yaml.Node)(nil)
		switch n.Kind {
		case yaml.MappingNode:
			for i := len(n.Content) - 2; i >= 0; i -= 2 {
				if n.Content[i].Value == s {
					line, next = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(s); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return nil, line
		}
		n = next
	}
	return n, line
}

// jsonLines locates paths in a JSON text through its span tree.
type jsonLines struct {
	root  *jnode
	lines lineIndex
}

func (j jsonLines) line(segs []string) int {
	n := j.root
	off := n.at
	for _, s := range segs {
		next := n.child(s)
		if next == nil {
			break
		}
		n, off = next, next.at
	}
	return j.lines.line(off)
}

func (jsonLines) scalar([]string) (string, bool) { return "", false }

// prefixed locates paths relative to an object nested in its document (an
// item of a List).
type prefixed struct {
	loc    locator
	prefix []string
}

func (p prefixed) line(segs []string) int {
	if p.loc == nil {
		return 0
	}
	return p.loc.line(p.full(segs))
}

func (p prefixed) scalar(segs []string) (string, bool) {
	if p.loc == nil {
		return "", false
	}
	return p.loc.scalar(p.full(segs))
}

func (p prefixed) full(segs []string) []string {
	return append(append([]string(nil), p.prefix...), segs...)
}

// jsonName returns the JSON member name of a struct field and whether the
// field is inlined into its parent (embedded without a name, or ",inline").
func jsonName(f reflect.StructField) (name string, inline bool) {
	tag := f.Tag.Get("json")
	if tag == "-" {
		return "", false
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" && (f.Anonymous || strings.Contains(opts, "inline")) {
		return "", true
	}
	if name == "" {
		name = f.Name
	}
	return name, false
}

// field finds the type of the JSON member name in struct type t.
func memberType(t reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		n, inline := jsonName(f)
		if inline {
			if ft, ok := memberType(indirect(f.Type), name); ok {
				return ft, true
			}
			continue
		}
		if n == name && f.IsExported() {
			return f.Type, true
		}
	}
	return nil, false
}

// memberNames lists the JSON member names of struct type t.
func memberNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		n, inline := jsonName(f)
		if inline {
			names = append(names, memberNames(indirect(f.Type))...)
		} else if n != "" && f.IsExported() {
			names = append(names, n)
		}
	}
	return names
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// typeAt walks segs from type t; nil when the path leaves the schema.
func typeAt(t reflect.Type, segs []string) reflect.Type {
	for _, s := range segs {
		t = step(t, s)
		if t == nil {
			return nil
		}
	}
	return t
}

func step(t reflect.Type, seg string) reflect.Type {
	switch t = indirect(t); t.Kind() {
	case reflect.Struct:
		if ft, ok := memberType(t, seg); ok {
			return ft
		}
	case reflect.Map, reflect.Slice, reflect.Array:
		return t.Elem()
	}
	return nil
}

// renderPath prints segs the way field.Path does: ".name" for struct members,
// "[key]" for map keys and list indices.
func renderPath(t reflect.Type, segs []string) string {
	var b strings.Builder
	for _, s := range segs {
		if t != nil && isKeyed(indirect(t)) {
			b.WriteString("[" + s + "]")
		} else {
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s)
		}
		if t != nil {
			t = step(t, s)
		}
	}
	return b.String()
}

func isKeyed(t reflect.Type) bool {
	k := t.Kind()
	return k == reflect.Map || k == reflect.Slice || k == reflect.Array
}

// unknownFieldHint suggests what a user meant by an unknown member at segs:
// a near spelling in the same object, or the same name in a neighbouring
// object (the usual result of a wrong indentation): one level down first,
// then beside each enclosing object.
func unknownFieldHint(root reflect.Type, segs []string, present func([]string) bool) string {
	if len(segs) == 0 {
		return ""
	}
	parentSegs, name := segs[:len(segs)-1], segs[len(segs)-1]
	parent := typeAt(root, parentSegs)
	if parent == nil || indirect(parent).Kind() != reflect.Struct {
		return ""
	}
	if s := closest(name, memberNames(indirect(parent))); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	for k := len(parentSegs); k >= 0; k-- {
		if home := homeOf(root, parentSegs[:k], name, present); home != "" {
			return fmt.Sprintf("; %q is a field of %s: check the indentation", name, home)
		}
	}
	return ""
}

// homeOf finds a member of the object at at (or of the lists of objects it
// holds) that has a field name. It prefers one the document uses: "image"
// under a present containers rather than under an absent initContainers.
func homeOf(root reflect.Type, at []string, name string, present func([]string) bool) string {
	t := typeAt(root, at)
	if t == nil || indirect(t).Kind() != reflect.Struct {
		return ""
	}
	t = indirect(t)
	var homes, used []string
	for _, m := range memberNames(t) {
		mt, _ := memberType(t, m)
		seg, et := m, indirect(mt)
		if et.Kind() == reflect.Slice {
			et, seg = indirect(et.Elem()), m+"[*]"
		}
		if et.Kind() != reflect.Struct {
			continue
		}
		if _, ok := memberType(et, name); ok {
			home := strings.TrimPrefix(renderPath(root, at)+"."+seg, ".")
			homes = append(homes, home)
			if present(append(append([]string(nil), at...), m)) {
				used = append(used, home)
			}
		}
	}
	if len(used) > 0 {
		return used[0]
	}
	if len(homes) > 0 {
		return homes[0]
	}
	return ""
}

// closest returns the candidate nearest to name: equal ignoring case, or
// within a small edit distance.
func closest(name string, candidates []string) string {
	best, bestDist := "", 1<<30
	limit := 2
	if len(name) < 5 {
		limit = 1
	}
	sort.Strings(candidates)
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return c
		}
		if d := editDistance(strings.ToLower(name), strings.ToLower(c)); d <= limit && d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
