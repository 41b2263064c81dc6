package httpreq

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestLooksSecret(t *testing.T) {
	secret := []string{"token", "X-Token", "api_key", "APIKEY", "client_secret", "Password", "passwd", "pwd",
		"Authorization", "Proxy-Authorization", "X-Auth", "X-Signature", "session_id", "Cookie", "Set-Cookie", "credentials", "private_id"}
	plain := []string{"email", "name", "src", "Content-Type", "Accept", "X-Request-Id", "page", ""}
	for _, n := range secret {
		if !LooksSecret(n) {
			t.Errorf("LooksSecret(%q) = false", n)
		}
	}
	for _, n := range plain {
		if LooksSecret(n) {
			t.Errorf("LooksSecret(%q) = true", n)
		}
	}
}

func TestMask(t *testing.T) {
	r := Rendered{
		Method: "POST",
		URL:    "https://user:pw-secret@api.example.com/leads/ann?src=webinar&api_key=k%26ey&Token=t1&email=ann%40example.com&flag&session=#frag",
		Query:  []tunnel.NameValue{{Name: "email", Value: "ann@example.com"}, {Name: "access_token", Value: "t2"}, {Name: "sig", Value: ""}},
		Headers: []tunnel.NameValue{
			{Name: "Authorization", Value: "Bearer abc.def"},
			{Name: "authorization", Value: "opaque"},
			{Name: "Cookie", Value: "sid=1"},
			{Name: "X-Token", Value: "s3cr3t"},
			{Name: "X-Api-Key", Value: "k"},
			{Name: "X-Empty-Token", Value: ""},
			{Name: "Accept", Value: "application/json"},
			{Name: "Content-Type", Value: "application/json"},
		},
		Body:       `{"name":"Ann","password":"hunter2","nested":{"apiKey":{"a":1},"list":[{"token":7}],"ok":"yes"},"secrets":[1,2]}`,
		BodyIsJSON: true,
	}
	before := r
	before.Headers = append([]tunnel.NameValue(nil), r.Headers...)
	before.Query = append([]tunnel.NameValue(nil), r.Query...)

	m := Mask(r)
	if want := "https://api.example.com/leads/ann?src=webinar&api_key=***&Token=***&email=ann%40example.com&flag&session="; m.URL != want {
		t.Errorf("url = %q\nwant  %q", m.URL, want)
	}
	wantQ := []tunnel.NameValue{{Name: "email", Value: "ann@example.com"}, {Name: "access_token", Value: "***"}, {Name: "sig", Value: ""}}
	if !reflect.DeepEqual(m.Query, wantQ) {
		t.Errorf("query = %v", m.Query)
	}
	wantH := []tunnel.NameValue{
		{Name: "Authorization", Value: "Bearer ***"},
		{Name: "authorization", Value: "***"},
		{Name: "Cookie", Value: "***"},
		{Name: "X-Token", Value: "***"},
		{Name: "X-Api-Key", Value: "***"},
		{Name: "X-Empty-Token", Value: ""},
		{Name: "Accept", Value: "application/json"},
		{Name: "Content-Type", Value: "application/json"},
	}
	if !reflect.DeepEqual(m.Headers, wantH) {
		t.Errorf("headers = %v", m.Headers)
	}
	if want := `{"name":"Ann","password":"***","nested":{"apiKey":"***","list":[{"token":"***"}],"ok":"yes"},"secrets":"***"}`; m.Body != want {
		t.Errorf("body = %s\nwant   %s", m.Body, want)
	}
	all, _ := json.Marshal(m)
	shown := string(all) + m.URL + m.Body + fmt.Sprint(m.Query, m.Headers)
	for _, leak := range []string{"pw-secret", "user", "k%26ey", "t1", "t2", "abc.def", "opaque", "sid=1", "s3cr3t", "hunter2", "frag"} {
		if strings.Contains(shown, leak) {
			t.Errorf("masked request still shows %q", leak)
		}
	}
	if !reflect.DeepEqual(r, before) {
		t.Error("Mask changed its argument")
	}
}

func TestMaskTextBodyAndOddInputs(t *testing.T) {
	m := Mask(Rendered{Method: "POST", URL: "https://h/x", Body: "token=abc", Headers: nil})
	if m.Body != "token=abc" || m.Headers != nil || m.Query != nil {
		t.Errorf("text body request = %+v", m)
	}
	m = Mask(Rendered{Method: "POST", URL: "https://h/x", Body: "{broken", BodyIsJSON: true})
	if m.Body != "***" {
		t.Errorf("broken JSON body = %q", m.Body)
	}
	if got := Mask(Rendered{URL: "https://h/%zz?token=a"}).URL; got != "(invalid url)" {
		t.Errorf("invalid url masked as %q", got)
	}
	if got := MaskHeaders([]tunnel.NameValue{{Name: "Set-Cookie", Value: "a=b"}, {Name: "Server", Value: "x"}}); !reflect.DeepEqual(got,
		[]tunnel.NameValue{{Name: "Set-Cookie", Value: "***"}, {Name: "Server", Value: "x"}}) {
		t.Errorf("MaskHeaders = %v", got)
	}
}
