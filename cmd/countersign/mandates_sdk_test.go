package main

import (
	"context"
	"testing"
	"time"

	"github.com/countersign/countersign/ciba/agent"
	"github.com/countersign/countersign/mobile-stub/phone"
)

// The Go agent SDK against a real node: AskMandate waits for the phone's
// approval and returns the mandate id; Authorize with MandateID is then
// approved by the mandate, without the phone.
func TestAgentSDKAsksAndActsWithinMandate(t *testing.T) {
	tn := startNode(t, nil)
	id, secret := setup(t, tn)
	ph := tn.enrollPhone("alice", "Pixel")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	go ph.AutoDecide(ctx, phone.Approve, nil)
	c := &agent.Client{Issuer: tn.URL, ClientID: id, Secret: secret, Now: tn.clock.Now,
		Sleep: func(ctx context.Context, d time.Duration) error {
			tn.clock.Advance(d) // the node's clock: no real wait for the poll interval
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond): // the phone's turn
				return nil
			}
		}}
	tok, mid, err := c.AskMandate(ctx, agent.Request{Scope: "openid", LoginHint: "alice", BindingMessage: "Trip 7"}, agent.Mandate{
		Intent:     "Book my travel for the conference",
		Actions:    []map[string]any{{"type": "payment_initiation", "currency": "EUR", "max_amount": 2000}},
		Budget:     &agent.Budget{Currency: "EUR", Amount: 2000},
		ValidUntil: tn.clock.Now().Add(72 * time.Hour)})
	if err != nil || len(mid) != 22 {
		t.Fatalf("AskMandate: %q %v", mid, err)
	}
	if ap, _ := tn.verify(tok.AccessToken, "at+jwt")["approval"].(map[string]any); ap["by"] != "device" || ap["device_id"] != ph.DeviceID() {
		t.Fatalf("the mandate was not approved on the phone: %v", ap)
	}
	tok, err = c.Authorize(ctx, agent.Request{Scope: "openid", LoginHint: "alice", MandateID: mid, AuthorizationDetails: trainTicket})
	if err != nil {
		t.Fatal(err)
	}
	at := tn.verify(tok.AccessToken, "at+jwt")
	if ap, _ := at["approval"].(map[string]any); ap["by"] != "mandate" || ap["mandate_id"] != mid {
		t.Fatalf("approval %v", at["approval"])
	}
}
