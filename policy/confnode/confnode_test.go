package confnode

import (
	"strings"
	"testing"
	"time"
)

// A section's reader reports every problem with its line, in line order,
// and never quotes a value that may be a secret.
func TestReaderProblems(t *testing.T) {
	doc := "sec:\n  token: ${TOKEN}\n  wait: 90\n  wait2: 5m\n  colour: blue\n  flag: maybe\n"
	root, err := Decode([]byte(doc), "empty")
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(func(string) (string, bool) { return "", false }, nil)
	top := r.Object(root, "", "sec")
	o := r.Object(top.Val["sec"], "sec", "token", "wait", "wait2", "flag")
	if got := r.Duration(o, "wait2", 0, false); got != 5*time.Minute {
		t.Errorf("wait2 = %v", got)
	}
	r.Secret(o, "token", 1)
	r.Duration(o, "wait", time.Second, false)
	r.Bool(o, "flag")
	if !r.Failed() {
		t.Fatal("no problems reported")
	}
	want := []string{
		"line 2: sec.token: environment variable TOKEN is not set",
		`line 3: sec.wait: 90 has no unit: write a duration with units like "90s" or "5m"`,
		`line 5: unknown key "colour" in sec (want token, wait, wait2, flag)`,
		"line 6: sec.flag must be true or false",
	}
	if got := r.Err().Error(); got != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestDecodeEmpty(t *testing.T) {
	for _, doc := range []string{"", "~\n"} {
		if _, err := Decode([]byte(doc), "nothing here"); err == nil || !strings.Contains(err.Error(), "nothing here") {
			t.Errorf("%q: err = %v", doc, err)
		}
	}
	err := (&Error{File: "a.yaml", Problems: []Problem{{Line: 3, Msg: "bad"}}}).Error()
	if err != "a.yaml: line 3: bad" {
		t.Errorf("Error() = %q", err)
	}
}
