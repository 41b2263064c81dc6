// Package zonedata embeds the IANA time zone database for
// schedule.LoadLocation, as time/tzdata does for time.LoadLocation but at a
// fifth of its size. The Lambda runtime image has no /usr/share/zoneinfo: a
// function that computes in zones (flow: delay windows) imports this package
// for its effect in its wiring, and the others do not carry it (the API and
// the editor only check names: package zonenames).
//
// It is the Go toolchain's archive ($GOROOT/lib/time/zoneinfo.zip, ≈ 400 KB)
// gzip-compressed (≈ 95 KB), opened once, on the first zone loaded. It is read
// before the machine's database, so a function reads the same rules on a
// laptop as on Lambda: the toolchain's, updated with Go.
package zonedata

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tunnels/tunnels/shared/schedule"
)

//go:generate go run github.com/tunnels/tunnels/infra/gzipfile $GOROOT/lib/time/zoneinfo.zip zoneinfo.zip.gz
//go:embed zoneinfo.zip.gz
var zoneinfoGzip []byte

func init() { schedule.RegisterZones(Load) }

var archive struct {
	once sync.Once
	zip  *zip.Reader
	err  error
}

// Load reads zone name from the embedded database.
func Load(name string) (*time.Location, error) {
	archive.once.Do(func() {
		zr, err := gzip.NewReader(bytes.NewReader(zoneinfoGzip))
		if err != nil {
			archive.err = err
			return
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			archive.err = err
			return
		}
		archive.zip, archive.err = zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	})
	if archive.err != nil {
		return nil, fmt.Errorf("zonedata: the embedded archive: %w", archive.err)
	}
	f, err := archive.zip.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return time.LoadLocationFromTZData(name, data)
}
