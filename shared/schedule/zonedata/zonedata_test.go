package zonedata

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func gunzip(t *testing.T) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(zoneinfoGzip))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The embedded archive is the toolchain's: a Go upgrade that brings new
// zone rules fails here until go generate is run.
func TestArchiveIsGos(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Skipf("no toolchain archive to compare with: %v", err)
	}
	if !bytes.Equal(gunzip(t), want) {
		t.Fatalf("zoneinfo.zip.gz is not %s's lib/time/zoneinfo.zip: run go generate ./shared/schedule/zonedata", runtime.Version())
	}
}

// Every zone of the archive loads, and a few agree with the machine's own
// database where it has one, at instants on both sides of a rule change.
func TestEveryZoneLoads(t *testing.T) {
	raw := gunzip(t)
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) < 300 {
		t.Fatalf("the archive has %d zones", len(zr.File))
	}
	for _, f := range zr.File {
		if _, err := Load(f.Name); err != nil {
			t.Errorf("Load(%q): %v", f.Name, err)
		}
	}
	instants := []time.Time{time.Date(2010, 7, 1, 12, 0, 0, 0, time.UTC), time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)}
	for _, name := range []string{"Europe/Moscow", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"} {
		loc, err := Load(name)
		if err != nil {
			t.Fatalf("Load(%q): %v", name, err)
		}
		sys, err := time.LoadLocation(name)
		if err != nil {
			continue
		}
		for _, at := range instants {
			if got, want := at.In(loc).Format(time.RFC3339), at.In(sys).Format(time.RFC3339); got != want {
				t.Errorf("%s at %s: %s, the machine says %s", name, at, got, want)
			}
		}
	}
	// Moscow moved from +04 to +03 in 2014.
	loc, _ := Load("Europe/Moscow")
	if got := instants[0].In(loc).Format("-07:00"); got != "+04:00" {
		t.Errorf("Moscow in 2010: %s, want +04:00", got)
	}
	if got := instants[1].In(loc).Format("-07:00"); got != "+03:00" {
		t.Errorf("Moscow in 2024: %s, want +03:00", got)
	}
}

func TestUnknownZones(t *testing.T) {
	for _, name := range []string{"Mars/Olympus", "../etc/passwd", "Europe", ""} {
		if _, err := Load(name); err == nil {
			t.Errorf("Load(%q) loaded a zone", name)
		}
	}
}
