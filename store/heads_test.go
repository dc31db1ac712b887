package store

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approvebot/approvebot"
	bolt "go.etcd.io/bbolt"
)

// fillAll sets every exported field reachable from v to a non-zero value, with
// two elements in every slice and map, so a copy that misses one shows.
func fillAll(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillAll(v.Elem(), n)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(t0.Add(time.Duration(*n) * time.Second)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(v.Field(i), n)
			}
		}
	case reflect.Slice:
		if v.Type() == reflect.TypeOf(json.RawMessage{}) {
			v.SetBytes([]byte(fmt.Sprintf(`{"n":%d}`, *n)))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillAll(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillAll(k, n)
			fillAll(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	default:
		panic("fillAll: add kind " + v.Kind().String())
	}
}

// shared reports a slice, map or pointer that a and b both hold.
func shared(a, b reflect.Value, path string) []string {
	var out []string
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		return append(out, shared(a.Elem(), b.Elem(), path)...)
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				out = append(out, shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
			}
		}
	case reflect.Slice:
		if a.Len() == 0 {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for i := range a.Len() {
			out = append(out, shared(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		if a.Len() == 0 {
			return nil
		}
		if a.Pointer() == b.Pointer() {
			out = append(out, path)
		}
		for _, k := range a.MapKeys() {
			out = append(out, shared(a.MapIndex(k), b.MapIndex(k), fmt.Sprintf("%s[%v]", path, k))...)
		}
	}
	return out
}

// A cached head is handed out as a deep copy: a caller that changes the
// request it was given changes nothing another reader sees. fillAll reaches
// every field, so a field added to the head without a copy here fails.
func TestCloneHeadSharesNothing(t *testing.T) {
	var h recordHead
	n := 0
	fillAll(reflect.ValueOf(&h).Elem(), &n)
	c := cloneHead(&h)
	if !reflect.DeepEqual(h, c) {
		t.Fatalf("the copy differs:\n%+v\n%+v", h, c)
	}
	if s := shared(reflect.ValueOf(h), reflect.ValueOf(c), "head"); len(s) > 0 {
		t.Fatalf("the copy shares memory with the cached head at %v", s)
	}
}

func TestHeadCacheReads(t *testing.T) {
	s, _ := openTemp(t, Options{})
	r := fullRequest("req-cache")
	r.Chain.Stages[0].Groups[0].Sides = map[string]approvebot.Side{"chat": {Users: []string{"U1"}, Channels: []string{"C1"}}}
	if _, _, err := s.Create(r); err != nil {
		t.Fatal(err)
	}
	first, err := s.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.heads.m[r.ID]; !ok {
		t.Fatal("a read did not keep the head")
	}
	// What the reader does to its copy stays its own.
	first.Chain.Stages[0].Groups[0].Sides["chat"].Users[0] = "U-evil"
	first.Chain.Stages[0].Groups[0].Name = "evil"
	first.Context[1] = 'X'
	first.Fields.AgentID = "evil"
	again, err := s.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u := again.Chain.Stages[0].Groups[0].Sides["chat"].Users[0]; u != "U1" {
		t.Fatalf("a reader's change reached the cache: user %q", u)
	}
	if again.Chain.Stages[0].Groups[0].Name == "evil" || again.Fields.AgentID == "evil" || string(again.Context) != string(r.Context) {
		t.Fatalf("a reader's change reached the cache: %+v", again)
	}
	// A cached read is what decoding the file gives.
	cold, err := Open(t.TempDir()+"/cold.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cold.Close()
	var fromFile *approvebot.Request
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		fromFile, err = cold.heads.getRequest(tx, r.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again, fromFile) {
		t.Fatalf("cached read differs from the file:\n%+v\n%+v", again, fromFile)
	}

	// A record that changed under the cache is read from the file.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		h := headOf(fromFile)
		h.Fields.AgentID = "rewritten"
		v, err := json.Marshal(h)
		if err != nil {
			return err
		}
		return putHead(tx, r.ID, v)
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields.AgentID != "rewritten" {
		t.Fatalf("the cache answered for a record that changed: agent %q", got.Fields.AgentID)
	}
}

func TestHeadCacheBound(t *testing.T) {
	c := newHeadCache(10_000)
	h := recordHead{ID: "x"}
	for i := range 500 {
		c.put(fmt.Sprint(i), cachedHead{size: 100, head: &h})
		if c.bytes > c.max {
			t.Fatalf("after %d puts the cache holds %d bytes, over its %d", i+1, c.bytes, c.max)
		}
	}
	if len(c.m) != 100 || c.bytes != 10_000 {
		t.Fatalf("cache holds %d entries, %d bytes; want 100, 10000", len(c.m), c.bytes)
	}
	c.forget("499")
	if _, ok := c.m["499"]; ok || c.bytes != 9_900 {
		t.Fatalf("forget left %d bytes", c.bytes)
	}
	// A record too large for a sixteenth of the cache is decoded, not kept.
	big := []byte(`{"id":"big","context":"` + strings.Repeat("x", 4096) + `"}`)
	small := newHeadCache(len(big) * 8)
	if _, err := small.decode("big", big, true); err != nil {
		t.Fatal(err)
	}
	if len(small.m) != 0 {
		t.Fatal("a record over a sixteenth of the cache was kept")
	}
	if _, err := small.decode("little", []byte(`{"id":"little"}`), true); err != nil {
		t.Fatal(err)
	}
	if len(small.m) != 1 {
		t.Fatal("a small record was not kept")
	}
}
