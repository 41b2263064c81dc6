// Package schedule computes when a delay ends: inside a window of allowed hours
// and weekdays in a time zone, or at a date moved by an offset. It is pure time
// arithmetic. Zones come from the machine's database, or from an embedded one
// (package zonedata) in the functions that import it.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Window is a set of allowed moments: every allowed weekday from From to To
// (minutes after local midnight; To <= From runs past midnight into the next
// day). A zero Window has no allowed day; use NewWindow.
type Window struct {
	Loc      *time.Location
	From, To int
	Days     [7]bool // by time.Weekday
}

// Weekday names as the tunnel format spells them.
var weekdayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWeekday reads "mon".."sun".
func ParseWeekday(s string) (time.Weekday, error) {
	d, ok := weekdayNames[strings.ToLower(s)]
	if !ok {
		return 0, fmt.Errorf("%q is not a weekday (mon, tue, wed, thu, fri, sat, sun)", s)
	}
	return d, nil
}

// ParseClock reads "HH:MM" (00:00 to 24:00) as minutes after midnight.
func ParseClock(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time of day HH:MM", s)
	}
	return h*60 + m, nil
}

// LoadLocation loads an IANA time zone: from the registered database
// (package zonedata) if there is one, so a function reads the same rules on
// a laptop and on Lambda, else from the machine's (as time.LoadLocation). The
// machine's "Local" zone is refused: it would make a tunnel mean different
// things on different machines. Zones are kept once loaded.
func LoadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("%q is not an IANA time zone (e.g. Europe/Moscow)", name)
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	var loc *time.Location
	err := errors.New("no registered zones")
	if registeredZones != nil {
		loc, err = registeredZones(name)
	}
	if err != nil {
		loc, err = time.LoadLocation(name)
	}
	if err != nil {
		return nil, fmt.Errorf("%q is not an IANA time zone (e.g. Europe/Moscow)", name)
	}
	zones.Store(name, loc)
	return loc, nil
}

// zones holds the zones loaded so far by name (a few hundred at most).
var zones sync.Map

// registeredZones loads zones from a database the binary carries.
var registeredZones func(name string) (*time.Location, error)

// ValidZone says whether name is an IANA time zone a subscriber or a tunnel
// may carry: from the registered list of names (package zonenames) if there
// is one, else by loading it.
func ValidZone(name string) error {
	if knownZone != nil && name != "Local" {
		if knownZone(name) {
			return nil
		}
		return fmt.Errorf("%q is not an IANA time zone (e.g. Europe/Moscow)", name)
	}
	_, err := LoadLocation(name)
	return err
}

// knownZone answers ValidZone from a list of names the binary carries.
var knownZone func(name string) bool

// RegisterZoneNames makes known the answer of ValidZone. Package zonenames
// calls it from its init.
func RegisterZoneNames(known func(name string) bool) { knownZone = known }

// RegisterZones makes load the first source of zones. Package zonedata calls
// it from its init; it is not safe to call once zones are being loaded.
func RegisterZones(load func(name string) (*time.Location, error)) { registeredZones = load }

// NewWindow builds a window from its wire parts: hours ["HH:MM", "HH:MM"] and
// weekday names (none: every day).
func NewWindow(loc *time.Location, hours []string, weekdays []string) (Window, error) {
	w := Window{Loc: loc, From: 0, To: 24 * 60}
	if loc == nil {
		w.Loc = time.UTC
	}
	if len(hours) != 0 {
		if len(hours) != 2 {
			return Window{}, errors.New("hours must be [from, to]")
		}
		var err error
		if w.From, err = ParseClock(hours[0]); err != nil {
			return Window{}, err
		}
		if w.To, err = ParseClock(hours[1]); err != nil {
			return Window{}, err
		}
		if w.From == 24*60 {
			return Window{}, errors.New("a window cannot open at 24:00")
		}
		if w.From == w.To {
			return Window{}, errors.New("a window that opens and closes at the same time has no moment in it")
		}
	}
	if len(weekdays) == 0 {
		for i := range w.Days {
			w.Days[i] = true
		}
	}
	for _, s := range weekdays {
		d, err := ParseWeekday(s)
		if err != nil {
			return Window{}, err
		}
		w.Days[d] = true
	}
	return w, nil
}

// span is the stretch of the window that opens on the local day of day.
func (w Window) span(y int, m time.Month, d int) (start, end time.Time) {
	start = time.Date(y, m, d, w.From/60, w.From%60, 0, 0, w.Loc)
	if w.To > w.From {
		end = time.Date(y, m, d, w.To/60, w.To%60, 0, 0, w.Loc)
	} else {
		end = time.Date(y, m, d+1, w.To/60, w.To%60, 0, 0, w.Loc)
	}
	return start, end
}

// Contains reports whether t is inside the window.
func (w Window) Contains(t time.Time) bool {
	return w.Next(t).Equal(t)
}

// Next returns t when t is inside the window, else the moment the window next
// opens. Days are counted on the local calendar, so a window keeps its local
// hours across daylight-saving changes. With no allowed day it returns t.
func (w Window) Next(t time.Time) time.Time {
	loc := w.Loc
	if loc == nil {
		loc = time.UTC
	}
	local := t.In(loc)
	y, m, d := local.Date()
	var best time.Time
	for off := -1; off <= 8; off++ {
		day := time.Date(y, m, d+off, 12, 0, 0, 0, loc)
		if !w.Days[day.Weekday()] {
			continue
		}
		start, end := w.span(day.Year(), day.Month(), day.Day())
		if !t.Before(start) && t.Before(end) {
			return t
		}
		if start.After(t) && (best.IsZero() || start.Before(best)) {
			best = start
		}
	}
	if best.IsZero() {
		return t
	}
	return best.UTC()
}

// DateValue reads a stored date field value ("2006-01-02", a date at local
// midnight in loc, or an RFC 3339 date-time).
func DateValue(s string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date", s)
	}
	return t, nil
}
