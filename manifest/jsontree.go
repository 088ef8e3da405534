package manifest

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// jnode is one JSON value with its byte span in the text it was parsed from.
// The decoders report only a byte offset or nothing at all; the spans turn
// either into a field path and a line.
type jnode struct {
	start, end int // [start, end) of the value
	at         int // offset of the member's key, or start for array elements
	obj, arr   bool
	keys       []string // object member names, parallel to kids
	kids       []*jnode
}

// child returns the member or element named by seg, the last one when a key
// repeats (that is the one the decoder keeps).
func (n *jnode) child(seg string) *jnode {
	switch {
	case n.obj:
		for i := len(n.keys) - 1; i >= 0; i-- {
			if n.keys[i] == seg {
				return n.kids[i]
			}
		}
	case n.arr:
		if i, err := strconv.Atoi(seg); err == nil && i >= 0 && i < len(n.kids) {
			return n.kids[i]
		}
	}
	return nil
}

// seg names kid i of n as a path segment.
func (n *jnode) seg(i int) string {
	if n.obj {
		return n.keys[i]
	}
	return strconv.Itoa(i)
}

type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string { return e.msg }

// maxDepth bounds nesting like encoding/json does, so hostile input cannot
// exhaust the stack.
const maxDepth = 10000

type jparser struct {
	data []byte
	i    int
}

// parseJSONStream parses a sequence of whitespace-separated JSON values.
func parseJSONStream(data []byte) ([]*jnode, error) {
	p := &jparser{data: data}
	var out []*jnode
	for {
		p.ws()
		if p.i == len(data) {
			return out, nil
		}
		n, err := p.value(0)
		if err != nil {
			return out, err
		}
		out = append(out, n)
	}
}

// parseJSON parses exactly one JSON value.
func parseJSON(data []byte) (*jnode, error) {
	p := &jparser{data: data}
	p.ws()
	n, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.i != len(data) {
		return nil, p.fail("unexpected data after the top-level value")
	}
	return n, nil
}

func (p *jparser) fail(format string, args ...any) error {
	return &jsonSyntaxError{off: p.i, msg: fmt.Sprintf(format, args...)}
}

func (p *jparser) ws() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jparser) value(depth int) (*jnode, error) {
	if depth > maxDepth {
		return nil, p.fail("exceeded max depth")
	}
	if p.i == len(p.data) {
		return nil, p.fail("unexpected end of JSON input")
	}
	n := &jnode{start: p.i, at: p.i}
	var err error
	switch c := p.data[p.i]; {
	case c == '{':
		n.obj = true
		err = p.members(n, depth)
	case c == '[':
		n.arr = true
		err = p.elements(n, depth)
	case c == '"':
		_, err = p.str()
	case c == '-' || c >= '0' && c <= '9':
		err = p.number()
	default:
		err = p.literal()
	}
	n.end = p.i
	return n, err
}

func (p *jparser) members(n *jnode, depth int) error {
	p.i++ // {
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		at := p.i
		if p.i == len(p.data) || p.data[p.i] != '"' {
			return p.fail("expected a string for an object key")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if p.i == len(p.data) || p.data[p.i] != ':' {
			return p.fail("expected ':' after object key")
		}
		p.i++
		p.ws()
		kid, err := p.value(depth + 1)
		if err != nil {
			return err
		}
		kid.at = at
		n.keys = append(n.keys, key)
		n.kids = append(n.kids, kid)
		p.ws()
		if p.i == len(p.data) {
			return p.fail("unexpected end of JSON input")
		}
		switch p.data[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}' after object member")
		}
	}
}

func (p *jparser) elements(n *jnode, depth int) error {
	p.i++ // [
	p.ws()
	if p.i < len(p.data) && p.data[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		p.ws()
		kid, err := p.value(depth + 1)
		if err != nil {
			return err
		}
		n.kids = append(n.kids, kid)
		p.ws()
		if p.i == len(p.data) {
			return p.fail("unexpected end of JSON input")
		}
		switch p.data[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or ']' after array element")
		}
	}
}

// str scans a string and returns its decoded value.
func (p *jparser) str() (string, error) {
	start := p.i
	p.i++ // "
	escaped := false
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			p.i++
			raw := p.data[start:p.i]
			if !escaped {
				return string(raw[1 : len(raw)-1]), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return "", &jsonSyntaxError{off: start, msg: "invalid string: " + err.Error()}
			}
			return s, nil
		case c == '\\':
			escaped = true
			p.i += 2
		case c < 0x20:
			return "", p.fail("invalid control character in string")
		default:
			p.i++
		}
	}
	return "", p.fail("unexpected end of JSON input in string")
}

func (p *jparser) digits() int {
	n := 0
	for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

func (p *jparser) number() error {
	if p.data[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.data) && p.data[p.i] == '0':
		p.i++
	case p.digits() == 0:
		return p.fail("invalid number")
	}
	if p.i < len(p.data) && p.data[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return p.fail("invalid number")
		}
	}
	if p.i < len(p.data) && (p.data[p.i] == 'e' || p.data[p.i] == 'E') {
		p.i++
		if p.i < len(p.data) && (p.data[p.i] == '+' || p.data[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return p.fail("invalid number")
		}
	}
	return nil
}

func (p *jparser) literal() error {
	for _, lit := range []string{"true", "false", "null"} {
		if len(p.data)-p.i >= len(lit) && string(p.data[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			return nil
		}
	}
	return p.fail("invalid character %q looking for beginning of value", p.data[p.i])
}

// lineIndex maps byte offsets of a text to 1-based line numbers.
type lineIndex []int // offsets of every '\n'

func newLineIndex(data []byte) lineIndex {
	var idx lineIndex
	for i, c := range data {
		if c == '\n' {
			idx = append(idx, i)
		}
	}
	return idx
}

func (l lineIndex) line(off int) int {
	return sort.SearchInts(l, off) + 1
}

// nullOut returns a copy of data with the spans of nodes replaced by null.
// The nodes must be disjoint and in document order.
func nullOut(data []byte, nodes ...*jnode) []byte {
	out := make([]byte, 0, len(data))
	last := 0
	for _, n := range nodes {
		out = append(out, data[last:n.start]...)
		out = append(out, "null"...)
		last = n.end
	}
	return append(out, data[last:]...)
}
