package amocrm_test

import (
	"context"
	"fmt"

	"github.com/tunnels/tunnels/shared/amocrm"
	"github.com/tunnels/tunnels/shared/amocrm/amotest"
	"github.com/tunnels/tunnels/shared/egress"
)

// Wiring as the deployment does it: the SSRF-safe egress client, a shared
// token store (DynamoDB there; memory here) and a limiter sized for the number
// of concurrent instances.
func ExampleClient() {
	srv := amotest.New(amotest.Options{})
	defer srv.Close()

	c := &amocrm.Client{
		BaseURL: srv.URL, // the account's address from the OAuth redirect's referer
		HTTP:    egress.NewClient(egress.Policy{Allow: []string{srv.Addr()}}, egress.Options{}),
		Creds:   amocrm.Credentials{ClientID: srv.ClientID(), ClientSecret: srv.ClientSecret(), RedirectURI: srv.RedirectURI()},
		Tokens:  amocrm.NewMemoryTokenStore(srv.IssueTokens()),
		Limiter: amocrm.NewLimiter(1), // NewLimiter(N) with N concurrent instances
	}
	res, err := c.CreateLeadWithContact(context.Background(),
		amocrm.LeadInput{Name: "Webinar: Ann", PipelineID: 7001, StatusID: 7002, Tags: []string{"lead"}},
		amocrm.ContactInput{FirstName: "Ann", LastName: "Lee", Phone: "+15550001", Email: "ann@example.com", Tags: []string{"lead"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.LeadID > 0, res.ContactID > 0, res.Merged)
	// Output: true true false
}
