package confnode

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Expansion records the variables a value used.
type Expansion struct {
	Unset []string
	Empty []string
	Whole string // the variable's name when the value is exactly ${NAME}
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Expand replaces ${NAME} with NAME's value and $$ with $. A lone $ is an
// error rather than a literal so that a forgotten brace in "$TOKEN" does
// not silently become the text "$TOKEN".
func Expand(s string, getenv func(string) (string, bool)) (string, Expansion, error) {
	var exp Expansion
	if !strings.Contains(s, "$") {
		return s, exp, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i += 2
			continue
		}
		if i+1 >= len(s) || s[i+1] != '{' {
			return "", exp, errors.New(`a "$" not followed by "{": write "${NAME}" for an environment variable or "$$" for a literal "$"`)
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", exp, errors.New(`"${" without its closing "}"`)
		}
		name := s[i+2 : i+2+end]
		if !varName.MatchString(name) {
			return "", exp, fmt.Errorf("%q is not an environment variable name (letters, digits and _, not starting with a digit)", name)
		}
		v, ok := getenv(name)
		switch {
		case !ok:
			if !slices.Contains(exp.Unset, name) {
				exp.Unset = append(exp.Unset, name)
			}
		case v == "":
			if !slices.Contains(exp.Empty, name) {
				exp.Empty = append(exp.Empty, name)
			}
		}
		b.WriteString(v)
		if i == 0 && i+3+end == len(s) {
			exp.Whole = name
		}
		i += 3 + end
	}
	return b.String(), exp, nil
}
