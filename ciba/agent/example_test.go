package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log"
	"net/http"
	"time"

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

// An agent asks alice once for a travel mandate, then books inside it:
// the purchase needs no new approval while it fits the mandate.
func ExampleClient_AskMandate() {
	c := &agent.Client{Issuer: "https://countersign.example", ClientID: "trip-planner", Secret: "…"}
	ctx := context.Background()
	_, mandateID, err := c.AskMandate(ctx, agent.Request{Scope: "openid", LoginHint: "alice@example.com"}, agent.Mandate{
		Intent: "Book my travel for the conference",
		Actions: []map[string]any{
			{"type": "agent_action", "action": "read", "resource": "calendar"},
			{"type": "payment_initiation", "currency": "EUR", "max_amount": 2000},
		},
		Budget:     &agent.Budget{Currency: "EUR", Amount: 2000},
		ValidUntil: time.Now().Add(72 * time.Hour),
	})
	if err != nil {
		log.Fatal(err) // the user denied it, or it expired
	}
	tok, err := c.Authorize(ctx, agent.Request{Scope: "openid", LoginHint: "alice@example.com", MandateID: mandateID,
		AuthorizationDetails: `[{"type":"payment_initiation","currency":"EUR","amount":"412.00","creditor":{"name":"Rail Europe"}}]`})
	if err != nil {
		log.Fatal(err)
	}
	_ = tok.AccessToken
}
