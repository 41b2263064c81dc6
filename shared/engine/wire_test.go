package engine

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The fast paths must write and accept exactly what encoding/json does.

func jsonDecode(body []byte) (Step, error) {
	var s Step
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&s)
	return s, err
}

func randomSteps(n int) []Step {
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "Z", "9", "_", "-", " ", "é", "日本", "<", ">", "&", `"`, `\`, "\n", "\t", "\x01", "\x7f", "\u2028", "\u2029", "\xff", "💬", "/"}
	str := func() string {
		var b strings.Builder
		for range r.IntN(6) {
			if r.IntN(60) == 0 {
				b.WriteString(pieces[r.IntN(len(pieces))])
			} else {
				b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[r.IntN(36)])
			}
		}
		return b.String()
	}
	strs := func() []string {
		switch r.IntN(4) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+r.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	zones := []*time.Location{time.UTC, time.FixedZone("x", 3*3600+1800), time.FixedZone("y", -11*3600)}
	tm := func() time.Time {
		return time.Date(1990+r.IntN(60), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(3)*r.IntN(1e9), zones[r.IntN(len(zones))])
	}
	out := make([]Step, n)
	for i := range out {
		s := Step{V: r.IntN(3), ID: str(), WS: str(), Sub: str(), Tunnel: str(), Channel: str(), Gen: r.IntN(5) - 1,
			Block: str(), Action: r.IntN(4), At: tm(), Spin: r.IntN(3) * r.IntN(200), Next: strs()}
		if r.IntN(2) == 0 {
			d := tm()
			s.Due = &d
		}
		if r.IntN(4) == 0 {
			w := tm()
			s.Wait = &w
		}
		s.InChat = r.IntN(2) == 0 // never on the wire
		if r.IntN(8) == 0 {
			s.Hold = &Hold{Join: str(), Actions: strs(), Then: strs(), Spin: r.IntN(2) * 7}
		}
		if r.IntN(3) == 0 {
			s.Phase = str()
		}
		if r.IntN(8) == 0 {
			s.Input = &Input{Wait: str(), Button: str(), Text: str()}
		}
		out[i] = s
	}
	return out
}

func TestEncodeIsJSONMarshal(t *testing.T) {
	steps := append(randomSteps(3000), validStep(), Step{}, Step{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	fast := 0
	for _, s := range steps {
		want, _ := json.Marshal(s)
		if got := s.Encode(); !bytes.Equal(got, want) {
			t.Fatalf("Encode(%+v)\n got %s\nwant %s", s, got, want)
		}
		if b, ok := appendStep(nil, s); ok {
			fast++
			if n := encodedSize(s); n < len(b) && s.V < 1000 && s.Gen < 1000 && s.Action < 1000 && s.Spin < 1000 && (s.Hold == nil || s.Hold.Spin < 1000) {
				t.Errorf("encodedSize %d < %d bytes written for %s", n, len(b), b)
			}
		}
	}
	if fast < len(steps)/4 {
		t.Errorf("only %d of %d steps took the fast path", fast, len(steps))
	}
}

func TestDecodeIsJSONDecode(t *testing.T) {
	var bodies [][]byte
	for _, s := range randomSteps(3000) {
		b, _ := json.Marshal(s)
		bodies = append(bodies, b)
	}
	v, _ := json.Marshal(validStep())
	plain := validStep()
	plain.Hold = nil
	p, _ := json.Marshal(plain)
	for _, b := range [][]byte{v, p} {
		w := string(b)
		bodies = append(bodies, b,
			[]byte(" "+w), []byte(w+" trailing"), []byte(w+"}"), []byte(strings.Replace(w, `"id"`, `"ID"`, 1)),
			[]byte(strings.Replace(w, `"id"`, `"extra":{"a":[1,2]},"id"`, 1)), []byte(strings.Replace(w, `,"gen":2`, `,"gen":2.0`, 1)),
			[]byte(strings.Replace(w, `,"gen":2`, `,"gen":02`, 1)), []byte(strings.Replace(w, `,"gen":2`, `,"gen":-0`, 1)),
			[]byte(strings.Replace(w, `,"gen":2`, `,"gen":99999999999999999999`, 1)), []byte(strings.Replace(w, `,"gen":2`, `,"gen":2e0`, 1)),
			[]byte(strings.Replace(w, `,"gen":2`, `,"gen":"2"`, 1)), []byte(strings.Replace(w, `,"gen":2`, `,"gen":null`, 1)),
			[]byte(strings.Replace(w, `"s1"`, `"s\u0031"`, 1)), []byte(strings.Replace(w, `"s1"`, "\"s\x001\"", 1)),
			[]byte(strings.Replace(w, `"s1"`, "\"s\xff\"", 1)), []byte(strings.Replace(w, `,"at":"2026-11-24T10:00:00.123Z"`, `,"at":"2026-11-24 10:00:00Z"`, 1)),
			[]byte(strings.Replace(w, `,"at":"2026-11-24T10:00:00.123Z"`, `,"at":null`, 1)), []byte(strings.Replace(w, `"id":"s1"`, `"id":"s1","id":"s2"`, 1)),
			[]byte(strings.Replace(w, `,"block"`, `,"next":[],"block"`, 1)), []byte(strings.Replace(w, `,"block"`, `,"next":["a","b"],"next":["c"],"block"`, 1)),
			[]byte(strings.Replace(w, `,"block"`, `,"next":null,"block"`, 1)), []byte(strings.Replace(w, `,"block"`, `,"next":["a",],"block"`, 1)),
			[]byte(strings.Replace(w, `,"block"`, `,"due":"2026-11-24T11:00:00+01:00","block"`, 1)),
			b[:len(b)/2], []byte(w[:len(w)-1]), []byte(`{}`), []byte(`{`), []byte(`{"v":1,}`), []byte(`[1]`), []byte(``), []byte(`null`))
	}
	fast := 0
	for _, b := range bodies {
		want, werr := jsonDecode(b)
		got, ok := decodeStep(b)
		if !ok {
			continue
		}
		fast++
		if werr != nil {
			t.Fatalf("decodeStep(%s) accepted what encoding/json refuses (%v): %+v", b, werr, got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeStep(%s)\n got %+v\nwant %+v", b, got, want)
		}
	}
	if fast < len(bodies)/4 {
		t.Errorf("only %d of %d bodies took the fast path", fast, len(bodies))
	}
	// Decode as a whole: same step, same acceptance.
	for _, b := range bodies {
		want, werr := jsonDecode(b)
		got, err := Decode(b)
		if werr != nil {
			if err == nil {
				t.Fatalf("Decode(%s) accepted what encoding/json refuses", b)
			}
			continue
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%s)\n got %+v\nwant %+v", b, got, want)
		}
	}
}

func FuzzDecodeStep(f *testing.F) {
	for _, s := range randomSteps(20) {
		f.Add(s.Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := decodeStep(b)
		if !ok {
			return
		}
		want, err := jsonDecode(b)
		if err != nil {
			t.Fatalf("decodeStep(%q) accepted what encoding/json refuses (%v)", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeStep(%q)\n got %+v\nwant %+v", b, got, want)
		}
	})
}

func BenchmarkStepWire(b *testing.B) {
	s := validStep()
	s.Hold = nil
	body := s.Encode()
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.Encode()
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Decode(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
