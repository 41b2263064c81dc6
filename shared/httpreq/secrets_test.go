package httpreq

import (
	"strings"
	"testing"

	"github.com/tunnels/tunnels/shared/tunnel"
)

func TestMaskSecrets(t *testing.T) {
	secret := `s3cr/et "key"&more`
	r := Rendered{
		Method: "POST",
		URL:    "https://api.example.com/v1/" + "s3cr%2Fet%20%22key%22&more" + "?token=" + "s3cr%2Fet+%22key%22%26more" + "&page=2",
		Query:  []tunnel.NameValue{{Name: "token", Value: secret}, {Name: "page", Value: "2"}},
		Headers: []tunnel.NameValue{
			{Name: "Authorization", Value: "Bearer " + secret},
			{Name: "X-Api-Token", Value: "visible-because-not-a-secret-variable"},
		},
		Body:       `{"key": "s3cr/et \"key\"&more", "name": "Ann", "html": "s3cr/et \"key\"\u0026more"}`,
		BodyIsJSON: true,
	}
	m := MaskSecrets(r, []string{secret})
	all := m.URL + m.Query[0].Value + m.Headers[0].Value + m.Body
	for _, leak := range []string{"s3cr", "key\\\"", "more"} {
		if strings.Contains(all, leak) {
			t.Errorf("%q still visible in %s", leak, all)
		}
	}
	if m.Headers[0].Value != "Bearer ***" || m.Query[1].Value != "2" || !strings.Contains(m.URL, "page=2") {
		t.Errorf("masked too much or too little: %+v", m)
	}
	if m.Headers[1].Value != "visible-because-not-a-secret-variable" {
		t.Errorf("a value that is no secret variable was masked: %q", m.Headers[1].Value)
	}
	if !strings.Contains(m.Body, `"name": "Ann"`) {
		t.Errorf("body: %s", m.Body)
	}
	if got := MaskSecretText("echo: "+secret, []string{secret}); got != "echo: ***" {
		t.Errorf("MaskSecretText = %q", got)
	}
	if got := MaskSecrets(r, nil); got.Headers[0].Value != r.Headers[0].Value {
		t.Error("no secrets should change nothing")
	}
}
