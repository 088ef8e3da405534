package manifest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// input is one document converted to JSON, with the way back to its lines.
type input struct {
	src  Source
	json []byte
	loc  locator
	yaml *yaml.Node // nil for JSON input
}

// object is one decoded object of a supported kind.
type object struct {
	src  Source
	loc  locator
	kind string
	name string
	obj  any // *corev1.Pod, *appsv1.Deployment, *batchv1.Job, *corev1.ConfigMap or *corev1.Secret
}

// fieldProblem is a decoding problem at a field path that has no fitting
// field.ErrorType: an unknown or repeated field.
type fieldProblem struct {
	Field  string
	Detail string
}

func (p *fieldProblem) Error() string { return p.Field + ": " + p.Detail }

// wrap turns a *field.Error or *fieldProblem into an Error that names the
// object and the line of the field (or of its nearest ancestor present in
// the source).
func (o *object) wrap(err error) *Error {
	src := o.src
	var path string
	switch e := err.(type) {
	case *field.Error:
		path = e.Field
	case *fieldProblem:
		path = e.Field
	}
	if o.loc != nil {
		if l := o.loc.line(splitPath(path)); l > 0 {
			src.Line = l
		}
	}
	return &Error{Source: src, Kind: o.kind, Name: o.name, Err: err}
}

func (o *object) wrapAll(errs []error) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = o.wrap(e)
	}
	return out
}

func fieldErrs(list field.ErrorList) []error {
	out := make([]error, len(list))
	for i, fe := range list {
		out[i] = fe
	}
	return out
}

type kindInfo struct {
	apiVersion string
	typ        reflect.Type
}

// kinds are the objects podrun accepts. A v1 List is accepted too and
// stands for its items.
var kinds = map[string]kindInfo{
	"Pod":        {"v1", reflect.TypeFor[corev1.Pod]()},
	"ConfigMap":  {"v1", reflect.TypeFor[corev1.ConfigMap]()},
	"Secret":     {"v1", reflect.TypeFor[corev1.Secret]()},
	"Deployment": {"apps/v1", reflect.TypeFor[appsv1.Deployment]()},
	"Job":        {"batch/v1", reflect.TypeFor[batchv1.Job]()},
	"List":       {"v1", reflect.TypeFor[list]()},
}

// list is a v1 List as far as podrun reads it.
type list struct {
	APIVersion string            `json:"apiVersion,omitempty"`
	Kind       string            `json:"kind,omitempty"`
	Metadata   metav1.ListMeta   `json:"metadata,omitempty"`
	Items      []json.RawMessage `json:"items"`
}

// readInputs reads every path ("-" is stdin; a directory stands for its
// .yaml, .yml and .json files) and splits the contents into documents.
func readInputs(paths []string, stdin io.Reader) ([]input, []error) {
	var ins []input
	var errs []error
	for _, p := range paths {
		files := []string{p}
		if p != "-" {
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				files, err = manifestFiles(p)
				if err != nil {
					errs = append(errs, err)
					continue
				}
			}
		}
		for _, f := range files {
			name, data, err := readFile(f, stdin)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			docs, derrs := splitDocs(name, data)
			ins = append(ins, docs...)
			errs = append(errs, derrs...)
		}
	}
	return ins, errs
}

// fileError names the file first, like every other error of Load.
func fileError(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &Error{Source: Source{File: path}, Err: err}
}

func manifestFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fileError(dir, err)
	}
	var files []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, &Error{Source: Source{File: dir}, Err: errors.New("no .yaml, .yml or .json files in directory")}
	}
	return files, nil
}

func readFile(path string, stdin io.Reader) (string, []byte, error) {
	if path == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return "", nil, fileError("<stdin>", err)
		}
		return "<stdin>", data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fileError(path, err)
	}
	return path, data, nil
}

// splitDocs cuts a file into documents the way kubectl does: a stream of
// JSON objects when the first non-space byte is '{', else YAML documents
// separated by lines starting with "---".
func splitDocs(file string, data []byte) ([]input, []error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		return splitJSON(file, data)
	}
	return splitYAML(file, data)
}

func splitJSON(file string, data []byte) ([]input, []error) {
	lines := newLineIndex(data)
	nodes, err := parseJSONStream(data)
	var ins []input
	for i, n := range nodes {
		src := Source{File: file, Doc: i + 1, Line: lines.line(n.start)}
		ins = append(ins, input{src: src, json: data[n.start:n.end], loc: jsonLines{root: n, lines: lines}})
	}
	if err != nil {
		var se *jsonSyntaxError
		off := 0
		if errors.As(err, &se) {
			off = se.off
		}
		src := Source{File: file, Doc: len(nodes) + 1, Line: lines.line(off)}
		return ins, []error{&Error{Source: src, Err: fmt.Errorf("invalid JSON: %w", err)}}
	}
	return ins, nil
}

func splitYAML(file string, data []byte) ([]input, []error) {
	var ins []input
	var errs []error
	var chunk bytes.Buffer
	chunkLine, line, doc := 1, 0, 0
	flush := func() {
		defer chunk.Reset()
		if !hasContent(chunk.Bytes()) {
			return
		}
		doc++
		in, err := yamlDoc(Source{File: file, Doc: doc, Line: chunkLine}, chunk.Bytes())
		if err != nil {
			errs = append(errs, err)
		} else if in != nil {
			ins = append(ins, *in)
		}
	}
	r := bufio.NewReader(bytes.NewReader(data))
	for {
		l, err := r.ReadBytes('\n')
		if len(l) > 0 {
			line++
			if bytes.HasPrefix(l, []byte("---")) {
				rest := strings.TrimSpace(string(l[3:]))
				if rest != "" && rest[0] != '#' {
					errs = append(errs, &Error{
						Source: Source{File: file, Doc: doc + 1, Line: line},
						Err:    fmt.Errorf("invalid YAML document separator: %q (only a comment may follow ---)", strings.TrimRight(string(l), "\r\n")),
					})
				}
				flush()
				chunkLine = line + 1
			} else if chunk.Len() == 0 && !hasContent(l) {
				// Leading blank and comment lines are left out so the
				// document's first line is its first line of content.
				chunkLine = line + 1
			} else {
				chunk.Write(l)
			}
		}
		if err != nil {
			break
		}
	}
	flush()
	return ins, errs
}

// hasContent reports whether a YAML text holds anything but blank lines and comments.
func hasContent(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return true
		}
	}
	return false
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlDoc converts one YAML document to JSON exactly as kubectl does
// (sigs.k8s.io/yaml, YAML 1.1 scalars) and keeps its node tree for lines.
// A document that is only "null" yields nothing.
func yamlDoc(src Source, text []byte) (*input, error) {
	j, err := sigsyaml.YAMLToJSON(text)
	if err != nil {
		return nil, yamlError(src, text, err)
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil, nil
	}
	in := &input{src: src, json: j}
	var n yaml.Node
	if yaml.Unmarshal(text, &n) == nil && len(n.Content) > 0 {
		in.yaml = &n
		in.loc = yamlLines{root: &n, base: src.Line - 1}
		in.src.Line = src.Line - 1 + n.Content[0].Line
	}
	return in, nil
}

// yamlError renumbers the parser's "line N" (relative to the document) to
// lines of the file.
func yamlError(src Source, text []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	first := 0
	msg = yamlLineRE.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(m[len("line "):])
		if first == 0 {
			first = n
		}
		return "line " + strconv.Itoa(n+src.Line-1)
	})
	if first > 0 {
		lines := bytes.Split(text, []byte("\n"))
		if first <= len(lines) && bytes.Contains(leadingSpace(lines[first-1]), []byte("\t")) {
			msg += " (YAML does not allow tabs for indentation)"
		}
		src.Line += first - 1
	}
	return &Error{Source: src, Err: errors.New("invalid YAML: " + msg)}
}

func leadingSpace(b []byte) []byte {
	return b[:len(b)-len(bytes.TrimLeft(b, " \t"))]
}

type dupKey struct {
	segs  []string
	first int // line of the first occurrence, relative to the document
}

// duplicateKeys finds mapping keys that repeat in a YAML document: the JSON
// conversion keeps only the last one, so they are reported from the nodes.
func duplicateKeys(n *yaml.Node, segs []string, out *[]dupKey) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			duplicateKeys(c, segs, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			duplicateKeys(c, append(segs, strconv.Itoa(i)), out)
		}
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := append(append([]string(nil), segs...), k.Value)
			if first, ok := seen[k.Value]; ok && k.Value != "<<" {
				*out = append(*out, dupKey{segs: p, first: first})
			} else {
				seen[k.Value] = k.Line
			}
			duplicateKeys(n.Content[i+1], p, out)
		}
	}
}

// decodeInput decodes one document into objects of the supported kinds.
func decodeInput(in input) ([]*object, []error) {
	root, err := parseJSON(in.json)
	if err != nil || !root.obj {
		return nil, []error{&Error{Source: in.src, Err: errors.New("not a Kubernetes object: a document must be a mapping with apiVersion, kind and metadata")}}
	}
	o := &object{src: in.src, loc: in.loc, kind: jsonString(in.json, root.child("kind"))}
	o.name = objectName(in.json, root)
	var dups []dupKey
	if in.yaml != nil {
		duplicateKeys(in.yaml, nil, &dups)
	}
	if len(dups) > 0 {
		var typ reflect.Type
		if k, ok := kinds[o.kind]; ok {
			typ = k.typ
		}
		out := make([]error, len(dups))
		for i, d := range dups {
			detail := fmt.Sprintf("duplicate key (first set on line %d)", d.first+in.loc.(yamlLines).base)
			if len(d.segs) == 1 && (d.segs[0] == "apiVersion" || d.segs[0] == "kind") {
				detail += `; is a "---" line missing between two objects?`
			}
			out[i] = &fieldProblem{Field: renderPath(typ, d.segs), Detail: detail}
		}
		if o.kind == "" {
			return nil, untyped(o, out)
		}
		return nil, o.wrapAll(out)
	}
	return decodeObject(o, in.json, root)
}

func decodeObject(o *object, data []byte, root *jnode) ([]*object, []error) {
	apiVersion := jsonString(data, root.child("apiVersion"))
	var errs field.ErrorList
	if o.kind == "" {
		errs = append(errs, field.Required(field.NewPath("kind"), `every object needs apiVersion and kind, e.g. "apiVersion: v1" and "kind: Pod"`))
	}
	if apiVersion == "" {
		errs = append(errs, field.Required(field.NewPath("apiVersion"), `every object needs apiVersion and kind, e.g. "apiVersion: v1" and "kind: Pod"`))
	}
	if len(errs) > 0 {
		// Keys are case-sensitive: "apiversion" is not "apiVersion".
		for _, fe := range errs {
			for _, key := range root.keys {
				if key != fe.Field && strings.EqualFold(key, fe.Field) {
					fe.Detail = fmt.Sprintf("found %q; keys are case-sensitive", key)
				}
			}
		}
		return nil, untyped(o, fieldErrs(errs))
	}
	k, ok := kinds[o.kind]
	if !ok {
		fe := field.NotSupported(field.NewPath("kind"), o.kind, sets.List(sets.KeySet(kinds)))
		if s := closest(o.kind, sets.List(sets.KeySet(kinds))); s != "" {
			fe.Detail += fmt.Sprintf("; did you mean %q?", s)
		}
		return nil, untyped(o, []error{fe})
	}
	if apiVersion != k.apiVersion {
		return nil, o.wrapAll([]error{field.NotSupported(field.NewPath("apiVersion"), apiVersion, []string{k.apiVersion})})
	}
	v, probs := decodeStrict(data, k.typ, o.loc)
	if len(probs) > 0 {
		// The decoder finds bad values out of document order; show them in it.
		out := o.wrapAll(probs)
		sort.SliceStable(out, func(i, j int) bool { return out[i].(*Error).Source.Line < out[j].(*Error).Source.Line })
		return nil, out
	}
	if l, ok := v.(*list); ok {
		return decodeList(o, l)
	}
	o.obj = v
	return []*object{o}, nil
}

// untyped reports errors for an object whose kind is unknown or missing:
// the message cannot say Kind/name, so it says where.
func untyped(o *object, errs []error) []error {
	out := make([]error, len(errs))
	for i, fe := range errs {
		e := o.wrap(fe)
		e.Kind = ""
		out[i] = e
	}
	return out
}

func decodeList(o *object, l *list) ([]*object, []error) {
	var objs []*object
	var errs []error
	for i, raw := range l.Items {
		sub := &object{src: o.src, loc: prefixed{loc: o.loc, prefix: []string{"items", strconv.Itoa(i)}}}
		if sub.loc.line(nil) > 0 {
			sub.src.Line = sub.loc.line(nil)
		}
		iroot, err := parseJSON(raw)
		if err != nil || !iroot.obj {
			errs = append(errs, o.wrap(field.Invalid(field.NewPath("items").Index(i), field.OmitValueType{}, "must be an object with apiVersion and kind")))
			continue
		}
		sub.kind = jsonString(raw, iroot.child("kind"))
		sub.name = objectName(raw, iroot)
		if sub.kind == "List" {
			errs = append(errs, o.wrap(field.Invalid(field.NewPath("items").Index(i).Child("kind"), "List", "a List may not contain a List")))
			continue
		}
		got, es := decodeObject(sub, raw, iroot)
		objs = append(objs, got...)
		errs = append(errs, es...)
	}
	return objs, errs
}

func jsonString(data []byte, n *jnode) string {
	if n == nil || n.obj || n.arr {
		return ""
	}
	var s string
	if json.Unmarshal(data[n.start:n.end], &s) != nil {
		return ""
	}
	return s
}

// objectName reads metadata.name (or generateName) without trusting the rest
// of the document, so that even an undecodable object is named in errors.
func objectName(data []byte, root *jnode) string {
	md := root.child("metadata")
	if md == nil {
		return ""
	}
	if n := jsonString(data, md.child("name")); n != "" {
		return n
	}
	return jsonString(data, md.child("generateName"))
}

// maxProblems bounds how many decoding problems one object reports.
const maxProblems = 20

// decodeStrict decodes data into a new value of typ and reports every
// problem with its field path: values of the wrong type, values their type's
// own decoder refused (quantities, base64), then unknown and duplicate
// fields. The decoders stop at the first bad value, so each one found is
// replaced by null and the decoding repeated.
func decodeStrict(data []byte, typ reflect.Type, loc locator) (any, []error) {
	var probs []error
	for range maxProblems {
		v := reflect.New(typ).Interface()
		strict, err := sigsjson.UnmarshalStrict(data, v)
		if err == nil {
			root, _ := parseJSON(data)
			present := func(segs []string) bool {
				n := root
				for _, s := range segs {
					if n = n.child(s); n == nil {
						return false
					}
				}
				return true
			}
			for _, se := range strict {
				probs = append(probs, strictProblem(typ, se, present))
			}
			return v, probs
		}
		root, perr := parseJSON(data)
		if perr != nil {
			return nil, append(probs, field.InternalError(nil, fmt.Errorf("decoding: %w", err)))
		}
		n, segs := culprit(data, root, typ, err)
		probs = append(probs, valueProblem(typ, data, n, segs, err, loc))
		if n == root {
			return nil, probs
		}
		data = nullOut(data, n)
	}
	return nil, probs
}

func strictProblem(typ reflect.Type, se error, present func([]string) bool) error {
	var fe sigsjson.FieldError
	if !errors.As(se, &fe) {
		return se
	}
	segs := splitPath(fe.FieldPath())
	path := renderPath(typ, segs)
	if strings.HasPrefix(se.Error(), "duplicate field") {
		return &fieldProblem{Field: path, Detail: "duplicate key"}
	}
	return &fieldProblem{Field: path, Detail: "unknown field" + unknownFieldHint(typ, segs, present)}
}

// culprit finds the value that caused err: by the decoder's offset for a type
// mismatch; otherwise (an error from a type's own UnmarshalJSON, which stops
// the decoder at once, so it is the first in document order) by descending
// into the first member that, decoded alone into its own type, fails the
// same way.
func culprit(data []byte, root *jnode, typ reflect.Type, err error) (*jnode, []string) {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		// The offset is only the document's when the decoder itself hit
		// the mismatch; one inside a type's UnmarshalJSON (IntOrString) is
		// relative to that value. Trust it when it lands on a value of the
		// kind and under the field the error names.
		n, segs := nodeAt(root, int(te.Offset))
		field := te.Field[strings.LastIndexByte(te.Field, '.')+1:]
		if strings.HasPrefix(te.Value, jsonKind(n, data[n.start:n.end])) && field != "" && field == lastMember(typ, segs) {
			return n, segs
		}
	}
	n, t, segs := root, typ, []string(nil)
descend:
	for {
		for i, k := range n.kids {
			kt := step(t, n.seg(i))
			if kt == nil {
				continue
			}
			if e := sigsjson.UnmarshalCaseSensitivePreserveInts(data[k.start:k.end], reflect.New(indirect(kt)).Interface()); sameError(err, e) {
				n, t, segs = k, kt, append(segs, n.seg(i))
				continue descend
			}
		}
		return n, segs
	}
}

// sameError reports whether e, from decoding part of a document alone, is
// the error err of the whole: equal, or the same type mismatch named by a
// shorter field path.
func sameError(err, e error) bool {
	if e == nil {
		return false
	}
	var a, b *json.UnmarshalTypeError
	if errors.As(err, &a) && errors.As(e, &b) {
		return a.Value == b.Value && a.Type == b.Type && strings.HasSuffix(a.Field, b.Field)
	}
	return err.Error() == e.Error()
}

// nodeAt returns the innermost value containing offset off.
func nodeAt(root *jnode, off int) (*jnode, []string) {
	n, segs := root, []string(nil)
	for {
		next := -1
		for i, k := range n.kids {
			if k.start < off && off <= k.end {
				next = i
				break
			}
		}
		if next < 0 {
			return n, segs
		}
		segs = append(segs, n.seg(next))
		n = n.kids[next]
	}
}

func valueProblem(typ reflect.Type, data []byte, n *jnode, segs []string, err error, loc locator) *field.Error {
	path := renderPath(typ, segs)
	raw := data[n.start:n.end]
	var bad any = field.OmitValueType{}
	switch {
	case n.obj || n.arr:
	case raw[0] == '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		bad = s
	default:
		bad = json.RawMessage(raw)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		got, want := describeJSON(n, raw), describeType(te.Type)
		if dt := typeAt(typ, segs); dt != nil && indirect(dt) == reflect.TypeFor[intstr.IntOrString]() {
			want = "an integer or a string"
		}
		detail := fmt.Sprintf("expected %s, got %s", want, got)
		if te.Type.Kind() == reflect.String && !n.obj && !n.arr && raw[0] != '"' {
			text := string(raw)
			if loc != nil {
				if s, ok := loc.scalar(segs); ok {
					text = s
				}
			}
			detail += fmt.Sprintf(`; quote it to keep it a string: "%s"`, text)
			if got == "a boolean" {
				detail += " (YAML reads unquoted y, yes, on, true, n, no, off and false as booleans)"
			}
		}
		return &field.Error{Type: field.ErrorTypeTypeInvalid, Field: path, BadValue: bad, Detail: detail}
	}
	detail := err.Error()
	var ce base64.CorruptInputError
	switch {
	case errors.As(err, &ce):
		detail += " (values under data must be base64-encoded; put plain text under stringData)"
	case errors.Is(err, resource.ErrFormatWrong):
		detail += " (e.g. 500m or 2 for cpu, 128Mi or 1Gi for memory)"
	}
	return &field.Error{Type: field.ErrorTypeInvalid, Field: path, BadValue: bad, Detail: detail}
}

func describeType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Map:
		return "a map"
	case reflect.Struct:
		return "a map of fields"
	}
	return t.String()
}

// jsonKind names a value the way UnmarshalTypeError.Value does.
func jsonKind(n *jnode, raw []byte) string {
	switch {
	case n.obj:
		return "object"
	case n.arr:
		return "array"
	case raw[0] == '"':
		return "string"
	case raw[0] == 't' || raw[0] == 'f':
		return "bool"
	case raw[0] == 'n':
		return "null"
	}
	return "number"
}

// lastMember is the last struct member named along segs (list indices and
// map keys skipped): the field an UnmarshalTypeError names last.
func lastMember(typ reflect.Type, segs []string) string {
	last, t := "", typ
	for _, s := range segs {
		if t == nil {
			return ""
		}
		if indirect(t).Kind() == reflect.Struct {
			last = s
		}
		t = step(t, s)
	}
	return last
}

func describeJSON(n *jnode, raw []byte) string {
	switch {
	case n.obj:
		return "a map"
	case n.arr:
		return "a list"
	case raw[0] == '"':
		return "a string"
	case raw[0] == 't' || raw[0] == 'f':
		return "a boolean"
	case raw[0] == 'n':
		return "null"
	}
	return "a number"
}

// sortedKeys returns the keys of m in order, so errors come out the same
// every run.
func sortedKeys[K ~string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
