package approvebot

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Requests stored by earlier releases hold their groups with one key per
// platform, and a Slack side's groups under "usergroups": they must read
// back unchanged, and a group written now must read back as it was.
func TestGroupJSON(t *testing.T) {
	old := `{"name":"ops",` +
		`"slack":{"channels":["C0OPS"],"users":["U0ANN","ann@example.com"],"usergroups":["S0OPS"],"dm":true},` +
		`"teams":{"channels":["19:x@thread.tacv2"],"users":["bob@example.com"],"allow_guests":true,"dm":true},` +
		`"web":{"users":["sub:abc"],"groups":["ops-approvers"]}}`
	var g Group
	if err := json.Unmarshal([]byte(old), &g); err != nil {
		t.Fatal(err)
	}
	want := Group{Name: "ops", Sides: map[string]Side{
		"slack": {Channels: []string{"C0OPS"}, Users: []string{"U0ANN", "ann@example.com"}, Groups: []string{"S0OPS"}, DM: true},
		"teams": {Channels: []string{"19:x@thread.tacv2"}, Users: []string{"bob@example.com"}, AllowGuests: true, DM: true},
		"web":   {Users: []string{"sub:abc"}, Groups: []string{"ops-approvers"}},
	}}
	if !sameGroup(g, want) {
		t.Fatalf("old group read as %+v, want %+v", g, want)
	}
	// The store verifies that a record re-encodes to its stored bytes.
	data, err := json.Marshal(g)
	if err != nil || string(data) != old {
		t.Fatalf("old group written back as %s, %v; want %s", data, err, old)
	}
	data, err = json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var again Group
	if err := json.Unmarshal(data, &again); err != nil || !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip of %s: %+v, %v", data, again, err)
	}
	var bare Group
	if err := json.Unmarshal([]byte(`{"name":"nobody"}`), &bare); err != nil || bare.Name != "nobody" || bare.Sides != nil {
		t.Fatalf("group without sides: %+v, %v", bare, err)
	}
	if _, err := json.Marshal(Group{Name: "x", Sides: map[string]Side{"name": {}}}); err == nil {
		t.Fatal(`a side named "name" was written`)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","chat":[1]}`), &bare); err == nil {
		t.Fatal("a side that is no object was read")
	}
}

// sameGroup compares groups as their users see them, not how they were
// stored.
func sameGroup(a, b Group) bool {
	if a.Name != b.Name || len(a.Sides) != len(b.Sides) {
		return false
	}
	for p, x := range a.Sides {
		y, ok := b.Sides[p]
		x.legacyGroups, y.legacyGroups = false, false
		if !ok || !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}
