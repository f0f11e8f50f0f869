package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// mandateIssued answers /token with the approved mandate entry.
func mandateIssued(id string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		d := []any{map[string]any{"type": "intent_mandate", "intent": "Trip", "mandate_id": id}}
		if id == "" {
			d = []any{map[string]any{"type": "agent_action"}}
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "token_type": "Bearer", "authorization_details": d})
	}
}

func TestAskMandateSendsTheEntryAndReturnsTheID(t *testing.T) {
	f := newFakeAS(t)
	f.tokens = append(f.tokens, mandateIssued("M1"))
	c, _ := f.client()
	end := time.Date(2026, 3, 8, 0, 0, 0, 0, time.FixedZone("x", 3600))
	_, id, err := c.AskMandate(context.Background(), Request{Scope: "openid", LoginHint: "alice"}, Mandate{
		Intent:  "Book my travel",
		Actions: []map[string]any{{"type": "payment_initiation", "currency": "EUR", "max_amount": 2000}},
		Budget:  &Budget{Currency: "EUR", Amount: 2000}, MaxUses: 20, ValidUntil: end})
	if err != nil || id != "M1" {
		t.Fatalf("AskMandate: %q %v", id, err)
	}
	want := `[{"actions":[{"currency":"EUR","max_amount":2000,"type":"payment_initiation"}],"budget":{"currency":"EUR","amount":2000},` +
		`"intent":"Book my travel","max_uses":20,"type":"intent_mandate","valid_until":"2026-03-07T23:00:00Z"}]`
	if got := f.form.Get("authorization_details"); got != want {
		t.Fatalf("authorization_details\n%s\nwant\n%s", got, want)
	}
	if f.form.Has("mandate_id") {
		t.Fatal("a mandate request must not act within one")
	}
}

func TestAskMandateWithoutMandateIDFails(t *testing.T) {
	f := newFakeAS(t)
	f.tokens = append(f.tokens, mandateIssued(""))
	c, _ := f.client()
	if _, _, err := c.AskMandate(context.Background(), Request{LoginHint: "alice"}, Mandate{Intent: "x"}); err == nil {
		t.Fatal("a token without mandate_id must be an error")
	}
	if _, _, err := c.AskMandate(context.Background(), Request{MandateID: "M1"}, Mandate{Intent: "x"}); err == nil {
		t.Fatal("a mandate request with another mandate_id must be refused")
	}
}

func TestAuthorizeWithinMandateSendsMandateID(t *testing.T) {
	f := newFakeAS(t)
	f.tokens = append(f.tokens, issued("Bearer"))
	c, _ := f.client()
	_, err := c.Authorize(context.Background(), Request{LoginHint: "alice", MandateID: "M1",
		AuthorizationDetails: `[{"type":"agent_action","action":"read","resource":"calendar"}]`})
	if err != nil {
		t.Fatal(err)
	}
	if f.form.Get("mandate_id") != "M1" {
		t.Fatalf("form %v", f.form)
	}
}
