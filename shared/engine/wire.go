package engine

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Fast paths of the step's wire form. Every step passes through Encode and
// Decode once (the queue between two steps), and encoding/json's reflection
// was a fifth of the engine's time per step. The fast paths produce and
// accept exactly what encoding/json does for the common shape of a step; a
// step they do not cover (a string that JSON escapes, a hold or an input to
// decode, whitespace, a key in another case, null) goes through
// encoding/json instead, so the wire form and what Decode accepts are
// unchanged (wire_test.go compares the two on many steps).

// appendStep appends s as json.Marshal would write it; ok is false when s
// holds something the fast path leaves to encoding/json.
func appendStep(b []byte, s Step) ([]byte, bool) {
	ok := true
	str := func(v string) {
		if !plainJSON(v) {
			ok = false
			return
		}
		b = append(b, '"')
		b = append(b, v...)
		b = append(b, '"')
	}
	strs := func(vs []string) {
		b = append(b, '[')
		for i, v := range vs {
			if i > 0 {
				b = append(b, ',')
			}
			str(v)
		}
		b = append(b, ']')
	}
	tm := func(t time.Time) {
		b = append(b, '"')
		var err error
		if b, err = t.AppendText(b); err != nil {
			ok = false
			return
		}
		b = append(b, '"')
	}
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(s.V), 10)
	b = append(b, `,"id":`...)
	str(s.ID)
	b = append(b, `,"ws":`...)
	str(s.WS)
	b = append(b, `,"sub":`...)
	str(s.Sub)
	b = append(b, `,"tunnel":`...)
	str(s.Tunnel)
	b = append(b, `,"channel":`...)
	str(s.Channel)
	b = append(b, `,"gen":`...)
	b = strconv.AppendInt(b, int64(s.Gen), 10)
	b = append(b, `,"block":`...)
	str(s.Block)
	b = append(b, `,"action":`...)
	b = strconv.AppendInt(b, int64(s.Action), 10)
	b = append(b, `,"at":`...)
	tm(s.At)
	if s.Due != nil {
		b = append(b, `,"due":`...)
		tm(*s.Due)
	}
	if s.Wait != nil {
		b = append(b, `,"wait":`...)
		tm(*s.Wait)
	}
	if h := s.Hold; h != nil {
		b = append(b, `,"hold":{"join":`...)
		str(h.Join)
		b = append(b, `,"actions":`...)
		if h.Actions == nil {
			b = append(b, "null"...)
		} else {
			strs(h.Actions)
		}
		b = append(b, `,"then":`...)
		if h.Then == nil {
			b = append(b, "null"...)
		} else {
			strs(h.Then)
		}
		if h.Spin != 0 {
			b = append(b, `,"spin":`...)
			b = strconv.AppendInt(b, int64(h.Spin), 10)
		}
		b = append(b, '}')
	}
	if len(s.Next) > 0 {
		b = append(b, `,"next":`...)
		strs(s.Next)
	}
	if s.Spin != 0 {
		b = append(b, `,"spin":`...)
		b = strconv.AppendInt(b, int64(s.Spin), 10)
	}
	if s.Phase != "" {
		b = append(b, `,"phase":`...)
		str(s.Phase)
	}
	if in := s.Input; in != nil {
		b = append(b, `,"input":{"wait":`...)
		str(in.Wait)
		if in.Button != "" {
			b = append(b, `,"button":`...)
			str(in.Button)
		}
		if in.Text != "" {
			b = append(b, `,"text":`...)
			str(in.Text)
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	return b, ok
}

// encodedSize is about what appendStep writes for s (numbers of up to 3
// digits; a longer one makes append grow the slice once): keys and
// punctuation, the strings, 35 bytes per time.
func encodedSize(s Step) int {
	n := 92 + 3*3 + 35 + len(s.ID) + len(s.WS) + len(s.Sub) + len(s.Tunnel) + len(s.Channel) + len(s.Block)
	if s.Due != nil {
		n += 9 + 35
	}
	if s.Wait != nil {
		n += 10 + 35
	}
	if h := s.Hold; h != nil {
		n += 50 + len(h.Join)
		for _, v := range h.Actions {
			n += 3 + len(v)
		}
		for _, v := range h.Then {
			n += 3 + len(v)
		}
	}
	if len(s.Next) > 0 {
		n += 9
		for _, v := range s.Next {
			n += 3 + len(v)
		}
	}
	if s.Spin != 0 {
		n += 8 + 3
	}
	if s.Phase != "" {
		n += 11 + len(s.Phase)
	}
	if in := s.Input; in != nil {
		n += 50 + len(in.Wait) + len(in.Button) + len(in.Text)
	}
	return n
}

// plainJSON reports whether json.Marshal writes v as it is between quotes:
// printable ASCII but the characters it escapes (quote, backslash, and
// <, >, & for HTML), or valid UTF-8 beyond ASCII without U+2028 and U+2029.
func plainJSON(v string) bool {
	wide := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c < 0x20, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		case c >= utf8.RuneSelf:
			wide = true
		}
	}
	return !wide || (utf8.ValidString(v) && !strings.ContainsRune(v, '\u2028') && !strings.ContainsRune(v, '\u2029'))
}

// decodeStep parses body as encoding/json would into a Step; ok is false
// when body holds anything the fast path leaves to encoding/json. Like
// json.Decoder, it reads the first value and ignores what follows it.
func decodeStep(body []byte) (s Step, ok bool) {
	d := wireReader{src: string(body)} // one copy; the step's strings share it
	if !d.byte('{') {
		return Step{}, false
	}
	if d.byte('}') {
		return s, true
	}
	for {
		key, kok := d.str()
		if !kok || !d.byte(':') {
			return Step{}, false
		}
		var vok bool
		switch key {
		case "v":
			s.V, vok = d.int()
		case "id":
			s.ID, vok = d.str()
		case "ws":
			s.WS, vok = d.str()
		case "sub":
			s.Sub, vok = d.str()
		case "tunnel":
			s.Tunnel, vok = d.str()
		case "channel":
			s.Channel, vok = d.str()
		case "gen":
			s.Gen, vok = d.int()
		case "block":
			s.Block, vok = d.str()
		case "action":
			s.Action, vok = d.int()
		case "at":
			s.At, vok = d.time()
		case "due":
			var t time.Time
			if t, vok = d.time(); vok {
				s.Due = &t
			}
		case "wait":
			var t time.Time
			if t, vok = d.time(); vok {
				s.Wait = &t
			}
		case "next":
			s.Next, vok = d.strs()
		case "spin":
			s.Spin, vok = d.int()
		case "phase":
			s.Phase, vok = d.str()
		}
		if !vok {
			return Step{}, false // an unknown key, hold, input, null, or a value to check the slow way
		}
		if d.byte('}') {
			return s, true
		}
		if !d.byte(',') {
			return Step{}, false
		}
	}
}

type wireReader struct {
	src string
	i   int
}

func (d *wireReader) byte(c byte) bool {
	if d.i < len(d.src) && d.src[d.i] == c {
		d.i++
		return true
	}
	return false
}

// str reads a string with nothing to unescape: no backslash, no control
// character, valid UTF-8.
func (d *wireReader) str() (string, bool) {
	if !d.byte('"') {
		return "", false
	}
	start, wide := d.i, false
	for ; d.i < len(d.src); d.i++ {
		switch c := d.src[d.i]; {
		case c == '"':
			v := d.src[start:d.i]
			d.i++
			if wide && !utf8.ValidString(v) {
				return "", false
			}
			return v, true
		case c == '\\', c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			wide = true
		}
	}
	return "", false
}

func (d *wireReader) strs() ([]string, bool) {
	if !d.byte('[') {
		return nil, false
	}
	out := []string{}
	if d.byte(']') {
		return out, true
	}
	for {
		v, ok := d.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if d.byte(']') {
			return out, true
		}
		if !d.byte(',') {
			return nil, false
		}
	}
}

// int reads an integer in JSON's grammar that fits an int without doubt.
func (d *wireReader) int() (int, bool) {
	start := d.i
	d.byte('-')
	digits := d.i
	for d.i < len(d.src) && d.src[d.i] >= '0' && d.src[d.i] <= '9' {
		d.i++
	}
	n := d.i - digits
	if n == 0 || n > 18 || (n > 1 && d.src[digits] == '0') {
		return 0, false
	}
	v, err := strconv.Atoi(d.src[start:d.i])
	return v, err == nil
}

// time reads a time as time.Time's UnmarshalJSON does (RFC 3339).
func (d *wireReader) time() (time.Time, bool) {
	start := d.i
	if _, ok := d.str(); !ok {
		return time.Time{}, false
	}
	var t time.Time
	if err := t.UnmarshalJSON([]byte(d.src[start:d.i])); err != nil {
		return time.Time{}, false
	}
	return t, true
}
