package store

import (
	"testing"

	"github.com/tunnels/tunnels/shared/engine"
)

func TestSearchSubscribers(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	add := func(ext string, p Profile) string {
		clock.Advance(1e9) // a second apart: newest first is a known order
		id, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "tg", ExternalID: ext}, p)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ann := add("1", Profile{FirstName: "Ann", LastName: "Lee", Email: "Ann.Lee@Example.com", Phone: "+15550001"})
	bob := add("2", Profile{FirstName: "Bob", LastName: "Annenberg"})
	cid := add("3", Profile{FirstName: "Cid"})
	if err := st.AddTags(ctx, ws, cid, []string{"vip"}); err != nil {
		t.Fatal(err)
	}
	ids := func(q, tag string, p Page) ([]string, *string) {
		t.Helper()
		es, next, err := st.SearchSubscribers(ctx, ws, q, tag, p)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.ID)
		}
		return out, next
	}
	for _, c := range []struct {
		q, tag string
		want   []string
	}{
		{"", "", []string{cid, bob, ann}},
		{"ann", "", []string{bob, ann}}, // a first or last name, any case
		{"example.COM", "", []string{ann}},
		{"0001", "", []string{ann}},
		{"tg:2", "", []string{bob}},
		{cid, "", []string{cid}},
		{"", "vip", []string{cid}},
		{"ann", "vip", nil},
		{"nobody", "", nil},
	} {
		got, _ := ids(c.q, c.tag, Page{})
		if len(got) != len(c.want) {
			t.Errorf("q %q tag %q: %v, want %v", c.q, c.tag, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("q %q tag %q: %v, want %v", c.q, c.tag, got, c.want)
			}
		}
	}
	// Pages by cursor, with a filter.
	first, next := ids("ann", "", Page{Limit: 1})
	if len(first) != 1 || first[0] != bob || next == nil {
		t.Fatalf("first page %v %v", first, next)
	}
	second, last := ids("ann", "", Page{Limit: 1, Cursor: *next})
	if len(second) != 1 || second[0] != ann || last != nil {
		t.Fatalf("second page %v %v", second, last)
	}
}
