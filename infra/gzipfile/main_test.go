package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTripAndStable(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.json")
	body := bytes.Repeat([]byte(`{"a":"some text that repeats"}`), 500)
	if err := os.WriteFile(in, body, 0o644); err != nil {
		t.Fatal(err)
	}
	var outs [][]byte
	for i := range 2 {
		out := filepath.Join(dir, "out"+string(rune('0'+i))+".gz")
		if err := run(in, out); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, b)
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Error("two runs on the same input differ")
	}
	if len(outs[0]) >= len(body)/10 {
		t.Errorf("%d bytes compressed to %d", len(body), len(outs[0]))
	}
	zr, err := gzip.NewReader(bytes.NewReader(outs[0]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("round trip: %v, equal %v", err, bytes.Equal(got, body))
	}
	if err := run(filepath.Join(dir, "missing"), filepath.Join(dir, "x.gz")); err == nil {
		t.Error("a missing input was accepted")
	}
}
