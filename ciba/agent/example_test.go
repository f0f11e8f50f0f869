package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log"
	"net/http"

	"github.com/countersign/countersign/ciba/agent"
)

// An agent asks alice for a read of her calendar, with a DPoP-bound token,
// then calls the calendar API with a proof.
func ExampleClient_Authorize() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &agent.Client{Issuer: "https://countersign.example", ClientID: "trip-planner", Secret: "…", DPoPKey: key}
	tok, err := c.Authorize(context.Background(), agent.Request{
		Scope: "openid calendar", LoginHint: "alice@example.com", BindingMessage: "Trip 42",
		AuthorizationDetails: `[{"type":"agent_action","action":"read","resource":"calendar"}]`,
	})
	if err != nil {
		log.Fatal(err) // *agent.Error: access_denied, expired_token, ...
	}
	req, _ := http.NewRequest("GET", "https://calendar.example/events", nil)
	proof, _ := c.Proof(req.Method, req.URL.String(), tok.AccessToken)
	req.Header.Set("Authorization", tok.TokenType+" "+tok.AccessToken) // "DPoP <token>"
	req.Header.Set("DPoP", proof)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
}
