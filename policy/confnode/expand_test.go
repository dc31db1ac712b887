package confnode

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "E": ""}
	get := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for _, tc := range []struct{ in, out, err string }{
		{in: "plain", out: "plain"},
		{in: "${A}", out: "x"},
		{in: "a${A}b${A}", out: "axbx"},
		{in: "$${A}", out: "${A}"},
		{in: "$$$$", out: "$$"},
		{in: "$A", err: `"$" not followed by "{"`},
		{in: "cost $", err: `"$" not followed by "{"`},
		{in: "${A", err: `without its closing "}"`},
		{in: "${}", err: `"" is not an environment variable name`},
		{in: "${1A}", err: `"1A" is not an environment variable name`},
		{in: "${A-B}", err: `"A-B" is not an environment variable name`},
	} {
		got, _, err := Expand(tc.in, get)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Expand(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.out {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.out)
		}
	}
	_, exp, _ := Expand("${E}", get)
	if exp.Whole != "E" || len(exp.Empty) != 1 {
		t.Errorf("expansion = %+v", exp)
	}
	_, exp, _ = Expand("${U}/${U}", get)
	if exp.Whole != "" || !reflect.DeepEqual(exp.Unset, []string{"U"}) {
		t.Errorf("expansion = %+v", exp)
	}
}
