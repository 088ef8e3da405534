package manifest

import (
	"fmt"
	"strconv"
	"strings"
)

// Source says where an object came from. Doc counts the non-empty documents
// of File from 1; Line is 1-based, 0 when unknown.
type Source struct {
	File string
	Doc  int
	Line int
}

// String renders "file:line", with "(doc N)" when the object is not the
// file's first document, the way compilers name positions so editors can jump.
func (s Source) String() string {
	var b strings.Builder
	b.WriteString(s.File)
	if s.Line > 0 {
		b.WriteString(":" + strconv.Itoa(s.Line))
	}
	if s.Doc > 1 {
		fmt.Fprintf(&b, " (doc %d)", s.Doc)
	}
	return b.String()
}

// Error is one problem with one object: "<source>: <Kind>/<name>: <err>",
// where err is usually a *field.Error ("<field path>: <reason>"). Kind is
// empty when the document could not be read far enough to know it.
type Error struct {
	Source Source
	Kind   string
	Name   string
	Err    error
}

func (e *Error) Error() string {
	if e.Kind == "" {
		return fmt.Sprintf("%s: %v", e.Source, e.Err)
	}
	name := e.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Sprintf("%s: %s/%s: %v", e.Source, e.Kind, name, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem Load found, in input order.
type Errors []error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}
