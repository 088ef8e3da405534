// Package expansion is Kubernetes' $(VAR) expansion, used for a container's
// command, args, env values and subPathExpr, and for exec probe commands.
package expansion

import "strings"

// Expand replaces each $(VAR) in s with its value in vars; a reference to
// an undefined variable stays as written, and $$ is a literal $ (so
// $$(VAR) is the text $(VAR)). Values are not expanded again.
func Expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 { // unterminated: literal
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
