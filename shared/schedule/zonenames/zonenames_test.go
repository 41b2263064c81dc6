package zonenames

import (
	"archive/zip"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite names.txt from the Go toolchain's zone database")

// The list is the toolchain's zone database's (what zonedata embeds): a Go
// upgrade that adds or removes a zone fails here until -update is run.
func TestNamesAreTheDatabases(t *testing.T) {
	zr, err := zip.OpenReader(filepath.Join(runtime.GOROOT(), "lib", "time", "zoneinfo.zip"))
	if err != nil {
		t.Skipf("no toolchain database to compare with: %v", err)
	}
	defer zr.Close()
	var want []string
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			want = append(want, f.Name)
		}
	}
	slices.Sort(want)
	text := strings.Join(want, "\n") + "\n"
	if *update {
		if err := os.WriteFile("names.txt", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if names != text {
		t.Fatalf("names.txt is not %s's zone list: run go test ./shared/schedule/zonenames -update", runtime.Version())
	}
}

func TestKnown(t *testing.T) {
	for name, want := range map[string]bool{
		"Europe/Moscow": true, "America/Argentina/Buenos_Aires": true, "UTC": true, "Africa/Abidjan": true,
		"Zulu": true, "Europe": false, "Europe/": false, "urope/Moscow": false, "Europe/Moscow\nUTC": false,
		"Mars/Olympus": false, "": false, "europe/moscow": false,
	} {
		if got := Known(name); got != want {
			t.Errorf("Known(%q) = %v, want %v", name, got, want)
		}
	}
}
