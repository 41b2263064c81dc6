package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

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

// TestSearchByTagPages: a tag held by few subscribers among many is found
// across directory pages, page by page, newest first.
func TestSearchByTagPages(t *testing.T) {
	st, clock, ws := newStore(t)
	ctx := t.Context()
	var tagged []string // newest first
	for i := range 130 {
		clock.Advance(1e9)
		id, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "tg", ExternalID: fmt.Sprint(i)}, Profile{FirstName: fmt.Sprint("S", i)})
		if err != nil {
			t.Fatal(err)
		}
		if i%40 == 3 { // 3, 43, 83, 123
			if err := st.AddTags(ctx, ws, id, []string{"rare", "also"}); err != nil {
				t.Fatal(err)
			}
			tagged = append([]string{id}, tagged...)
		}
	}
	// page reads the "rare" search two at a time to its end: the ids, and
	// how many pages came short of two before the end.
	page := func(maxPages int) (ids []string, short int) {
		t.Helper()
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > maxPages {
				t.Fatalf("more than %d pages: %v", maxPages, ids)
			}
			es, next, err := st.SearchSubscribers(ctx, ws, "", "rare", Page{Limit: 2, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			if next != nil && len(es) < 2 {
				short++
			}
			for _, e := range es {
				if !slices.Equal(e.Tags, []string{"also", "rare"}) {
					t.Errorf("%s: tags %v, want [also rare] (sorted, from the profile)", e.ID, e.Tags)
				}
				ids = append(ids, e.ID)
			}
			if next == nil {
				return ids, short
			}
			cursor = *next
		}
	}
	if got, _ := page(4); !slices.Equal(got, tagged) {
		t.Fatalf("pages gave %v, want %v", got, tagged)
	}
	// With a budget of 40 entries a request, the same search answers short
	// pages (some empty) whose cursors go on, and finds the same four.
	st.scanBudget = 40
	got, short := page(20)
	st.scanBudget = 0
	if !slices.Equal(got, tagged) || short == 0 {
		t.Fatalf("budgeted pages gave %v (%d short), want %v in short pages", got, short, tagged)
	}
	// Everyone's page shows each subscriber's tags, none for the untagged.
	es, _, err := st.SearchSubscribers(ctx, ws, "S123", "", Page{})
	if err != nil || len(es) != 1 || len(es[0].Tags) != 2 {
		t.Fatalf("S123: %+v, %v", es, err)
	}
	es, _, err = st.SearchSubscribers(ctx, ws, "S122", "", Page{})
	if err != nil || len(es) != 1 || es[0].Tags == nil || len(es[0].Tags) != 0 {
		t.Fatalf("S122: %+v, %v", es, err)
	}
}

// TestTagChangeWritesNoIndexEntry: a tag step writes the profile alone; the
// directory index holds no tags, so a changed set costs it nothing. A change
// of a projected attribute (the name) does write the entry, which shows the
// measure works.
func TestTagChangeWritesNoIndexEntry(t *testing.T) {
	_, _, ws := newStore(t)
	var mu sync.Mutex
	indexUnits := map[string]float64{}
	measured := dynamodb.New(testDB.Options(), func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("indexUnits", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				u, ok := in.Parameters.(*dynamodb.UpdateItemInput)
				if ok {
					u.ReturnConsumedCapacity = types.ReturnConsumedCapacityIndexes
				}
				out, md, err := next.HandleInitialize(ctx, in)
				if o, isUpdate := out.Result.(*dynamodb.UpdateItemOutput); isUpdate && o.ConsumedCapacity != nil {
					mu.Lock()
					for name, c := range o.ConsumedCapacity.GlobalSecondaryIndexes {
						indexUnits[name] += aws.ToFloat64(c.CapacityUnits)
					}
					mu.Unlock()
				}
				return out, md, err
			}), middleware.After)
		})
	})
	st := New(measured, testTable)
	ctx := t.Context()
	id, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "tg", ExternalID: "1"}, Profile{FirstName: "Ann"})
	if err != nil {
		t.Fatal(err)
	}
	units := func() float64 {
		mu.Lock()
		defer mu.Unlock()
		u := indexUnits[directoryIndex]
		clear(indexUnits)
		return u
	}
	units()
	if err := st.AddTags(ctx, ws, id, []string{"vip"}); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveTags(ctx, ws, id, []string{"vip"}); err != nil {
		t.Fatal(err)
	}
	if u := units(); u != 0 {
		t.Fatalf("tag changes wrote %.1f units to the %s index, want 0", u, directoryIndex)
	}
	if _, err := st.UpsertSubscriber(ctx, ws, engine.Identity{Channel: "tg", ExternalID: "1"}, Profile{FirstName: "Anna"}); err != nil {
		t.Fatal(err)
	}
	if u := units(); u == 0 {
		t.Fatalf("a new first name wrote nothing to the %s index: the measure sees no index writes", directoryIndex)
	}
}
