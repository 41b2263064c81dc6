package schedule

import (
	"errors"
	"testing"
	"time"
	_ "time/tzdata" // the zones tested, whatever the host has (the package embeds none)
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestWindowNext(t *testing.T) {
	moscow := mustLoc(t, "Europe/Moscow") // UTC+3, no DST
	berlin := mustLoc(t, "Europe/Berlin") // CET/CEST
	ny := mustLoc(t, "America/New_York")  // EST/EDT
	cases := []struct {
		name     string
		loc      *time.Location
		hours    []string
		weekdays []string
		at, want string
	}{
		{"inside stays", moscow, []string{"09:00", "21:00"}, nil, "2026-12-07T10:00:00Z", "2026-12-07T10:00:00Z"},
		{"3 a.m. waits for 9", moscow, []string{"09:00", "21:00"}, nil, "2026-12-07T00:00:00Z", "2026-12-07T06:00:00Z"},
		{"after closing waits for tomorrow", moscow, []string{"09:00", "21:00"}, nil, "2026-12-07T18:30:00Z", "2026-12-08T06:00:00Z"},
		{"closing time is outside", moscow, []string{"09:00", "21:00"}, nil, "2026-12-07T18:00:00Z", "2026-12-08T06:00:00Z"},
		{"opening time is inside", moscow, []string{"09:00", "21:00"}, nil, "2026-12-07T06:00:00Z", "2026-12-07T06:00:00Z"},
		// 2026-12-05 is a Saturday: the weekday window waits for Monday.
		{"weekend waits for monday", moscow, []string{"09:00", "18:00"}, []string{"mon", "tue", "wed", "thu", "fri"}, "2026-12-05T12:00:00Z", "2026-12-07T06:00:00Z"},
		{"friday evening waits for monday", moscow, []string{"09:00", "18:00"}, []string{"mon", "fri"}, "2026-12-04T16:00:00Z", "2026-12-07T06:00:00Z"},
		{"overnight window before midnight", moscow, []string{"22:00", "06:00"}, nil, "2026-12-07T20:00:00Z", "2026-12-07T20:00:00Z"},
		{"overnight window after midnight", moscow, []string{"22:00", "06:00"}, nil, "2026-12-08T01:00:00Z", "2026-12-08T01:00:00Z"},
		{"overnight window at noon", moscow, []string{"22:00", "06:00"}, nil, "2026-12-08T09:00:00Z", "2026-12-08T19:00:00Z"},
		// The night past Sunday belongs to Sunday's window: weekday names the day the window opens.
		{"overnight window opened on an allowed day", moscow, []string{"22:00", "06:00"}, []string{"sun"}, "2026-12-07T00:30:00Z", "2026-12-07T00:30:00Z"},
		{"weekdays only, whole days", moscow, nil, []string{"sat"}, "2026-12-07T09:00:00Z", "2026-12-11T21:00:00Z"},
		// DST: Berlin springs forward on 2026-03-29 (09:00 is 08:00 UTC before, 07:00 UTC after).
		{"before spring forward", berlin, []string{"09:00", "21:00"}, nil, "2026-03-28T05:00:00Z", "2026-03-28T08:00:00Z"},
		{"across spring forward", berlin, []string{"09:00", "21:00"}, nil, "2026-03-28T21:00:00Z", "2026-03-29T07:00:00Z"},
		// New York falls back on 2026-11-01: 09:00 EDT is 13:00 UTC, 09:00 EST 14:00 UTC.
		{"across fall back", ny, []string{"09:00", "17:00"}, nil, "2026-10-31T22:00:00Z", "2026-11-01T14:00:00Z"},
		{"window up to 24:00", moscow, []string{"20:00", "24:00"}, nil, "2026-12-07T20:59:00Z", "2026-12-07T20:59:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := NewWindow(c.loc, c.hours, c.weekdays)
			if err != nil {
				t.Fatal(err)
			}
			got := w.Next(utc(c.at))
			if !got.Equal(utc(c.want)) {
				t.Fatalf("Next(%s) = %s, want %s", c.at, got.UTC().Format(time.RFC3339), c.want)
			}
			if !w.Contains(got) {
				t.Fatalf("Next's answer %s is not inside the window", got)
			}
		})
	}
}

func TestWindowErrors(t *testing.T) {
	cases := []struct {
		hours, days []string
	}{
		{[]string{"9:00", "21:00"}, nil},
		{[]string{"09:00"}, nil},
		{[]string{"09:00", "25:00"}, nil},
		{[]string{"09:60", "21:00"}, nil},
		{[]string{"10:00", "10:00"}, nil},
		{[]string{"24:00", "10:00"}, nil},
		{nil, []string{"monday"}},
	}
	for _, c := range cases {
		if _, err := NewWindow(time.UTC, c.hours, c.days); err == nil {
			t.Errorf("NewWindow(%v, %v) accepted", c.hours, c.days)
		}
	}
	for _, name := range []string{"", "Local", "Mars/Olympus", "utc+3"} {
		if _, err := LoadLocation(name); err == nil {
			t.Errorf("LoadLocation(%q) accepted", name)
		}
	}
}

func TestDateValue(t *testing.T) {
	moscow := mustLoc(t, "Europe/Moscow")
	got, err := DateValue("2026-12-24", moscow)
	if err != nil || !got.Equal(utc("2026-12-23T21:00:00Z")) {
		t.Fatalf("date in Moscow = %v, %v", got, err)
	}
	got, err = DateValue("2026-12-24T18:00:00.000Z", moscow)
	if err != nil || !got.Equal(utc("2026-12-24T18:00:00Z")) {
		t.Fatalf("date-time = %v, %v", got, err)
	}
	if _, err := DateValue("tomorrow", nil); err == nil {
		t.Fatal("DateValue accepted text")
	}
}

// A registered database answers first and the machine's after it; a loaded
// zone is kept.
func TestRegisteredZones(t *testing.T) {
	saved := registeredZones
	zones.Clear()
	t.Cleanup(func() { registeredZones = saved; zones.Clear() })
	calls := map[string]int{}
	fixed := time.FixedZone("Test/Fixed", 5*3600+45*60)
	RegisterZones(func(name string) (*time.Location, error) {
		calls[name]++
		if name == "Test/Fixed" {
			return fixed, nil
		}
		return nil, errors.New("not here")
	})
	for range 2 {
		loc, err := LoadLocation("Test/Fixed")
		if err != nil || loc != fixed {
			t.Fatalf("LoadLocation(Test/Fixed) = %v, %v; want the registered zone", loc, err)
		}
	}
	if calls["Test/Fixed"] != 1 {
		t.Errorf("the registered source was asked %d times for one zone", calls["Test/Fixed"])
	}
	if _, err := LoadLocation("Pacific/Chatham"); err != nil {
		t.Errorf("a zone the registered source lacks, from the machine: %v", err)
	}
	if calls["Pacific/Chatham"] != 1 {
		t.Errorf("the registered source was not asked first")
	}
	if _, err := LoadLocation("Test/Nowhere"); err == nil {
		t.Errorf("a zone nobody has loaded")
	}
}

// A registered list answers ValidZone without loading; without one, a zone
// is valid when it loads.
func TestValidZone(t *testing.T) {
	saved := knownZone
	t.Cleanup(func() { knownZone = saved })
	knownZone = nil
	if err := ValidZone("Europe/Moscow"); err != nil {
		t.Errorf("without a list: %v", err)
	}
	if err := ValidZone("Mars/Olympus"); err == nil {
		t.Error("without a list, Mars/Olympus is valid")
	}
	RegisterZoneNames(func(name string) bool { return name == "Test/Listed" })
	if err := ValidZone("Test/Listed"); err != nil {
		t.Errorf("a listed name: %v", err)
	}
	for _, name := range []string{"Europe/Moscow", "Local", ""} {
		if err := ValidZone(name); err == nil {
			t.Errorf("%q is valid though the list lacks it", name)
		}
	}
}
