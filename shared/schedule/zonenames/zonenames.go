// Package zonenames embeds the names of the IANA time zones (those of package
// zonedata, ≈ 8 KB) for a function that only checks names: the API accepts a
// subscriber's time zone, and never computes a time in it. Import it for its
// effect; schedule.ValidZone then answers from the list.
package zonenames

import (
	_ "embed"
	"strings"

	"github.com/tunnels/tunnels/shared/schedule"
)

// names.txt holds one zone name per line, sorted: Go's zone database as
// zonedata embeds it. TestNamesAreTheDatabases rewrites it with -update.
//
//go:embed names.txt
var names string

func init() { schedule.RegisterZoneNames(Known) }

// Known says whether name is a zone of the list.
func Known(name string) bool {
	if name == "" || strings.Contains(name, "\n") {
		return false
	}
	i := strings.Index(names, "\n"+name+"\n")
	return i >= 0 || strings.HasPrefix(names, name+"\n")
}
